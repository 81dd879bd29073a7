//! DISCONNECT (§3.14): the last packet of a connection, from either side (server only in 5.0).

use bytes::{BufMut, BytesMut};

use super::{Body, PacketType, ProtocolVersion, check_reason_code, read_reason_code};
use crate::error::ErrorKind;
use crate::properties::{DisconnectProperties, PropertySet};
use crate::reason::{ReasonCode, allowed};
use crate::wire::Reader;

/// A DISCONNECT packet. Before 5.0 it has no fields.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Disconnect {
    /// Why (5.0); 0x00 is a normal disconnection.
    pub reason_code: ReasonCode,
    /// MQTT 5.0 properties.
    pub properties: DisconnectProperties,
}

impl Disconnect {
    /// A DISCONNECT with this reason and no properties.
    pub fn new(reason_code: ReasonCode) -> Self {
        Disconnect {
            reason_code,
            properties: DisconnectProperties::default(),
        }
    }
}

impl Body for Disconnect {
    const TYPE: PacketType = PacketType::Disconnect;

    fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        // Remaining length 0: normal disconnection; 1: a reason code alone (§3.14.2.1).
        if !version.is_v5() || !r.has_remaining() {
            return Ok(Disconnect::default());
        }
        let reason_code = read_reason_code(r, Self::TYPE, allowed::DISCONNECT)?;
        // With `small`, checked and left empty: the client ignores them.
        #[cfg(feature = "small")]
        {
            if r.has_remaining() {
                crate::properties::check_ignored(
                    r,
                    "DISCONNECT",
                    crate::properties::DISCONNECT_IGNORED,
                )?;
            }
            Ok(Disconnect {
                reason_code,
                properties: DisconnectProperties::EMPTY,
            })
        }
        #[cfg(not(feature = "small"))]
        {
            let properties = if r.has_remaining() {
                DisconnectProperties::decode(r)?
            } else {
                Default::default()
            };
            Ok(Disconnect {
                reason_code,
                properties,
            })
        }
    }

    #[inline]
    fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        if version.is_v5() {
            check_reason_code(self.reason_code, Self::TYPE, allowed::DISCONNECT)?;
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        match (
            version.is_v5(),
            self.reason_code,
            self.properties.is_empty(),
        ) {
            (false, ..) | (true, ReasonCode::Success, true) => 0,
            (true, _, true) => 1,
            (true, _, false) => 1 + self.properties.encoded_len(),
        }
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        let len = self.remaining_length(version);
        if len > 0 {
            dst.put_u8(self.reason_code as u8);
        }
        if len > 1 {
            self.properties.encode(dst);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::{ByteStr, Packet};

    #[test]
    fn disconnect_forms() {
        let v5 = ProtocolVersion::V5;
        assert_round_trip(
            &Packet::from(Disconnect::default()),
            &[0xe0, 0],
            ProtocolVersion::V3_1_1,
        );
        assert_round_trip(&Packet::from(Disconnect::default()), &[0xe0, 0], v5);
        let shutdown = Disconnect::new(ReasonCode::ServerShuttingDown);
        assert_round_trip(&Packet::from(shutdown.clone()), &[0xe0, 1, 0x8b], v5);
        // The same packet to a 3.1.1 client carries no reason.
        assert_eq!(
            &encode(&Packet::from(shutdown), ProtocolVersion::V3_1_1)[..],
            [0xe0, 0]
        );
        let mut d = Disconnect::new(ReasonCode::ReceiveMaximumExceeded);
        let emptied = Packet::from(d.clone());
        d.properties.reason_string = Some(ByteStr::from_static("slow down"));
        d.properties.session_expiry_interval = Some(0);
        round_trip_ignored(&Packet::from(d), &emptied, v5);
    }

    #[test]
    fn malformed_disconnects() {
        let err = decode_err(&[0xe1, 0], ProtocolVersion::V5);
        assert_eq!(
            (err.kind(), err.reason_code()),
            (
                ErrorKind::InvalidFlags {
                    packet: PacketType::Disconnect,
                    flags: 1
                },
                ReasonCode::MalformedPacket
            )
        );
        assert_eq!(
            decode_err(&[0xe0, 1, 0], ProtocolVersion::V3_1_1).kind(),
            ErrorKind::TrailingBytes(PacketType::Disconnect)
        );
        let err = decode_err(&[0xe0, 1, 0x01], ProtocolVersion::V5);
        assert_eq!(
            (err.kind(), err.spec_ref()),
            (
                ErrorKind::InvalidReasonCode {
                    packet: PacketType::Disconnect,
                    code: 1
                },
                Some("MQTT-3.14.2-1")
            )
        );
    }
}
