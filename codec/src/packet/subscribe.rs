//! SUBSCRIBE (§3.8): topic filters, each with its subscription options.

use alloc::vec::Vec;
use bytes::{BufMut, BytesMut};

use super::{Body, PacketId, PacketType, ProtocolVersion, QoS, read_packet_id};
use crate::error::ErrorKind;
use crate::properties::{PropertySet, SubscribeProperties};
use crate::topic::TopicFilter;
use crate::wire::{self, Reader};

/// Whether retained messages are sent when a subscription is made (§3.8.3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum RetainHandling {
    /// Send retained messages at the time of the subscribe (the only behaviour before 5.0).
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not already exist.
    SendAtSubscribeIfNew = 1,
    /// Do not send them.
    DoNotSend = 2,
}

/// The options byte of one subscription (§3.8.3.1). Before 5.0 only `qos` exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    /// The highest QoS the server may deliver to this subscription with.
    pub qos: QoS,
    /// 5.0: do not deliver the client's own publications back to it.
    pub no_local: bool,
    /// 5.0: keep the RETAIN flag of forwarded messages as published.
    pub retain_as_published: bool,
    /// 5.0: when to send retained messages.
    pub retain_handling: RetainHandling,
}

const NO_LOCAL: u8 = 0x04;
const RETAIN_AS_PUBLISHED: u8 = 0x08;

impl SubscriptionOptions {
    /// Options asking for `qos` and nothing else.
    pub fn qos(qos: QoS) -> Self {
        SubscriptionOptions {
            qos,
            ..Default::default()
        }
    }

    fn decode(byte: u8, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        let reserved = if version.is_v5() { 0xc0 } else { 0xfc };
        if byte & reserved != 0 {
            return Err(ErrorKind::SubscriptionOptionsReserved);
        }
        let qos = QoS::from_u8(byte & 0b11).ok_or(ErrorKind::InvalidSubscriptionQos)?;
        let retain_handling = match (byte >> 4) & 0b11 {
            0 => RetainHandling::SendAtSubscribe,
            1 => RetainHandling::SendAtSubscribeIfNew,
            2 => RetainHandling::DoNotSend,
            _ => return Err(ErrorKind::InvalidRetainHandling),
        };
        Ok(SubscriptionOptions {
            qos,
            no_local: byte & NO_LOCAL != 0,
            retain_as_published: byte & RETAIN_AS_PUBLISHED != 0,
            retain_handling,
        })
    }

    fn encode(self, version: ProtocolVersion) -> u8 {
        let mut byte = self.qos as u8;
        if version.is_v5() {
            if self.no_local {
                byte |= NO_LOCAL;
            }
            if self.retain_as_published {
                byte |= RETAIN_AS_PUBLISHED;
            }
            byte |= (self.retain_handling as u8) << 4;
        }
        byte
    }
}

/// One topic filter of a SUBSCRIBE with its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscription {
    /// The filter.
    pub filter: TopicFilter,
    /// Its options.
    pub options: SubscriptionOptions,
}

/// A SUBSCRIBE packet. Fixed header flags 0010.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// The packet identifier the SUBACK will echo.
    pub packet_id: PacketId,
    /// The subscriptions, at least one.
    pub subscriptions: Vec<Subscription>,
    /// MQTT 5.0 properties.
    pub properties: SubscribeProperties,
}

impl Body for Subscribe {
    const TYPE: PacketType = PacketType::Subscribe;

    fn decode(_: u8, r: &mut Reader, version: ProtocolVersion) -> Result<Self, ErrorKind> {
        let packet_id = read_packet_id(r)?;
        let properties = if version.is_v5() {
            SubscribeProperties::decode(r)?
        } else {
            Default::default()
        };
        let mut subscriptions = Vec::new();
        while r.has_remaining() {
            let filter = r.topic_filter()?;
            let options = SubscriptionOptions::decode(r.u8()?, version)?;
            if version.is_v5() && options.no_local && filter.is_shared() {
                return Err(ErrorKind::NoLocalOnSharedSubscription);
            }
            subscriptions.push(Subscription { filter, options });
        }
        if subscriptions.is_empty() {
            return Err(ErrorKind::NoSubscriptions);
        }
        Ok(Subscribe {
            packet_id,
            subscriptions,
            properties,
        })
    }

