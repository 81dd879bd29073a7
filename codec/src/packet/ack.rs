//! PUBACK, PUBREC, PUBREL and PUBCOMP (§3.4 to §3.7): the acknowledgements of the QoS 1 and
//! QoS 2 flows. All four share one layout; only their type, flags and reason codes differ.

use bytes::{BufMut, BytesMut};

use super::{
    Body, PacketId, PacketType, ProtocolVersion, check_reason_code, read_packet_id,
    read_reason_code,
};
use crate::error::ErrorKind;
use crate::properties::{AckProperties, PropertySet};
use crate::reason::{ReasonCode, allowed};
use crate::wire::Reader;

/// The shared layout: packet identifier, then (5.0) reason code and properties, each
/// omitted when it has its default value and nothing follows it (§3.4.2.1).
fn decode(
    r: &mut Reader,
    version: ProtocolVersion,
    packet: PacketType,
    allowed: &[ReasonCode],
) -> Result<(PacketId, ReasonCode, AckProperties), ErrorKind> {
    let packet_id = read_packet_id(r)?;
    if !version.is_v5() || !r.has_remaining() {
        return Ok((packet_id, ReasonCode::Success, AckProperties::default()));
    }
    let reason_code = read_reason_code(r, packet, allowed)?;
    // With `small`, checked and left empty: the client ignores them.
    #[cfg(feature = "small")]
    AckProperties::check_ignored(r, r.has_remaining())?;
    #[cfg(feature = "small")]
    let properties = AckProperties::EMPTY;
    #[cfg(not(feature = "small"))]
    let properties = if r.has_remaining() {
        AckProperties::decode(r)?
    } else {
        Default::default()
    };
    Ok((packet_id, reason_code, properties))
}

/// With the feature `small` (the browser client): any of the four, decoded by one function
/// rather than one copy of the decoder's wrapping per type. The same checks and results as
/// each type's own [`Body::decode`] through `decode_into`.
#[cfg(feature = "small")]
pub(super) fn decode_any(
    packet_type: PacketType,
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<super::Packet, ErrorKind> {
    use super::Packet;
    let allowed = allowed_in(packet_type);
    let (packet_id, reason_code, properties) = decode(r, version, packet_type, allowed)?;
    if r.has_remaining() {
        return Err(ErrorKind::TrailingBytes(packet_type));
    }
    Ok(match packet_type {
        PacketType::PubAck => Packet::PubAck(PubAck {
            packet_id,
            reason_code,
            properties,
        }),
        PacketType::PubRec => Packet::PubRec(PubRec {
            packet_id,
            reason_code,
            properties,
        }),
        PacketType::PubRel => Packet::PubRel(PubRel {
            packet_id,
            reason_code,
            properties,
        }),
        _ => Packet::PubComp(PubComp {
            packet_id,
            reason_code,
            properties,
        }),
    })
}

/// With the feature `small`: the reason codes allowed in one of the four.
#[cfg(feature = "small")]
fn allowed_in(packet_type: PacketType) -> &'static [ReasonCode] {
    match packet_type {
        PacketType::PubAck => allowed::PUBACK,
        PacketType::PubRec => allowed::PUBREC,
        PacketType::PubRel => allowed::PUBREL,
        _ => allowed::PUBCOMP,
    }
}

/// With the feature `small` (the browser client): any of the four without properties,
/// encoded by one function rather than one copy of the packet encoder per type. The same
/// checks and bytes as [`PubAck::encode`] and the others for such an acknowledgement.
/// `packet_type` is one of the four.
#[cfg(feature = "small")]
pub fn encode_ack(
    packet_type: PacketType,
    packet_id: PacketId,
    reason_code: ReasonCode,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), crate::EncodeError> {
    if version.is_v5() {
        check_reason_code(reason_code, packet_type, allowed_in(packet_type))
            .map_err(|kind| crate::EncodeError::new(kind, version))?;
    }
    let properties = AckProperties::default();
    dst.put_u8(((packet_type as u8) << 4) | packet_type.fixed_flags().unwrap_or(0));
    dst.put_u8(remaining_length(version, reason_code, &properties) as u8);
    write(version, dst, packet_id, reason_code, &properties);
    Ok(())
}

