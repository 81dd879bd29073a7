//! SUBACK (§3.9) and UNSUBACK (§3.11): one reason code per topic filter of the request.

use alloc::vec::Vec;
use bytes::{BufMut, BytesMut};

use super::{
    Body, PacketId, PacketType, ProtocolVersion, check_reason_code, read_packet_id,
    read_reason_code,
};
use crate::error::ErrorKind;
use crate::properties::{AckProperties, PropertySet};
use crate::reason::{ReasonCode, allowed};
use crate::wire::Reader;

/// A SUBACK packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubAck {
    /// The packet identifier of the SUBSCRIBE.
    pub packet_id: PacketId,
    /// One per subscription, in order: the granted QoS, or why it failed. Before 5.0 every
    /// failure travels as 0x80.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5.0 properties.
    pub properties: AckProperties,
}

/// An UNSUBACK packet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsubAck {
    /// The packet identifier of the UNSUBSCRIBE.
    pub packet_id: PacketId,
    /// 5.0: one per topic filter, in order. Empty before 5.0, whose UNSUBACK has no payload.
    pub reason_codes: Vec<ReasonCode>,
    /// MQTT 5.0 properties.
    pub properties: AckProperties,
}

/// The 3.1.1 SUBACK return codes: 0, 1, 2 and 0x80 (§3.9.3 of 3.1.1).
const V3_SUBACK: &[ReasonCode] = &[
    ReasonCode::Success,
    ReasonCode::GrantedQos1,
    ReasonCode::GrantedQos2,
    ReasonCode::UnspecifiedError,
];

/// Reads the packet identifier, the properties (5.0) and the reason codes filling the rest.
fn decode(
    r: &mut Reader,
    version: ProtocolVersion,
    packet: PacketType,
    allowed: &[ReasonCode],
) -> Result<(PacketId, Vec<ReasonCode>, AckProperties), ErrorKind> {
    let packet_id = read_packet_id(r)?;
    // With `small`, checked and left empty: the client ignores them.
    #[cfg(feature = "small")]
    AckProperties::check_ignored(r, version.is_v5())?;
    #[cfg(feature = "small")]
    let properties = AckProperties::EMPTY;
    #[cfg(not(feature = "small"))]
    let properties = if version.is_v5() {
        AckProperties::decode(r)?
    } else {
        Default::default()
    };
    let mut codes = Vec::with_capacity(r.remaining());
    while r.has_remaining() {
        codes.push(read_reason_code(r, packet, allowed)?);
    }
    if codes.is_empty() {
        return Err(ErrorKind::NoReasonCodes(packet));
    }
    Ok((packet_id, codes, properties))
}

impl Body for SubAck {
    const TYPE: PacketType = PacketType::SubAck;

    fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        let allowed = if version.is_v5() {
            allowed::SUBACK
        } else {
            V3_SUBACK
        };
        let (packet_id, reason_codes, properties) = decode(r, version, Self::TYPE, allowed)?;
        Ok(SubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }

    #[inline]
    fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        if self.reason_codes.is_empty() {
            return Err(ErrorKind::NoReasonCodes(Self::TYPE));
        }
        if version.is_v5() {
            for &code in &self.reason_codes {
                check_reason_code(code, Self::TYPE, allowed::SUBACK)?;
            }
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        let properties = if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        };
        2 + properties + self.reason_codes.len()
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        dst.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(dst);
            dst.extend(self.reason_codes.iter().map(|&c| c as u8));
        } else {
            let v3_code = |&c: &ReasonCode| if c.is_error() { 0x80 } else { c as u8 };
            dst.extend(self.reason_codes.iter().map(v3_code));
        }
    }
}

impl Body for UnsubAck {
    const TYPE: PacketType = PacketType::UnsubAck;

    fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        if !version.is_v5() {
            let packet_id = read_packet_id(r)?;
            return Ok(UnsubAck {
                packet_id,
                reason_codes: Vec::new(),
                properties: Default::default(),
            });
        }
        let (packet_id, reason_codes, properties) =
            decode(r, version, Self::TYPE, allowed::UNSUBACK)?;
        Ok(UnsubAck {
            packet_id,
            reason_codes,
            properties,
        })
    }

    #[inline]
    fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        if !version.is_v5() {
            return Ok(());
        }
        if self.reason_codes.is_empty() {
            return Err(ErrorKind::NoReasonCodes(Self::TYPE));
        }
        for &code in &self.reason_codes {
            check_reason_code(code, Self::TYPE, allowed::UNSUBACK)?;
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        if version.is_v5() {
            2 + self.properties.encoded_len() + self.reason_codes.len()
        } else {
            2
        }
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        dst.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(dst);
            dst.extend(self.reason_codes.iter().map(|&c| c as u8));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Packet;
    use crate::packet::test_util::*;

    fn id() -> PacketId {
        PacketId::new(0x1234).unwrap()
    }

    #[test]
    fn suback_in_both_versions() {
        let codes = vec![
            ReasonCode::GrantedQos1,
            ReasonCode::Success,
            ReasonCode::UnspecifiedError,
        ];
        let ack = SubAck {
            packet_id: id(),
            reason_codes: codes,
            properties: Default::default(),
        };
        assert_round_trip(
            &Packet::from(ack.clone()),
            &[0x90, 5, 0x12, 0x34, 1, 0, 0x80],
            ProtocolVersion::V3_1_1,
        );
        assert_round_trip(
            &Packet::from(ack),
            &[0x90, 6, 0x12, 0x34, 0, 1, 0, 0x80],
            ProtocolVersion::V5,
        );
        // A 5.0-only failure code is sent to a 3.1.1 client as plain failure.
        let denied = SubAck {
            packet_id: id(),
            reason_codes: vec![ReasonCode::NotAuthorized],
            properties: Default::default(),
        };
        assert_eq!(
            &encode(&Packet::from(denied), ProtocolVersion::V3_1_1)[..],
            [0x90, 3, 0x12, 0x34, 0x80]
        );
    }

    #[test]
    fn unsuback_in_both_versions() {
        let ack = UnsubAck {
            packet_id: id(),
            reason_codes: vec![],
            properties: Default::default(),
        };
        assert_round_trip(
            &Packet::from(ack),
            &[0xb0, 2, 0x12, 0x34],
            ProtocolVersion::V3_1_1,
        );
        let codes = vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted];
        let ack = UnsubAck {
            packet_id: id(),
            reason_codes: codes,
            properties: Default::default(),
        };
        assert_round_trip(
            &Packet::from(ack),
            &[0xb0, 5, 0x12, 0x34, 0, 0, 0x11],
            ProtocolVersion::V5,
        );
    }

    #[test]
    fn malformed_acks() {
        let v3 = ProtocolVersion::V3_1_1;
        let v5 = ProtocolVersion::V5;
        assert_eq!(
            decode_err(&[0x90, 2, 0, 1], v3).kind(),
            ErrorKind::NoReasonCodes(PacketType::SubAck)
        );
        let err = decode_err(&[0x90, 3, 0, 1, 3], v3);
        assert_eq!(
            (err.kind(), err.spec_ref()),
            (
                ErrorKind::InvalidReasonCode {
                    packet: PacketType::SubAck,
                    code: 3
                },
                Some("MQTT-3.9.3-2")
            )
        );
        // 0x87 is a 5.0 SUBACK code, not a 3.1.1 return code.
        assert!(matches!(
            decode_err(&[0x90, 3, 0, 1, 0x87], v3).kind(),
            ErrorKind::InvalidReasonCode { .. }
        ));
        let Packet::SubAck(ack) = decode_one(&[0x90, 4, 0, 1, 0, 0x87], v5) else {
            panic!()
        };
        assert_eq!(ack.reason_codes, [ReasonCode::NotAuthorized]);
        assert_eq!(
            decode_err(&[0xb0, 3, 0, 1, 0], v3).kind(),
            ErrorKind::TrailingBytes(PacketType::UnsubAck)
        );
        assert_eq!(
            decode_err(&[0xb0, 3, 0, 1, 0], v5).kind(),
            ErrorKind::NoReasonCodes(PacketType::UnsubAck)
        );
        assert_eq!(
            decode_err(&[0xb0, 4, 0, 1, 0, 0x02], v5).kind(),
            ErrorKind::InvalidReasonCode {
                packet: PacketType::UnsubAck,
                code: 2
            }
        );
    }
}