    #[inline]
    fn validate(&self, version: ProtocolVersion) -> Result<(), ErrorKind> {
        if self.subscriptions.is_empty() {
            return Err(ErrorKind::NoSubscriptions);
        }
        let no_local_shared = |s: &Subscription| s.options.no_local && s.filter.is_shared();
        if version.is_v5() && self.subscriptions.iter().any(no_local_shared) {
            return Err(ErrorKind::NoLocalOnSharedSubscription);
        }
        Ok(())
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn remaining_length(&self, version: ProtocolVersion) -> usize {
        let filters: usize = self
            .subscriptions
            .iter()
            .map(|s| wire::binary_len(s.filter.as_str().len()) + 1)
            .sum();
        let properties = if version.is_v5() {
            self.properties.encoded_len()
        } else {
            0
        };
        2 + properties + filters
    }

    #[cfg_attr(not(feature = "small"), inline(always))]
    fn write(&self, version: ProtocolVersion, dst: &mut BytesMut) {
        dst.put_u16(self.packet_id.get());
        if version.is_v5() {
            self.properties.encode(dst);
        }
        for s in &self.subscriptions {
            wire::put_binary(dst, s.filter.as_str().as_bytes());
            dst.put_u8(s.options.encode(version));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::packet::test_util::*;
    use crate::properties::SubscriptionId;
    use crate::{Packet, ReasonCode, TopicError};

    fn sub(filter: &str, options: SubscriptionOptions) -> Subscription {
        Subscription {
            filter: TopicFilter::try_from(filter).unwrap(),
            options,
        }
    }

    #[test]
    fn v311_subscribe() {
        let packet = Subscribe {
            packet_id: PacketId::new(10).unwrap(),
            subscriptions: vec![
                sub("a/b", SubscriptionOptions::qos(QoS::AtLeastOnce)),
                sub("c/#", SubscriptionOptions::qos(QoS::ExactlyOnce)),
            ],
            properties: Default::default(),
        };
        let bytes = [
            0x82, 0x0e, 0, 10, 0, 3, b'a', b'/', b'b', 1, 0, 3, b'c', b'/', b'#', 2,
        ];
        assert_round_trip(&Packet::from(packet), &bytes, ProtocolVersion::V3_1_1);
    }

    #[test]
    fn v5_subscribe_with_options_and_identifier() {
        let options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::DoNotSend,
        };
        let mut packet = Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            subscriptions: vec![sub("x", options)],
            properties: Default::default(),
        };
        packet.properties.subscription_identifier = SubscriptionId::new(300);
        let bytes = [0x82, 0x0a, 0, 1, 3, 0x0b, 0xac, 0x02, 0, 1, b'x', 0x2d];
        assert_round_trip(&Packet::from(packet), &bytes, ProtocolVersion::V5);
    }

    #[test]
    fn malformed_subscribes() {
        let v3 = ProtocolVersion::V3_1_1;
        let v5 = ProtocolVersion::V5;
        type Case<'a> = (
            &'a [u8],
            ProtocolVersion,
            ErrorKind,
            Option<&'a str>,
            ReasonCode,
        );
        let cases: &[Case<'_>] = &[
            (
                &[0x80, 6, 0, 1, 0, 1, b'a', 0],
                v3,
                ErrorKind::InvalidFlags {
                    packet: PacketType::Subscribe,
                    flags: 0,
                },
                Some("MQTT-2.2.2-2"),
                ReasonCode::MalformedPacket,
            ),
            (
                &[0x82, 2, 0, 1],
                v3,
                ErrorKind::NoSubscriptions,
                Some("MQTT-3.8.3-3"),
                ReasonCode::ProtocolError,
            ),
            (
                &[0x82, 3, 0, 1, 0],
                v5,
                ErrorKind::NoSubscriptions,
                Some("MQTT-3.8.3-2"),
                ReasonCode::ProtocolError,
            ),
            (
                &[0x82, 6, 0, 1, 0, 1, b'a', 4],
                v3,
                ErrorKind::SubscriptionOptionsReserved,
                Some("MQTT-3.8.3-4"),
                ReasonCode::MalformedPacket,
            ),
            (
                &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x40],
                v5,
                ErrorKind::SubscriptionOptionsReserved,
                Some("MQTT-3.8.3-5"),
                ReasonCode::MalformedPacket,
            ),
            (
                &[0x82, 6, 0, 1, 0, 1, b'a', 3],
                v3,
                ErrorKind::InvalidSubscriptionQos,
                Some("MQTT-3.8.3-4"),
                ReasonCode::ProtocolError,
            ),
            (
                &[0x82, 7, 0, 1, 0, 0, 1, b'a', 0x30],
                v5,
                ErrorKind::InvalidRetainHandling,
                None,
                ReasonCode::ProtocolError,
            ),
            (
                &[0x82, 6, 0, 0, 0, 1, b'a', 0],
                v3,
                ErrorKind::ZeroPacketId,
                Some("MQTT-2.3.1-1"),
                ReasonCode::MalformedPacket,
            ),
            (
                &[0x82, 7, 0, 1, 0, 2, b'a', b'#', 0],
                v3,
                ErrorKind::InvalidTopicFilter(TopicError::MisplacedMultiLevelWildcard),
                Some("MQTT-4.7.1-2"),
                ReasonCode::TopicFilterInvalid,
            ),
            (
                &[0x82, 8, 0, 1, 0, 0, 2, b'a', b'+', 0],
                v5,
                ErrorKind::InvalidTopicFilter(TopicError::MisplacedSingleLevelWildcard),
                Some("MQTT-4.7.1-2"),
                ReasonCode::TopicFilterInvalid,
            ),
            (
                &[0x82, 6, 0, 1, 0, 0, 0, 0],
                v5,
                ErrorKind::InvalidTopicFilter(TopicError::Empty),
                Some("MQTT-4.7.3-1"),
                ReasonCode::TopicFilterInvalid,
            ),
            // Filter without its options byte.
            (
                &[0x82, 5, 0, 1, 0, 1, b'a'],
                v3,
                ErrorKind::Truncated,
                None,
                ReasonCode::MalformedPacket,
            ),
        ];
        for (bytes, version, kind, spec, reason) in cases {
            let err = decode_err(bytes, *version);
            assert_eq!(
                (err.kind(), err.spec_ref(), err.reason_code()),
                (*kind, *spec, *reason),
                "{bytes:x?}"
            );
        }
        // No Local on a shared subscription is a Protocol Error in 5.0.
        let mut bytes = vec![0x82, 0, 0, 1, 0, 0, 10];
        bytes.extend_from_slice(b"$share/g/a");
        bytes.push(0x04);
        bytes[1] = (bytes.len() - 2) as u8;
        let err = decode_err(&bytes, v5);
        assert_eq!(
            (err.kind(), err.spec_ref()),
            (ErrorKind::NoLocalOnSharedSubscription, Some("MQTT-3.8.3-4"))
        );
        // A SUBSCRIBE property that belongs elsewhere, and a duplicated one.
        let err = decode_err(&[0x82, 8, 0, 1, 1, 0x7f, 0, 1, b'a', 0], v5);
        assert_eq!(
            (err.kind(), err.reason_code()),
            (
                ErrorKind::UnknownProperty(0x7f),
                ReasonCode::MalformedPacket
            )
        );
        let err = decode_err(&[0x82, 10, 0, 1, 3, 0x23, 0, 1, 0, 1, b'a', 0], v5);
        assert!(matches!(
            err.kind(),
            ErrorKind::PropertyNotAllowed {
                packet: "SUBSCRIBE",
                ..
            }
        ));
        assert_eq!(err.reason_code(), ReasonCode::MalformedPacket);
        let err = decode_err(&[0x82, 11, 0, 1, 4, 0x0b, 1, 0x0b, 2, 0, 1, b'a', 0], v5);
        assert!(matches!(err.kind(), ErrorKind::DuplicateProperty(_)));
        assert_eq!(err.reason_code(), ReasonCode::ProtocolError);
        let err = decode_err(&[0x82, 9, 0, 1, 2, 0x0b, 0, 0, 1, b'a', 0], v5);
        assert!(matches!(err.kind(), ErrorKind::InvalidPropertyValue(_)));
    }

    #[test]
    fn encoder_rejects_empty_subscribe() {
        let packet = Subscribe {
            packet_id: PacketId::new(1).unwrap(),
            subscriptions: vec![],
            properties: Default::default(),
        };
        assert_eq!(
            encode_err(&Packet::from(packet), ProtocolVersion::V5).kind(),
            ErrorKind::NoSubscriptions
        );
    }
}