#[cfg_attr(not(feature = "small"), inline(always))]
fn remaining_length(
    version: ProtocolVersion,
    reason: ReasonCode,
    properties: &AckProperties,
) -> usize {
    match (version.is_v5(), reason, properties.is_empty()) {
        (false, ..) | (true, ReasonCode::Success, true) => 2,
        (true, _, true) => 3,
        (true, _, false) => 3 + properties.encoded_len(),
    }
}

#[cfg_attr(not(feature = "small"), inline(always))]
fn write(
    version: ProtocolVersion,
    dst: &mut BytesMut,
    packet_id: PacketId,
    reason: ReasonCode,
    properties: &AckProperties,
) {
    dst.put_u16(packet_id.get());
    let len = remaining_length(version, reason, properties);
    if len > 2 {
        dst.put_u8(reason as u8);
    }
    if len > 3 {
        properties.encode(dst);
    }
}

macro_rules! ack_packet {
    ($(#[$doc:meta])* $name:ident, $allowed:path) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub struct $name {
            /// The packet identifier of the flow this acknowledges.
            pub packet_id: PacketId,
            /// The outcome (5.0; always success before 5.0).
            pub reason_code: ReasonCode,
            /// MQTT 5.0 properties.
            pub properties: AckProperties,
        }

        impl $name {
            /// A successful acknowledgement without properties.
            pub fn new(packet_id: PacketId) -> Self {
                $name { packet_id, reason_code: ReasonCode::Success, properties: AckProperties::default() }
            }
        }

        impl Body for $name {
            const TYPE: PacketType = PacketType::$name;

            fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
                let (packet_id, reason_code, properties) = decode(r, version, Self::TYPE, $allowed)?;
                Ok($name { packet_id, reason_code, properties })
            }

            #[inline]
            fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
                if version.is_v5() {
                    check_reason_code(self.reason_code, Self::TYPE, $allowed)?;
                }
                Ok(())
            }

            #[cfg_attr(not(feature = "small"), inline(always))]
            fn remaining_length(&self, version: ProtocolVersion) -> usize {
                remaining_length(version, self.reason_code, &self.properties)
            }

            #[cfg_attr(not(feature = "small"), inline(always))]
            fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
                write(version, dst, self.packet_id, self.reason_code, &self.properties)
            }
        }
    };
}

