//! PUBLISH (§3.3): a message, in either direction.

use alloc::boxed::Box;
use bytes::{BufMut, Bytes, BytesMut};

use super::{Body, PacketId, PacketType, ProtocolVersion, QoS, read_packet_id};
use crate::error::EncodeError;
use crate::error::ErrorKind;
use crate::properties::{PropertySet, PublishProperties};
use crate::topic::TopicName;
use crate::wire::{self, Reader};

const DUP: u8 = 0b1000;
const RETAIN: u8 = 0b0001;

/// A PUBLISH packet. The payload is a zero-copy slice of the buffer it was decoded from.
///
/// Two PUBLISH packets are equal when their fields are, reading absent properties as empty.
#[derive(Clone, Debug)]
pub struct Publish {
    /// Whether this is a redelivery (QoS 1 and 2 only).
    pub dup: bool,
    /// The QoS it is sent with.
    pub qos: QoS,
    /// Whether the server should retain it, or (server to client) whether it was retained.
    pub retain: bool,
    /// The topic; empty only when the Topic Alias property stands for it (5.0).
    pub topic: TopicName,
    /// Present exactly when QoS is 1 or 2.
    pub packet_id: Option<PacketId>,
    /// The application message.
    pub payload: Bytes,
    /// MQTT 5.0 properties, `None` when there are none (always before 5.0). Boxed: most
    /// messages carry none, and a PUBLISH is moved and queued far more than any other
    /// packet, so it stays under 100 bytes. See [`Publish::properties`] and
    /// [`Publish::properties_mut`].
    pub properties: Option<Box<PublishProperties>>,
}

/// What [`Publish::properties`] shows when there are none.
static NO_PROPERTIES: PublishProperties = PublishProperties::EMPTY;

impl Publish {
    /// A QoS 0 message with no flags and no properties.
    pub fn new(topic: TopicName, payload: impl Into<Bytes>) -> Self {
        Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic,
            packet_id: None,
            payload: payload.into(),
            properties: None,
        }
    }

    /// The properties; empty when there are none.
    pub fn properties(&self) -> &PublishProperties {
        self.properties.as_deref().unwrap_or(&NO_PROPERTIES)
    }

    /// The properties, to change, allocated on first use.
    pub fn properties_mut(&mut self) -> &mut PublishProperties {
        self.properties.get_or_insert_with(Box::default)
    }
}

impl PartialEq for Publish {
    fn eq(&self, other: &Self) -> bool {
        (self.dup, self.qos, self.retain, self.packet_id)
            == (other.dup, other.qos, other.retain, other.packet_id)
            && self.topic == other.topic
            && self.payload == other.payload
            && self.properties() == other.properties()
    }
}

impl Eq for Publish {}

impl Publish {
    /// Which rule a PUBLISH that failed the quick check in `validate` breaks, if any (an
    /// empty topic is fine when a 5.0 Topic Alias stands for it).
    #[cold]
    fn diagnose(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        if self.packet_id.is_some() != (self.qos != QoS::AtMostOnce) {
            return Err(ErrorKind::PacketIdMismatch);
        }
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(ErrorKind::DupWithQos0);
        }
        let aliased = version.is_v5() && self.properties().topic_alias.is_some();
        if self.topic.is_empty() && !aliased {
            return Err(ErrorKind::EmptyTopicName);
        }
        Ok(())
    }
}

impl Body for Publish {
    const TYPE: PacketType = PacketType::Publish;

    #[inline]
    fn decode(flags: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        let qos = QoS::from_u8((flags >> 1) & 0b11).ok_or(ErrorKind::InvalidPublishQos)?;
        let dup = flags & DUP != 0;
        if dup && qos == QoS::AtMostOnce {
            return Err(ErrorKind::DupWithQos0);
        }
        let topic = r.topic_name()?;
        let packet_id = match qos {
            QoS::AtMostOnce => None,
            QoS::AtLeastOnce | QoS::ExactlyOnce => Some(read_packet_id(r)?),
        };
        let properties = if version.is_v5() {
            PublishProperties::decode_boxed(r)?
        } else {
            None
        };
        let publish = Publish {
            dup,
            qos,
            retain: flags & RETAIN != 0,
            topic,
            packet_id,
            payload: r.rest(),
            properties,
        };
        if publish.topic.is_empty() && publish.properties().topic_alias.is_none() {
            return Err(ErrorKind::EmptyTopicName);
        }
        Ok(publish)
    }

    #[inline]
    fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        // The common case in one branch-free test (this runs for every delivery): a packet
        // identifier exactly when QoS > 0, no DUP at QoS 0, and a topic name.
        let qos0 = self.qos == QoS::AtMostOnce;
        let suspect =
            (self.packet_id.is_some() == qos0) | (self.dup & qos0) | self.topic.is_empty();
        if suspect {
            self.diagnose(version)
        } else {
            Ok(())
        }
    }

    #[inline]
    fn flags(&self) -> u8 {
        let mut flags = (self.qos as u8) << 1;
        if self.dup {
            flags |= DUP;
        }
        if self.retain {
            flags |= RETAIN;
        }
        flags
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        let mut len = wire::binary_len(self.topic.as_str().len()) + self.payload.len();
        if self.packet_id.is_some() {
            len += 2;
        }
        if version.is_v5() {
            len += self
                .properties
                .as_deref()
                .map_or(1, PropertySet::encoded_len);
        }
        len
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        self.write_head(version, dst);
        dst.put_slice(&self.payload);
    }
}

