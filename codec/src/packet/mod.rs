//! The MQTT control packets (§2 and §3), one file each, and the [`Packet`] enum over them.
//!
//! One type serves all three protocol versions: fields that only MQTT 5.0 has (reason codes
//! beyond the 3.x ones, properties) are simply not encoded for 3.1 and 3.1.1 peers, so a
//! broker can forward one decoded packet to subscribers of any version.

use alloc::boxed::Box;
use core::fmt;
use core::num::NonZeroU16;

use bytes::{BufMut, Bytes, BytesMut};

use crate::decoder::MAX_PACKET_SIZE;
use crate::error::{DecodeError, EncodeError, ErrorKind};
use crate::wire::{self, Reader};

mod ack;
mod auth;
mod connack;
mod connect;
mod disconnect;
mod publish;
mod suback;
mod subscribe;
mod unsubscribe;

#[cfg(feature = "small")]
pub use ack::encode_ack;
pub use ack::{PubAck, PubComp, PubRec, PubRel};
pub use auth::Auth;
pub use connack::ConnAck;
pub use connect::{Connect, Will};
pub use disconnect::Disconnect;
pub use publish::Publish;
pub use suback::{SubAck, UnsubAck};
pub use subscribe::{RetainHandling, Subscribe, Subscription, SubscriptionOptions};
pub use unsubscribe::Unsubscribe;

/// A packet identifier (§2.2.1): never 0.
pub type PacketId = NonZeroU16;

/// The protocol version of a connection, from the CONNECT's Protocol Level.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum ProtocolVersion {
    /// MQTT 3.1: protocol name "MQIsdp", level 3.
    V3_1,
    /// MQTT 3.1.1: protocol name "MQTT", level 4.
    V3_1_1,
    /// MQTT 5.0: protocol name "MQTT", level 5.
    #[default]
    V5,
}

impl ProtocolVersion {
    /// The Protocol Level byte of the CONNECT.
    pub const fn level(self) -> u8 {
        match self {
            ProtocolVersion::V3_1 => 3,
            ProtocolVersion::V3_1_1 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    /// The version with this Protocol Level.
    pub const fn from_level(level: u8) -> Option<Self> {
        match level {
            3 => Some(ProtocolVersion::V3_1),
            4 => Some(ProtocolVersion::V3_1_1),
            5 => Some(ProtocolVersion::V5),
            _ => None,
        }
    }

    /// The Protocol Name of the CONNECT.
    pub const fn protocol_name(self) -> &'static str {
        match self {
            ProtocolVersion::V3_1 => "MQIsdp",
            ProtocolVersion::V3_1_1 | ProtocolVersion::V5 => "MQTT",
        }
    }

    /// Whether this is MQTT 5.0, with properties and reason codes.
    pub const fn is_v5(self) -> bool {
        matches!(self, ProtocolVersion::V5)
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProtocolVersion::V3_1 => "MQTT 3.1",
            ProtocolVersion::V3_1_1 => "MQTT 3.1.1",
            ProtocolVersion::V5 => "MQTT 5.0",
        })
    }
}

/// Quality of service (§4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum QoS {
    /// QoS 0: at most once, no acknowledgement.
    #[default]
    AtMostOnce = 0,
    /// QoS 1: at least once, acknowledged by PUBACK.
    AtLeastOnce = 1,
    /// QoS 2: exactly once, by PUBREC, PUBREL and PUBCOMP.
    ExactlyOnce = 2,
}

impl QoS {
    /// The QoS with this value (0, 1 or 2).
    pub const fn from_u8(value: u8) -> Option<Self> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }
}

/// The control packet types (§2.1.2).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
#[allow(missing_docs)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    Auth = 15,
}