ack_packet!(
    /// PUBACK: the receiver's answer to a QoS 1 PUBLISH.
    PubAck, allowed::PUBACK
);
ack_packet!(
    /// PUBREC: the receiver's first answer to a QoS 2 PUBLISH.
    PubRec, allowed::PUBREC
);
ack_packet!(
    /// PUBREL: the sender's answer to a PUBREC. Fixed header flags 0010.
    PubRel, allowed::PUBREL
);
ack_packet!(
    /// PUBCOMP: the receiver's answer to a PUBREL, completing QoS 2.
    PubComp, allowed::PUBCOMP
);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::{ByteStr, Packet};

    fn id(n: u16) -> PacketId {
        PacketId::new(n).unwrap()
    }

    #[test]
    fn v311_acks_are_four_bytes() {
        let v3 = ProtocolVersion::V3_1_1;
        assert_round_trip(&Packet::from(PubAck::new(id(7))), &[0x40, 2, 0, 7], v3);
        assert_round_trip(&Packet::from(PubRec::new(id(7))), &[0x50, 2, 0, 7], v3);
        assert_round_trip(&Packet::from(PubRel::new(id(7))), &[0x62, 2, 0, 7], v3);
        assert_round_trip(&Packet::from(PubComp::new(id(258))), &[0x70, 2, 1, 2], v3);
    }

    #[test]
    fn v5_short_and_long_forms() {
        let v5 = ProtocolVersion::V5;
        // Success without properties: the reason code is omitted (remaining length 2).
        assert_round_trip(&Packet::from(PubAck::new(id(1))), &[0x40, 2, 0, 1], v5);
        // A reason code without properties: remaining length 3.
        let mut ack = PubAck::new(id(1));
        ack.reason_code = ReasonCode::NoMatchingSubscribers;
        assert_round_trip(&Packet::from(ack.clone()), &[0x40, 3, 0, 1, 0x10], v5);
        // With properties.
        let emptied = Packet::from(ack.clone());
        ack.properties.reason_string = Some(ByteStr::from_static("no"));
        let bytes = [0x40, 9, 0, 1, 0x10, 5, 0x1f, 0, 2, b'n', b'o'];
        assert_eq!(&encode(&Packet::from(ack.clone()), v5)[..], bytes);
        round_trip_ignored(&Packet::from(ack), &emptied, v5);
        // Remaining length 4 with a property length of 0 is also legal.
        let Packet::PubRec(rec) = decode_one(&[0x50, 4, 0, 1, 0x80, 0], v5) else {
            panic!()
        };
        assert_eq!(rec.reason_code, ReasonCode::UnspecifiedError);
        let mut rel = PubRel::new(id(9));
        rel.reason_code = ReasonCode::PacketIdentifierNotFound;
        assert_round_trip(&Packet::from(rel), &[0x62, 3, 0, 9, 0x92], v5);
    }

    /// `encode_ack` writes what each type's own encoder writes for an acknowledgement
    /// without properties, and refuses the reason codes that one refuses.
    #[cfg(feature = "small")]
    #[test]
    fn encode_ack_matches_each_type() {
        use crate::Encode;
        let codes = [
            ReasonCode::Success,
            ReasonCode::NoMatchingSubscribers,
            ReasonCode::PacketIdentifierNotFound,
            ReasonCode::UnspecifiedError,
        ];
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            for code in codes {
                let (mut ack, mut rec) = (PubAck::new(id(3)), PubRec::new(id(3)));
                let (mut rel, mut comp) = (PubRel::new(id(3)), PubComp::new(id(3)));
                ack.reason_code = code;
                rec.reason_code = code;
                rel.reason_code = code;
                comp.reason_code = code;
                let each: [(PacketType, &dyn Encode); 4] = [
                    (PacketType::PubAck, &ack),
                    (PacketType::PubRec, &rec),
                    (PacketType::PubRel, &rel),
                    (PacketType::PubComp, &comp),
                ];
                for (packet_type, packet) in each {
                    let (mut one, mut other) = (BytesMut::new(), BytesMut::new());
                    let a = encode_ack(packet_type, id(3), code, version, &mut one);
                    let b = packet.encode(version, &mut other);
                    assert_eq!(a, b, "{packet_type} {code:?} {version:?}");
                    assert_eq!(one, other, "{packet_type} {code:?} {version:?}");
                }
            }
        }
    }

    #[test]
    fn malformed_acks() {
        let v3 = ProtocolVersion::V3_1_1;
        let v5 = ProtocolVersion::V5;
        let err = decode_err(&[0x60, 2, 0, 1], v3);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidFlags {
                packet: PacketType::PubRel,
                flags: 0
            }
        );
        assert_eq!(err.spec_ref(), Some("MQTT-2.2.2-2"));
        assert_eq!(
            decode_err(&[0x60, 2, 0, 1], v5).spec_ref(),
            Some("MQTT-2.1.3-1")
        );
        assert_eq!(
            decode_err(&[0x41, 2, 0, 1], v5).reason_code(),
            ReasonCode::MalformedPacket
        );
        assert_eq!(
            decode_err(&[0x40, 2, 0, 0], v5).kind(),
            ErrorKind::ZeroPacketId
        );
        assert_eq!(
            decode_err(&[0x40, 3, 0, 1, 0], v3).kind(),
            ErrorKind::TrailingBytes(PacketType::PubAck)
        );
        let err = decode_err(&[0x70, 3, 0, 1, 0x10], v5);
        assert_eq!(
            err.kind(),
            ErrorKind::InvalidReasonCode {
                packet: PacketType::PubComp,
                code: 0x10
            }
        );
        assert_eq!(err.spec_ref(), Some("MQTT-3.7.2-1"));
        // Properties that run past the packet.
        assert_eq!(
            decode_err(&[0x40, 5, 0, 1, 0, 5, 0x1f], v5).kind(),
            ErrorKind::Truncated
        );
    }
}