impl Publish {
    /// Appends this packet to `dst` but for its payload, which the fixed header counts: the
    /// caller sends [`Publish::payload`] right after it. For a server writing a large
    /// payload from the buffer it arrived in (a vectored write) instead of copying it.
    pub fn encode_head(
        &self,
        version: ProtocolVersion,
        dst: &mut BytesMut,
    ) -> Result<(), EncodeError> {
        super::put_fixed_header(self, version, dst)?;
        self.write_head(version, dst);
        Ok(())
    }

    /// The variable header: everything after the fixed header but the payload.
    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write_head(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        wire::put_binary(dst, self.topic.as_str().as_bytes());
        if let Some(id) = self.packet_id {
            dst.put_u16(id.get());
        }
        if version.is_v5() {
            match self.properties.as_deref() {
                Some(properties) => properties.encode(dst),
                None => dst.put_u8(0),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU16;

    use super::*;
    use crate::packet::test_util::*;
    use crate::properties::{SubscriptionId, UserProperty};
    use crate::{ByteStr, Packet, ReasonCode, TopicError};

    fn publish(qos: QoS, id: u16) -> Publish {
        let mut p = Publish::new(TopicName::from_static("a/b"), &b"hi"[..]);
        p.qos = qos;
        p.packet_id = NonZeroU16::new(id);
        p
    }

    #[test]
    fn qos0_and_qos1_publish() {
        let v3 = ProtocolVersion::V3_1_1;
        let bytes = [0x30, 0x07, 0x00, 0x03, b'a', b'/', b'b', b'h', b'i'];
        assert_round_trip(&Packet::from(publish(QoS::AtMostOnce, 0)), &bytes, v3);
        let mut p = publish(QoS::AtLeastOnce, 10);
        p.dup = true;
        p.retain = true;
        let bytes = [
            0x3b, 0x09, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x0a, b'h', b'i',
        ];
        assert_round_trip(&Packet::from(p), &bytes, v3);
    }

    /// The head and then the payload are the same bytes as the whole packet.
    #[test]
    fn head_then_payload_is_the_whole_packet() {
        let mut large = publish(QoS::AtLeastOnce, 7);
        large.payload = Bytes::from(vec![0x5a; 300]); // a two-byte Remaining Length
        large.properties_mut().message_expiry_interval = Some(9);
        for p in [publish(QoS::AtMostOnce, 0), large] {
            for version in [ProtocolVersion::V3_1_1, ProtocolVersion::V5] {
                let mut whole = BytesMut::new();
                p.encode(version, &mut whole).unwrap();
                let mut head = BytesMut::new();
                p.encode_head(version, &mut head).unwrap();
                head.extend_from_slice(&p.payload);
                assert_eq!(head, whole, "{version:?}");
            }
        }
        // What the whole encoding refuses, the head refuses, writing nothing.
        let mut head = BytesMut::new();
        assert!(
            publish(QoS::AtLeastOnce, 0)
                .encode_head(ProtocolVersion::V5, &mut head)
                .is_err()
        );
        assert!(head.is_empty());
    }

    #[test]
    fn v5_publish_with_properties() {
        let mut p = publish(QoS::ExactlyOnce, 1);
        p.properties_mut().message_expiry_interval = Some(60);
        p.properties_mut().subscription_identifiers = vec![
            SubscriptionId::new(1).unwrap(),
            SubscriptionId::new(200).unwrap(),
        ];
        p.properties_mut().user_properties = vec![UserProperty {
            name: ByteStr::from_static("k"),
            value: ByteStr::from_static("v"),
        }];
        let bytes = [
            0x34, 0x1b, 0x00, 0x03, b'a', b'/', b'b', 0x00, 0x01, // topic, packet id 1
            0x11, // property length 17
            0x02, 0x00, 0x00, 0x00, 0x3c, // message expiry 60
            0x26, 0x00, 0x01, b'k', 0x00, 0x01, b'v', // user property k=v
            0x0b, 0x01, 0x0b, 0xc8, 0x01, // subscription identifiers 1 and 200 (two bytes)
            b'h', b'i',
        ];
        assert_round_trip(&Packet::from(p.clone()), &bytes, ProtocolVersion::V5);
        // The same packet for a 3.1.1 subscriber simply has no properties.
        let mut plain = p.clone();
        plain.properties = None;
        assert_eq!(
            encode(&Packet::from(p), ProtocolVersion::V3_1_1),
            encode(&Packet::from(plain), ProtocolVersion::V3_1_1)
        );
    }

    #[test]
    fn v5_empty_topic_needs_an_alias() {
        let mut p = publish(QoS::AtMostOnce, 0);
        p.topic = TopicName::empty_for_alias();
        p.properties_mut().topic_alias = NonZeroU16::new(3);
        // Remaining length: 2 (topic) + 1 + 3 (properties) + 2 (payload) = 8.
        let bytes = [0x30, 0x08, 0x00, 0x00, 0x03, 0x23, 0x00, 0x03, b'h', b'i'];
        assert_round_trip(&Packet::from(p.clone()), &bytes, ProtocolVersion::V5);
        let err = decode_err(
            &[0x30, 0x05, 0x00, 0x00, 0x00, b'h', b'i'],
            ProtocolVersion::V5,
        );
        assert_eq!(
            (err.kind(), err.reason_code()),
            (ErrorKind::EmptyTopicName, ReasonCode::ProtocolError)
        );
        assert_eq!(
            encode_err(&Packet::from(p), ProtocolVersion::V3_1_1).kind(),
            ErrorKind::EmptyTopicName
        );
        // A Topic Alias of 0 is reported as such (0x94).
        let err = decode_err(
            &[0x30, 0x08, 0x00, 0x00, 0x03, 0x23, 0x00, 0x00, b'h', b'i'],
            ProtocolVersion::V5,
        );
        assert_eq!(
            (err.kind(), err.reason_code()),
            (ErrorKind::TopicAliasZero, ReasonCode::TopicAliasInvalid)
        );
        assert_eq!(err.spec_ref(), Some("MQTT-3.3.2-8"));
    }

    #[test]
    fn malformed_publishes() {
        let v3 = ProtocolVersion::V3_1_1;
        let cases: &[(&[u8], ErrorKind, Option<&str>)] = &[
            (
                &[0x36, 0x05, 0x00, 0x01, b'a', 0x00, 0x01],
                ErrorKind::InvalidPublishQos,
                Some("MQTT-3.3.1-4"),
            ),
            (
                &[0x38, 0x03, 0x00, 0x01, b'a'],
                ErrorKind::DupWithQos0,
                Some("MQTT-3.3.1-2"),
            ),
            (
                &[0x32, 0x05, 0x00, 0x01, b'a', 0x00, 0x00],
                ErrorKind::ZeroPacketId,
                Some("MQTT-2.3.1-1"),
            ),
            (
                &[0x32, 0x04, 0x00, 0x01, b'a', 0x00],
                ErrorKind::Truncated,
                None,
            ),
            (
                &[0x30, 0x03, 0x00, 0x01, b'+'],
                ErrorKind::InvalidTopicName(TopicError::WildcardInName),
                Some("MQTT-3.3.2-2"),
            ),
            (
                &[0x30, 0x05, 0x00, 0x03, b'a', b'/', b'#'],
                ErrorKind::InvalidTopicName(TopicError::WildcardInName),
                Some("MQTT-3.3.2-2"),
            ),
            (
                &[0x30, 0x03, 0x00, 0x01, 0xff],
                ErrorKind::InvalidUtf8,
                Some("MQTT-1.5.3-1"),
            ),
            (
                &[0x30, 0x05, 0x00, 0x03, 0xed, 0xa0, 0x80],
                ErrorKind::InvalidUtf8,
                Some("MQTT-1.5.3-1"),
            ),
            (
                &[0x30, 0x03, 0x00, 0x01, 0x00],
                ErrorKind::NullCharacter,
                Some("MQTT-1.5.3-2"),
            ),
            (
                &[0x30, 0x04, 0x00, 0x05, b'a', b'b'],
                ErrorKind::Truncated,
                None,
            ),
            (
                &[0x30, 0x02, 0x00, 0x00],
                ErrorKind::EmptyTopicName,
                Some("MQTT-4.7.3-1"),
            ),
        ];
        for (bytes, kind, spec) in cases {
            let err = decode_err(bytes, v3);
            assert_eq!((err.kind(), err.spec_ref()), (*kind, *spec), "{bytes:x?}");
        }
        assert_eq!(
            decode_err(&[0x30, 0x03, 0x00, 0x01, b'+'], v3).reason_code(),
            ReasonCode::TopicNameInvalid
        );
        assert_eq!(
            decode_err(&[0x36, 0x03, 0x00, 0x01, b'a'], v3).reason_code(),
            ReasonCode::MalformedPacket
        );
    }

    #[test]
    fn encoder_rejects_inconsistent_packet_ids() {
        let v3 = ProtocolVersion::V3_1_1;
        let cases = [publish(QoS::AtMostOnce, 1), publish(QoS::AtLeastOnce, 0)];
        for p in cases {
            let err = encode_err(&Packet::from(p), v3);
            assert_eq!(
                (err.kind(), err.spec_ref()),
                (ErrorKind::PacketIdMismatch, Some("MQTT-2.3.1-5"))
            );
        }
        let mut p = publish(QoS::AtMostOnce, 0);
        p.dup = true;
        assert_eq!(
            encode_err(&Packet::from(p), v3).kind(),
            ErrorKind::DupWithQos0
        );
    }
}