impl PacketType {
    const fn from_u8(value: u8) -> Option<Self> {
        use PacketType::*;
        Some(match value {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The fixed header flags this type must carry; `None` for PUBLISH, whose flags vary.
    const fn fixed_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// The MQTT 5.0 statement that lists the reason codes this packet may carry.
    pub(crate) const fn reason_code_rule(self) -> Option<&'static str> {
        Some(match self {
            PacketType::ConnAck => "MQTT-3.2.2-8",
            PacketType::PubAck => "MQTT-3.4.2-1",
            PacketType::PubRec => "MQTT-3.5.2-1",
            PacketType::PubRel => "MQTT-3.6.2-1",
            PacketType::PubComp => "MQTT-3.7.2-1",
            PacketType::SubAck => "MQTT-3.9.3-2",
            PacketType::UnsubAck => "MQTT-3.11.3-2",
            PacketType::Disconnect => "MQTT-3.14.2-1",
            PacketType::Auth => "MQTT-3.15.2-1",
            _ => return None,
        })
    }

    /// The name the specification uses, e.g. "PUBREL".
    pub const fn name(self) -> &'static str {
        use PacketType::*;
        match self {
            Connect => "CONNECT",
            ConnAck => "CONNACK",
            Publish => "PUBLISH",
            PubAck => "PUBACK",
            PubRec => "PUBREC",
            PubRel => "PUBREL",
            PubComp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            SubAck => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            UnsubAck => "UNSUBACK",
            PingReq => "PINGREQ",
            PingResp => "PINGRESP",
            Disconnect => "DISCONNECT",
            Auth => "AUTH",
        }
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What each packet struct implements: its body's decoding, size and encoding.
pub(crate) trait Body: Sized {
    const TYPE: PacketType;

    /// Decodes the variable header and payload. `flags` are the fixed header's low four
    /// bits, already checked for every type but PUBLISH.
    fn decode(flags: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind>;

    /// Checks what the types cannot express before encoding.
    fn validate(&self, _version: ProtocolVersion) -> Result<(), ErrorKind> {
        Ok(())
    }

    /// The fixed header's low four bits.
    fn flags(&self) -> u8 {
        Self::TYPE.fixed_flags().unwrap_or(0)
    }

    /// The Remaining Length: the encoded size of the variable header and payload.
    fn remaining_length(&self, version: ProtocolVersion) -> usize;

    /// Writes the variable header and payload.
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut);
}

/// Any MQTT control packet. The large and rare ones are boxed, so a `Packet` stays small.
#[derive(Clone, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(Box<ConnAck>),
    Publish(Publish),
    PubAck(PubAck),
    PubRec(PubRec),
    PubRel(PubRel),
    PubComp(PubComp),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Box<Disconnect>),
    Auth(Box<Auth>),
}

/// Evaluates `$f` with `$body` bound to the packet struct inside a [`Packet`], or `$ping`
/// with `$ty` bound to the type of the two packets that have no body.
macro_rules! with_body {
    ($packet:expr, $body:ident => $f:expr, $ty:ident => $ping:expr) => {
        match $packet {
            Packet::Connect(b) => {
                let $body: &Connect = b;
                $f
            }
            Packet::ConnAck(b) => {
                let $body: &ConnAck = b;
                $f
            }
            Packet::Publish($body) => $f,
            Packet::PubAck($body) => $f,
            Packet::PubRec($body) => $f,
            Packet::PubRel($body) => $f,
            Packet::PubComp($body) => $f,
            Packet::Subscribe($body) => $f,
            Packet::SubAck($body) => $f,
            Packet::Unsubscribe($body) => $f,
            Packet::UnsubAck($body) => $f,
            Packet::Disconnect(b) => {
                let $body: &Disconnect = b;
                $f
            }
            Packet::Auth(b) => {
                let $body: &Auth = b;
                $f
            }
            Packet::PingReq => {
                let $ty = PacketType::PingReq;
                $ping
            }
            Packet::PingResp => {
                let $ty = PacketType::PingResp;
                $ping
            }
        }
    };
}

/// The fixed header's first byte for a packet struct.
fn first_byte<B: Body>(body: &B) -> u8 {
    ((B::TYPE as u8) << 4) | body.flags()
}

/// Decodes a packet body of type `B` straight into the decoder's result.
///
/// The result type is the one [`crate::Decoder::decode`] returns, so the packet is written
/// once into its final place instead of being moved through `map` and `map_err` (a PUBLISH
/// is a few hundred bytes; those moves were a fifth of the decode time).
#[cfg_attr(not(feature = "small"), inline(always))]
#[cfg_attr(feature = "small", inline(never))]
fn decode_into<B: Body>(
    flags: u8,
    r: &mut Reader,
    version: ProtocolVersion,
    wrap: impl FnOnce(B) -> Packet,
) -> Result<Option<Packet>, DecodeError> {
    match B::decode(flags, r, version) {
        Ok(body) if !r.has_remaining() => Ok(Some(wrap(body))),
        Ok(_) => Err(DecodeError::new(ErrorKind::TrailingBytes(B::TYPE), version)),
        Err(kind) => Err(DecodeError::new(kind, version)),
    }
}

/// Decodes one whole packet for [`crate::Decoder`]; a CONNECT switches `version` to its own.
/// Never returns `Ok(None)`: the `Option` is the decoder's, so no conversion is needed.
/// `FROM_SERVER` refuses the packets only clients send, without decoding them (and without
/// their decoders in a client's binary).
#[cfg_attr(not(feature = "small"), inline)]
#[cfg_attr(feature = "small", inline(never))]
pub(crate) fn decode<const FROM_SERVER: bool>(
    first: u8,
    body: Bytes,
    version: &mut ProtocolVersion,
) -> Result<Option<Packet>, DecodeError> {
    let v = *version;
    let packet_type = match check_first_byte(first, v) {
        Ok(t) => t,
        Err(kind) => return Err(DecodeError::new(kind, v)),
    };
    let flags = first & 0x0f;
    let r = &mut Reader::new(body);
    match packet_type {
        PacketType::Connect
        | PacketType::Subscribe
        | PacketType::Unsubscribe
        | PacketType::PingReq
            if FROM_SERVER =>
        {
            Err(DecodeError::new(
                ErrorKind::ClientOnlyPacket(packet_type),
                v,
            ))
        }
        PacketType::Connect => {
            let connect = connect::decode_packet(r)?;
            *version = connect.protocol_version;
            Ok(Some(Packet::Connect(Box::new(connect))))
        }
        PacketType::ConnAck => decode_into(flags, r, v, |c| Packet::ConnAck(Box::new(c))),
        PacketType::Publish => decode_into(flags, r, v, Packet::Publish),
        #[cfg(feature = "small")]
        PacketType::PubAck | PacketType::PubRec | PacketType::PubRel | PacketType::PubComp => {
            match ack::decode_any(packet_type, r, v) {
                Ok(packet) => Ok(Some(packet)),
                Err(kind) => Err(DecodeError::new(kind, v)),
            }
        }
        #[cfg(not(feature = "small"))]
        PacketType::PubAck => decode_into(flags, r, v, Packet::PubAck),
        #[cfg(not(feature = "small"))]
        PacketType::PubRec => decode_into(flags, r, v, Packet::PubRec),
        #[cfg(not(feature = "small"))]
        PacketType::PubRel => decode_into(flags, r, v, Packet::PubRel),
        #[cfg(not(feature = "small"))]
        PacketType::PubComp => decode_into(flags, r, v, Packet::PubComp),
        PacketType::Subscribe => decode_into(flags, r, v, Packet::Subscribe),
        PacketType::SubAck => decode_into(flags, r, v, Packet::SubAck),
        PacketType::Unsubscribe => decode_into(flags, r, v, Packet::Unsubscribe),
        PacketType::UnsubAck => decode_into(flags, r, v, Packet::UnsubAck),
        PacketType::PingReq | PacketType::PingResp if r.has_remaining() => {
            Err(DecodeError::new(ErrorKind::TrailingBytes(packet_type), v))
        }
        PacketType::PingReq => Ok(Some(Packet::PingReq)),
        PacketType::PingResp => Ok(Some(Packet::PingResp)),
        PacketType::Disconnect => decode_into(flags, r, v, |d| Packet::Disconnect(Box::new(d))),
        PacketType::Auth => decode_into(flags, r, v, |a| Packet::Auth(Box::new(a))),
    }
}

impl Packet {
    /// The packet's type.
    pub fn packet_type(&self) -> PacketType {
        fn of<B: Body>(_: &B) -> PacketType {
            B::TYPE
        }
        with_body!(self, b => of(b), t => t)
    }

