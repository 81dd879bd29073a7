//! # midge-codec
//!
//! A sans-IO codec for MQTT 3.1, 3.1.1 and 5.0, shared by the Midge broker and its browser
//! client. Bytes go in, packets come out, and back; there is no I/O, no clock and no
//! allocation beyond what the packets themselves hold.
//!
//! - [`Decoder`] splits whole packets off a `BytesMut` as bytes arrive: `Ok(None)` means
//!   "need more bytes"; the remaining length and the maximum packet size are checked before
//!   any body is waited for; payloads and strings are zero-copy slices of the input.
//! - [`Packet::encode`] appends a packet to a `BytesMut`; [`Packet::encoded_len`] gives its
//!   size without encoding it.
//! - [`TopicName`] and [`TopicFilter`] are validated once and match without allocating.
//! - Every broken rule is a [`DecodeError`] (or [`EncodeError`]) whose [`ErrorKind`] names the
//!   specification's conformance statement and the [`ReasonCode`] to send the peer.
//!
//! ```
//! use bytes::BytesMut;
//! use midge_codec::{Decoder, Packet, ProtocolVersion, Publish, QoS, TopicName};
//!
//! let mut publish = Publish::new(TopicName::try_from("sensors/1/temp").unwrap(), "21.5");
//! publish.qos = QoS::AtLeastOnce;
//! publish.packet_id = std::num::NonZeroU16::new(1);
//!
//! let mut wire = BytesMut::new();
//! Packet::from(publish.clone()).encode(ProtocolVersion::V5, &mut wire).unwrap();
//!
//! let mut decoder = Decoder::new(ProtocolVersion::V5);
//! assert_eq!(decoder.decode(&mut wire).unwrap(), Some(Packet::Publish(publish)));
//! ```

// With `small` (the browser client's build), the codec uses only `core` and `alloc`, so a
// client can leave the standard library out (it has no I/O). The types are the same either
// way: `std`'s `Vec`, `String` and `fmt` are `alloc`'s and `core`'s.
#![cfg_attr(all(feature = "small", not(test)), no_std)]

extern crate alloc;

mod decoder;
mod error;
pub mod packet;
pub mod properties;
mod reason;
mod string;
pub mod text;
pub mod topic;
mod wire;

pub use decoder::{Decoder, MAX_PACKET_SIZE};
pub use error::{DecodeError, EncodeError, ErrorKind};
#[cfg(feature = "small")]
pub use packet::encode_ack;
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, Encode, Packet, PacketId, PacketType, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, QoS, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionOptions, UnsubAck, Unsubscribe, Will,
};
pub use properties::{PropertyId, SubscriptionId, UserProperty};
pub use reason::ReasonCode;
pub use string::{ByteStr, MAX_STRING_LEN, StringError};
pub use topic::{TopicError, TopicFilter, TopicName};
pub use wire::VARINT_MAX;

/// The examples in the repository's README, run as doc tests so the README cannot drift.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
struct ReadmeExamples;
