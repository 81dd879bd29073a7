//! CONNACK (§3.2): the server's answer to a CONNECT.

use bytes::{BufMut, BytesMut};

use super::{Body, PacketType, ProtocolVersion, check_reason_code, read_reason_code};
use crate::error::ErrorKind;
use crate::properties::{ConnAckProperties, PropertySet};
use crate::reason::{ReasonCode, allowed};
use crate::wire::Reader;

/// A CONNACK packet.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConnAck {
    /// Whether the server resumed a session it held for this client.
    pub session_present: bool,
    /// The outcome; before 5.0 it travels as the return code [`ReasonCode::to_v3_connack`] gives.
    pub reason_code: ReasonCode,
    /// MQTT 5.0 properties.
    pub properties: ConnAckProperties,
}

impl Body for ConnAck {
    const TYPE: PacketType = PacketType::ConnAck;

    fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(ErrorKind::ConnAckReservedFlags);
        }
        let reason_code = if version.is_v5() {
            read_reason_code(r, PacketType::ConnAck, allowed::CONNACK)?
        } else {
            let code = r.u8()?;
            ReasonCode::from_v3_connack(code).ok_or(ErrorKind::InvalidConnectReturnCode(code))?
        };
        let session_present = flags & 1 != 0;
        if session_present && reason_code != ReasonCode::Success {
            return Err(ErrorKind::SessionPresentOnFailure);
        }
        // With `small` (the browser client) the properties are read in place, into the
        // packet: moving the 17-field set in afterwards was done field by field (0.5 KB
        // gzipped). The broker's build keeps its path.
        #[cfg(feature = "small")]
        {
            let mut ack = ConnAck {
                session_present,
                reason_code,
                properties: ConnAckProperties::EMPTY,
            };
            if version.is_v5() {
                ack.properties.decode_into(r)?;
            }
            Ok(ack)
        }
        #[cfg(not(feature = "small"))]
        {
            let properties = if version.is_v5() {
                ConnAckProperties::decode(r)?
            } else {
                Default::default()
            };
            Ok(ConnAck {
                session_present,
                reason_code,
                properties,
            })
        }
    }

    #[inline]
    fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        if version.is_v5() {
            check_reason_code(self.reason_code, PacketType::ConnAck, allowed::CONNACK)?;
        }
        if self.session_present && self.reason_code != ReasonCode::Success {
            return Err(ErrorKind::SessionPresentOnFailure);
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.encoded_len()
        } else {
            2
        }
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        dst.put_u8(u8::from(self.session_present));
        if version.is_v5() {
            dst.put_u8(self.reason_code as u8);
            self.properties.encode(dst);
        } else {
            dst.put_u8(self.reason_code.to_v3_connack());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::{ByteStr, Packet};

    #[test]
    fn v311_connack() {
        let accepted = ConnAck {
            session_present: true,
            ..Default::default()
        };
        assert_round_trip(
            &Packet::from(accepted),
            &[0x20, 0x02, 0x01, 0x00],
            ProtocolVersion::V3_1_1,
        );
        let refused = ConnAck {
            reason_code: ReasonCode::NotAuthorized,
            ..Default::default()
        };
        assert_round_trip(
            &Packet::from(refused),
            &[0x20, 0x02, 0x00, 0x05],
            ProtocolVersion::V3_1_1,
        );
        // A 5.0 reason with no 3.x return code of its own maps to the closest one.
        let busy = ConnAck {
            reason_code: ReasonCode::ServerBusy,
            ..Default::default()
        };
        assert_eq!(
            &encode(&Packet::from(busy), ProtocolVersion::V3_1_1)[..],
            [0x20, 0x02, 0x00, 0x03]
        );
    }

    #[test]
    fn v5_connack_with_properties() {
        let mut ack = ConnAck::default();
        ack.properties.assigned_client_identifier = Some(ByteStr::from_static("auto-1"));
        ack.properties.topic_alias_maximum = Some(10);
        let bytes = [
            0x20, 0x0f, 0x00, 0x00, 0x0c, // flags, reason, property length 12
            0x12, 0x00, 0x06, b'a', b'u', b't', b'o', b'-', b'1', // assigned client id
            0x22, 0x00, 0x0a, // topic alias maximum 10
        ];
        assert_round_trip(&Packet::from(ack), &bytes, ProtocolVersion::V5);
        assert_round_trip(
            &Packet::from(ConnAck::default()),
            &[0x20, 3, 0, 0, 0],
            ProtocolVersion::V5,
        );
    }

    #[test]
    fn malformed_connacks() {
        let v3 = ProtocolVersion::V3_1_1;
        assert_eq!(
            decode_err(&[0x20, 2, 0x02, 0], v3).kind(),
            ErrorKind::ConnAckReservedFlags
        );
        assert_eq!(
            decode_err(&[0x20, 2, 0, 6], v3).kind(),
            ErrorKind::InvalidConnectReturnCode(6)
        );
        let err = decode_err(&[0x20, 2, 1, 5], v3);
        assert_eq!(
            (err.kind(), err.spec_ref()),
            (ErrorKind::SessionPresentOnFailure, Some("MQTT-3.2.2-4"))
        );
        let err = decode_err(&[0x20, 3, 0, 0x8b, 0], ProtocolVersion::V5);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code: 0x8b
            }
        );
        assert_eq!(err.spec_ref(), Some("MQTT-3.2.2-8"));
        // A 3.1.1 CONNACK is exactly two bytes.
        assert_eq!(
            decode_err(&[0x20, 3, 0, 0, 0], v3).kind(),
            ErrorKind::TrailingBytes(PacketType::ConnAck)
        );
        assert_eq!(decode_err(&[0x20, 1, 0], v3).kind(), ErrorKind::Truncated);
    }
}