    /// The Remaining Length this packet encodes to in `version`.
    pub fn remaining_length(&self, version: ProtocolVersion) -> usize {
        with_body!(self, b => b.remaining_length(version), _t => 0)
    }

    /// The number of bytes [`Packet::encode`] writes, computed without encoding: for checking
    /// a peer's Maximum Packet Size before committing to send.
    pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
        let remaining = self.remaining_length(version);
        1 + wire::varint_len(remaining) + remaining
    }

    /// Appends the encoded packet to `dst`, as `version` lays it out.
    ///
    /// Fields `version` has no room for (properties and 5.0-only reason codes before 5.0)
    /// are left out; what cannot be left out (AUTH before 5.0, a packet identifier that does
    /// not agree with the QoS, ...) is an error and writes nothing.
    pub fn encode(&self, version: ProtocolVersion, dst: &mut BytesMut) -> Result<(), EncodeError> {
        with_body!(self, b => encode_packet(b, version, dst), t => {
            dst.put_slice(&[(t as u8) << 4, 0]);
            Ok(())
        })
    }
}

/// Appends a whole packet, fixed header included, to `dst`, or writes nothing and fails.
#[cfg_attr(not(feature = "small"), inline(always))]
fn encode_packet<B: Body>(
    b: &B,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<(), EncodeError> {
    let err = |kind| EncodeError::new(kind, version);
    if B::TYPE == PacketType::Auth && !version.is_v5() {
        return Err(err(ErrorKind::PacketNotInVersion(PacketType::Auth)));
    }
    let remaining = put_fixed_header(b, version, dst)?;
    let start = dst.len();
    b.write(version, dst);
    debug_assert_eq!(dst.len() - start, remaining, "{} length", B::TYPE);
    Ok(())
}

/// Checks a packet for encoding and appends its fixed header to `dst`, or writes nothing
/// and fails; the Remaining Length it wrote.
#[inline(always)]
fn put_fixed_header<B: Body>(
    b: &B,
    version: ProtocolVersion,
    dst: &mut BytesMut,
) -> Result<usize, EncodeError> {
    let err = |kind| EncodeError::new(kind, version);
    b.validate(version).map_err(err)?;
    let remaining = b.remaining_length(version);
    let size = 1 + wire::varint_len(remaining) + remaining;
    if remaining > wire::VARINT_MAX as usize {
        return Err(err(ErrorKind::PacketTooLarge {
            size,
            maximum: MAX_PACKET_SIZE,
        }));
    }
    // No up-front reserve: BytesMut grows as it is written, and checking for room once more
    // cost a measurable share of encoding a small PUBLISH into a reused buffer.
    dst.put_u8(first_byte(b));
    wire::put_varint(dst, remaining);
    Ok(remaining)
}

/// Each packet struct encodes on its own too, so a broker can send a shared `Publish`
/// without building a [`Packet`] around it; and converts into a [`Packet`].
/// Encoding for code that is generic over the packet structs, or sends only some of them:
/// a client encoding each packet by its own type carries no encoder for the packets only a
/// server sends, as it would through [`Packet::encode`].
pub trait Encode {
    /// Appends the packet, fixed header included, to `dst`: see [`Packet::encode`].
    fn encode(&self, version: ProtocolVersion, dst: &mut BytesMut) -> Result<(), EncodeError>;
    /// The number of bytes [`Encode::encode`] writes: see [`Packet::encoded_len`].
    fn encoded_len(&self, version: ProtocolVersion) -> usize;
}

macro_rules! packet_structs {
    ($($ty:ident),*) => {$(
        impl Encode for $ty {
            fn encode(&self, version: ProtocolVersion, dst: &mut BytesMut) -> Result<(), EncodeError> {
                encode_packet(self, version, dst)
            }

            fn encoded_len(&self, version: ProtocolVersion) -> usize {
                $ty::encoded_len(self, version)
            }
        }

        impl $ty {
            /// Appends this packet, fixed header included, to `dst`: see [`Packet::encode`].
            #[inline]
            pub fn encode(&self, version: ProtocolVersion, dst: &mut BytesMut) -> Result<(), EncodeError> {
                encode_packet(self, version, dst)
            }

            /// The number of bytes [`Self::encode`] writes: see [`Packet::encoded_len`].
            pub fn encoded_len(&self, version: ProtocolVersion) -> usize {
                let remaining = self.remaining_length(version);
                1 + wire::varint_len(remaining) + remaining
            }
        }

        impl From<$ty> for Packet {
            fn from(p: $ty) -> Packet {
                // `into` boxes the boxed variants and is the identity for the rest.
                #[allow(clippy::useless_conversion)]
                Packet::$ty(p.into())
            }
        }
    )*};
}

packet_structs!(
    Connect,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth
);

/// Checks the packet type and the fixed header flags of a packet's first byte, so that a
/// stream that is not MQTT fails at its first byte rather than after buffering.
pub(crate) fn check_first_byte(
    first: u8,
    version: ProtocolVersion,
) -> Result<PacketType, ErrorKind> {
    let flags = first & 0x0f;
    let packet_type = match PacketType::from_u8(first >> 4) {
        Some(PacketType::Auth) if !version.is_v5() => None,
        other => other,
    }
    .ok_or(ErrorKind::ReservedPacketType(first >> 4))?;
    match packet_type.fixed_flags() {
        Some(expected) if flags != expected => Err(ErrorKind::InvalidFlags {
            packet: packet_type,
            flags,
        }),
        _ => Ok(packet_type),
    }
}

/// Reads a packet identifier, rejecting 0.
pub(crate) fn read_packet_id(r: &mut Reader) -> Result<PacketId, ErrorKind> {
    PacketId::new(r.u16()?).ok_or(ErrorKind::ZeroPacketId)
}

/// Reads an MQTT 5.0 reason code and checks it is one `packet` may carry.
pub(crate) fn read_reason_code(
    r: &mut Reader,
    packet: PacketType,
    allowed: &[crate::ReasonCode],
) -> Result<crate::ReasonCode, ErrorKind> {
    let code = r.u8()?;
    crate::ReasonCode::from_u8(code)
        .filter(|c| allowed.contains(c))
        .ok_or(ErrorKind::InvalidReasonCode { packet, code })
}

/// Checks, before encoding, that `code` is one `packet` may carry.
pub(crate) fn check_reason_code(
    code: crate::ReasonCode,
    packet: PacketType,
    allowed: &[crate::ReasonCode],
) -> Result<(), ErrorKind> {
    if allowed.contains(&code) {
        Ok(())
    } else {
        Err(ErrorKind::InvalidReasonCode {
            packet,
            code: code as u8,
        })
    }
}

#[cfg(test)]
pub(crate) mod test_util;

#[cfg(test)]
mod tests {
    use super::*;

    /// Through the trait, a packet struct encodes as it does through [`Packet`].
    #[test]
    fn encode_trait_agrees_with_packet() {
        fn check(packet: impl Encode + Clone + Into<Packet>, version: ProtocolVersion) {
            let (mut ours, mut theirs) = (BytesMut::new(), BytesMut::new());
            Encode::encode(&packet, version, &mut ours).unwrap();
            packet.clone().into().encode(version, &mut theirs).unwrap();
            assert_eq!(ours, theirs);
            assert_eq!(Encode::encoded_len(&packet, version), ours.len());
        }
        let topic = crate::TopicName::try_from("a/b").unwrap();
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            check(Publish::new(topic.clone(), "x"), version);
            check(PubAck::new(PacketId::new(7).unwrap()), version);
            check(Disconnect::default(), version);
        }
    }

    /// Packets are moved through the decoder and queued by the broker: the big, rare ones
    /// (CONNECT, CONNACK, PUBLISH properties) are boxed so that every packet stays small.
    #[test]
    fn packets_stay_small() {
        assert!(
            size_of::<Publish>() <= 88,
            "Publish is {} bytes",
            size_of::<Publish>()
        );
        assert!(
            size_of::<Packet>() <= 96,
            "Packet is {} bytes",
            size_of::<Packet>()
        );
    }

    #[test]
    fn ping_packets() {
        for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
            test_util::assert_round_trip(&Packet::PingReq, &[0xc0, 0], version);
            test_util::assert_round_trip(&Packet::PingResp, &[0xd0, 0], version);
        }
    }
}
