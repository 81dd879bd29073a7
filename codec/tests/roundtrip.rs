//! Property tests over every packet type in every protocol version:
//! - any valid packet encodes and decodes back to itself, and `encoded_len` is exact;
//! - the bytes of a run of packets, fed split at every possible boundary, decode to the same
//!   packets;
//! - arbitrary bytes never make the decoder panic.

// Test code: strategies and helpers outside #[test] functions may unwrap and index.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use midge_codec::properties::{
    AckProperties, AuthProperties, ConnAckProperties, ConnectProperties, DisconnectProperties,
    PublishProperties, SubscribeProperties, UnsubscribeProperties, WillProperties,
};
use midge_codec::{
    Auth, ByteStr, ConnAck, Connect, Decoder, Disconnect, Packet, ProtocolVersion, PubAck, PubComp,
    PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe, Subscription,
    SubscriptionId, SubscriptionOptions, TopicFilter, TopicName, UnsubAck, Unsubscribe,
    UserProperty, Will,
};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

const VERSIONS: [ProtocolVersion; 3] = [
    ProtocolVersion::V3_1,
    ProtocolVersion::V3_1_1,
    ProtocolVersion::V5,
];

fn version() -> impl Strategy<Value = ProtocolVersion> {
    prop::sample::select(&VERSIONS[..])
}

fn string() -> impl Strategy<Value = ByteStr> {
    "[a-zA-Z0-9 /é✓+#$-]{0,12}".prop_map(|s| ByteStr::try_from(s).unwrap())
}

fn binary() -> impl Strategy<Value = Bytes> {
    vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn level() -> impl Strategy<Value = String> {
    "[a-z0-9é-]{0,6}"
}

fn topic_name() -> impl Strategy<Value = TopicName> {
    (prop::bool::weighted(0.1), vec(level(), 1..5)).prop_filter_map("non-empty", |(sys, levels)| {
        let name = levels.join("/");
        let name = if sys { format!("$SYS/{name}") } else { name };
        TopicName::try_from(name).ok()
    })
}

fn topic_filter() -> impl Strategy<Value = TopicFilter> {
    let filter_level = prop_oneof![4 => level(), 1 => Just("+".to_string())];
    (
        of("[a-z]{1,5}"),
        vec(filter_level, 1..5),
        prop::bool::weighted(0.3),
    )
        .prop_filter_map("non-empty", |(share, mut levels, multi)| {
            if multi {
                levels.push("#".into());
            }
            let filter = levels.join("/");
            let filter = match share {
                Some(group) => format!("$share/{group}/{filter}"),
                None => filter,
            };
            TopicFilter::try_from(filter).ok()
        })
}

fn qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn packet_id() -> impl Strategy<Value = NonZeroU16> {
    any::<NonZeroU16>()
}

fn user_properties() -> impl Strategy<Value = Vec<UserProperty>> {
    vec(
        (string(), string()).prop_map(|(name, value)| UserProperty { name, value }),
        0..3,
    )
}

fn subscription_id() -> impl Strategy<Value = SubscriptionId> {
    (1..=midge_codec::VARINT_MAX).prop_map(|v| SubscriptionId::new(v).unwrap())
}

/// Picks one of the reason codes a packet may carry in `version`.
fn reason(
    version: ProtocolVersion,
    v5: &'static [u8],
    v3: &'static [u8],
) -> BoxedStrategy<ReasonCode> {
    let codes = if version.is_v5() { v5 } else { v3 };
    prop::sample::select(codes)
        .prop_map(|c| ReasonCode::from_u8(c).unwrap())
        .boxed()
}

/// The reason codes of the MQTT 5.0 tables (§3.x), and of the 3.x packets that have them.
const CONNACK_V5: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const CONNACK_V3: &[u8] = &[0x00, 0x84, 0x85, 0x88, 0x86, 0x87];
const PUBACK_V5: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_V5: &[u8] = &[0x00, 0x92];
const SUBACK_V5: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const SUBACK_V3: &[u8] = &[0x00, 0x01, 0x02, 0x80];
const UNSUBACK_V5: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT_V5: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const SUCCESS: &[u8] = &[0x00];

/// Properties in 5.0, none before it.
fn props<P: Default + Clone + std::fmt::Debug + 'static>(
    version: ProtocolVersion,
    strategy: impl Strategy<Value = P> + 'static,
) -> BoxedStrategy<P> {
    if version.is_v5() {
        strategy.boxed()
    } else {
        Just(P::default()).boxed()
    }
}

fn connect_properties() -> impl Strategy<Value = ConnectProperties> {
    (
        of(any::<u32>()),
        of(any::<NonZeroU16>()),
        of(any::<NonZeroU32>()),
        of(any::<u16>()),
        of(any::<bool>()),
        of(any::<bool>()),
        user_properties(),
        of(string()),
        of(binary()),
    )
        .prop_map(
            |(sei, rm, mps, tam, rri, rpi, up, am, ad)| ConnectProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_packet_size: mps,
                topic_alias_maximum: tam,
                request_response_information: rri,
                request_problem_information: rpi,
                user_properties: up,
                authentication_method: am,
                authentication_data: ad,
            },
        )
}

fn will_properties() -> impl Strategy<Value = WillProperties> {
    (
        of(any::<u32>()),
        of(any::<bool>()),
        of(any::<u32>()),
        of(string()),
        of(topic_name()),
        of(binary()),
        user_properties(),
    )
        .prop_map(|(wdi, pfi, mei, ct, rt, cd, up)| WillProperties {
            will_delay_interval: wdi,
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            content_type: ct,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
        })
}

fn connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = (
        topic_name(),
        binary(),
        qos(),
        any::<bool>(),
        props(version, will_properties()),
    )
        .prop_map(|(topic, payload, qos, retain, properties)| Will {
            topic,
            payload,
            qos,
            retain,
            properties,
        });
    (
        any::<bool>(),
        any::<u16>(),
        string(),
        of(will),
        of(string()),
        of(binary()),
        props(version, connect_properties()),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, properties)| {
                // Before 5.0 a password needs a user name [MQTT-3.1.2-22].
                let password = if version.is_v5() || username.is_some() {
                    password
                } else {
                    None
                };
                Packet::from(Connect {
                    protocol_version: version,
                    clean_start,
                    keep_alive,
                    client_id,
                    will,
                    username,
                    password,
                    properties,
                })
            },
        )
}

fn connack_properties() -> impl Strategy<Value = ConnAckProperties> {
    let first = (
        of(any::<u32>()),
        of(any::<NonZeroU16>()),
        of(prop_oneof![Just(QoS::AtMostOnce), Just(QoS::AtLeastOnce)]),
        of(any::<bool>()),
        of(any::<NonZeroU32>()),
        of(string()),
        of(any::<u16>()),
        of(string()),
        user_properties(),
    );
    let second = (
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<bool>()),
        of(any::<u16>()),
        of(string()),
        of(string()),
        of(string()),
        of(binary()),
    );
    (first, second).prop_map(
        |((sei, rm, mq, ra, mps, aci, tam, rs, up), (wsa, sia, ssa, ska, ri, sr, am, ad))| {
            ConnAckProperties {
                session_expiry_interval: sei,
                receive_maximum: rm,
                maximum_qos: mq,
                retain_available: ra,
                maximum_packet_size: mps,
                assigned_client_identifier: aci,
                topic_alias_maximum: tam,
                reason_string: rs,
                user_properties: up,
                wildcard_subscription_available: wsa,
                subscription_identifier_available: sia,
                shared_subscription_available: ssa,
                server_keep_alive: ska,
                response_information: ri,
                server_reference: sr,
                authentication_method: am,
                authentication_data: ad,
            }
        },
    )
}

fn connack(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        any::<bool>(),
        reason(version, CONNACK_V5, CONNACK_V3),
        props(version, connack_properties()),
    )
        .prop_map(|(session_present, reason_code, properties)| {
            // Session Present is only set on success [MQTT-3.2.2-4].
            let session_present = session_present && reason_code == ReasonCode::Success;
            Packet::from(ConnAck {
                session_present,
                reason_code,
                properties,
            })
        })
}

fn publish_properties() -> impl Strategy<Value = PublishProperties> {
    (
        of(any::<bool>()),
        of(any::<u32>()),
        of(any::<NonZeroU16>()),
        of(topic_name()),
        of(binary()),
        user_properties(),
        vec(subscription_id(), 0..3),
        of(string()),
    )
        .prop_map(|(pfi, mei, ta, rt, cd, up, si, ct)| PublishProperties {
            payload_format_indicator: pfi,
            message_expiry_interval: mei,
            topic_alias: ta,
            response_topic: rt,
            correlation_data: cd,
            user_properties: up,
            subscription_identifiers: si,
            content_type: ct,
        })
}

fn publish(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let payload = prop_oneof![binary(), vec(any::<u8>(), 0..2000).prop_map(Bytes::from)];
    (
        any::<bool>(),
        qos(),
        any::<bool>(),
        topic_name(),
        packet_id(),
        payload,
        props(version, publish_properties()),
        any::<bool>(),
    )
        .prop_map(
            move |(dup, qos, retain, topic, id, payload, properties, aliased)| {
                let (dup, packet_id) = match qos {
                    QoS::AtMostOnce => (false, None),
                    _ => (dup, Some(id)),
                };
                // In 5.0 a Topic Alias may stand for the topic, which is then empty.
                let topic = if aliased && properties.topic_alias.is_some() {
                    TopicName::empty_for_alias()
                } else {
                    topic
                };
                Packet::from(Publish {
                    dup,
                    qos,
                    retain,
                    topic,
                    packet_id,
                    payload,
                    // Empty properties box or none: the same packet.
                    properties: Some(Box::new(properties)),
                })
            },
        )
}

fn ack_properties() -> impl Strategy<Value = AckProperties> {
    (of(string()), user_properties()).prop_map(|(reason_string, user_properties)| AckProperties {
        reason_string,
        user_properties,
    })
}

fn acks(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let ack = move |v5: &'static [u8]| {
        (
            packet_id(),
            reason(version, v5, SUCCESS),
            props(version, ack_properties()),
        )
    };
    prop_oneof![
        ack(PUBACK_V5).prop_map(|(packet_id, reason_code, properties)| Packet::from(PubAck {
            packet_id,
            reason_code,
            properties
        })),
        ack(PUBACK_V5).prop_map(|(packet_id, reason_code, properties)| Packet::from(PubRec {
            packet_id,
            reason_code,
            properties
        })),
        ack(PUBREL_V5).prop_map(|(packet_id, reason_code, properties)| Packet::from(PubRel {
            packet_id,
            reason_code,
            properties
        })),
        ack(PUBREL_V5).prop_map(
            |(packet_id, reason_code, properties)| Packet::from(PubComp {
                packet_id,
                reason_code,
                properties
            })
        ),
    ]
}

fn subscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let retain_handling = prop_oneof![
        Just(RetainHandling::SendAtSubscribe),
        Just(RetainHandling::SendAtSubscribeIfNew),
        Just(RetainHandling::DoNotSend)
    ];
    let options = (qos(), any::<bool>(), any::<bool>(), retain_handling).prop_map(
        move |(qos, nl, rap, rh)| {
            if version.is_v5() {
                SubscriptionOptions {
                    qos,
                    no_local: nl,
                    retain_as_published: rap,
                    retain_handling: rh,
                }
            } else {
                SubscriptionOptions::qos(qos)
            }
        },
    );
    let subscription = (topic_filter(), options).prop_map(|(filter, mut options)| {
        // No Local on a shared subscription is a Protocol Error [MQTT-3.8.3-4].
        options.no_local &= !filter.is_shared();
        Subscription { filter, options }
    });
    let properties = (of(subscription_id()), user_properties()).prop_map(
        |(subscription_identifier, user_properties)| SubscribeProperties {
            subscription_identifier,
            user_properties,
        },
    );
    (
        packet_id(),
        vec(subscription, 1..6),
        props(version, properties),
    )
        .prop_map(|(packet_id, subscriptions, properties)| {
            Packet::from(Subscribe {
                packet_id,
                subscriptions,
                properties,
            })
        })
}

fn suback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    (
        packet_id(),
        vec(reason(version, SUBACK_V5, SUBACK_V3), 1..6),
        props(version, ack_properties()),
    )
        .prop_map(|(packet_id, reason_codes, properties)| {
            Packet::from(SubAck {
                packet_id,
                reason_codes,
                properties,
            })
        })
}

fn unsubscribe(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties =
        user_properties().prop_map(|user_properties| UnsubscribeProperties { user_properties });
    (
        packet_id(),
        vec(topic_filter(), 1..6),
        props(version, properties),
    )
        .prop_map(|(packet_id, filters, properties)| {
            Packet::from(Unsubscribe {
                packet_id,
                filters,
                properties,
            })
        })
}

fn unsuback(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let codes = if version.is_v5() {
        vec(reason(version, UNSUBACK_V5, SUCCESS), 1..6).boxed()
    } else {
        Just(vec![]).boxed()
    };
    (packet_id(), codes, props(version, ack_properties())).prop_map(
        |(packet_id, reason_codes, properties)| {
            Packet::from(UnsubAck {
                packet_id,
                reason_codes,
                properties,
            })
        },
    )
}

fn disconnect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let properties = (
        of(any::<u32>()),
        of(string()),
        user_properties(),
        of(string()),
    )
        .prop_map(|(sei, rs, up, sr)| DisconnectProperties {
            session_expiry_interval: sei,
            reason_string: rs,
            user_properties: up,
            server_reference: sr,
        });
    (
        reason(version, DISCONNECT_V5, SUCCESS),
        props(version, properties),
    )
        .prop_map(|(reason_code, properties)| {
            Packet::from(Disconnect {
                reason_code,
                properties,
            })
        })
}

fn auth() -> impl Strategy<Value = Packet> {
    let properties = (of(string()), of(binary()), of(string()), user_properties()).prop_map(
        |(am, ad, rs, up)| AuthProperties {
            authentication_method: am,
            authentication_data: ad,
            reason_string: rs,
            user_properties: up,
        },
    );
    (prop::sample::select(&[0x00u8, 0x18, 0x19][..]), properties).prop_map(|(code, properties)| {
        Packet::from(Auth {
            reason_code: ReasonCode::from_u8(code).unwrap(),
            properties,
        })
    })
}

/// Any valid packet of `version`.
fn packet(version: ProtocolVersion) -> BoxedStrategy<Packet> {
    let common = prop_oneof![
        1 => connect(version),
        1 => connack(version),
        3 => publish(version),
        2 => acks(version),
        1 => subscribe(version),
        1 => suback(version),
        1 => unsubscribe(version),
        1 => unsuback(version),
        1 => Just(Packet::PingReq),
        1 => Just(Packet::PingResp),
        1 => disconnect(version),
    ];
    if version.is_v5() {
        prop_oneof![10 => common, 1 => auth()].boxed()
    } else {
        common.boxed()
    }
}

fn versioned_packets() -> impl Strategy<Value = (ProtocolVersion, Vec<Packet>)> {
    version().prop_flat_map(|v| (Just(v), vec(packet(v), 1..5)))
}

fn encode_all(version: ProtocolVersion, packets: &[Packet]) -> BytesMut {
    let mut buf = BytesMut::new();
    for packet in packets {
        let before = buf.len();
        packet.encode(version, &mut buf).unwrap();
        assert_eq!(
            buf.len() - before,
            packet.encoded_len(version),
            "encoded_len of {packet:?}"
        );
    }
    buf
}

/// Decodes everything `buf` holds, leaving any incomplete packet in it.
fn drain(decoder: &mut Decoder, buf: &mut BytesMut, out: &mut Vec<Packet>) {
    while let Some(packet) = decoder.decode(buf).unwrap() {
        out.push(packet);
    }
}

/// What `packets` decode to: themselves, but with the feature `small` (the browser client),
/// which checks the properties the client ignores and keeps none of them, with those of
/// the acknowledgements, DISCONNECT and AUTH left empty.
fn as_decoded(packets: &[Packet]) -> Vec<Packet> {
    let mut packets = packets.to_vec();
    if cfg!(feature = "small") {
        for packet in &mut packets {
            match packet {
                Packet::PubAck(p) => p.properties = Default::default(),
                Packet::PubRec(p) => p.properties = Default::default(),
                Packet::PubRel(p) => p.properties = Default::default(),
                Packet::PubComp(p) => p.properties = Default::default(),
                Packet::SubAck(p) => p.properties = Default::default(),
                Packet::UnsubAck(p) => p.properties = Default::default(),
                Packet::Disconnect(p) => p.properties = Default::default(),
                Packet::Auth(p) => p.properties = Default::default(),
                _ => {}
            }
        }
    }
    packets
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn every_packet_round_trips((version, packets) in versioned_packets()) {
        let mut buf = encode_all(version, &packets);
        let mut decoder = Decoder::new(version);
        let mut decoded = Vec::new();
        drain(&mut decoder, &mut buf, &mut decoded);
        prop_assert!(buf.is_empty());
        prop_assert_eq!(decoded, as_decoded(&packets));
    }

    #[test]
    fn any_split_decodes_the_same((version, packets) in versioned_packets()) {
        let bytes = encode_all(version, &packets).freeze();
        for cut in 0..=bytes.len() {
            let mut decoder = Decoder::new(version);
            let mut decoded = Vec::new();
            let mut buf = BytesMut::from(&bytes[..cut]);
            drain(&mut decoder, &mut buf, &mut decoded);
            buf.extend_from_slice(&bytes[cut..]);
            drain(&mut decoder, &mut buf, &mut decoded);
            prop_assert!(buf.is_empty());
            prop_assert_eq!(&decoded, &as_decoded(&packets), "split at {}", cut);
        }
    }

    #[test]
    fn byte_by_byte_decodes_the_same((version, packets) in versioned_packets()) {
        let bytes = encode_all(version, &packets);
        let mut decoder = Decoder::new(version);
        let mut decoded = Vec::new();
        let mut buf = BytesMut::new();
        for &byte in bytes.iter() {
            buf.extend_from_slice(&[byte]);
            drain(&mut decoder, &mut buf, &mut decoded);
        }
        prop_assert_eq!(decoded, as_decoded(&packets));
    }

    #[test]
    fn arbitrary_bytes_never_panic(version in version(), bytes in vec(any::<u8>(), 0..300)) {
        let mut decoder = Decoder::new(version).with_max_packet_size(256);
        let mut buf = BytesMut::from(&bytes[..]);
        // Every outcome is fine but a panic; a decoded packet must re-encode to what it was.
        while let Ok(Some(packet)) = decoder.decode(&mut buf) {
            let mut again = BytesMut::new();
            packet.encode(decoder.version(), &mut again).unwrap();
            prop_assert_eq!(Decoder::new(decoder.version()).decode(&mut again).unwrap(), Some(packet));
        }
    }

    #[test]
    fn matching_agrees_with_the_reference(name in topic_name(), filter in topic_filter()) {
        prop_assert_eq!(filter.matches(&name), reference_match(filter.filter(), name.as_str()));
    }
}

/// The matching rules of §4.7 restated as a recursive definition over level lists, to check
/// the allocation-free iterative matcher against.
fn reference_match(filter: &str, topic: &str) -> bool {
    fn go(f: &[&str], t: &[&str]) -> bool {
        match (f.first(), t.first()) {
            (Some(&"#"), _) => true,
            (Some(&"+"), Some(_)) => go(&f[1..], &t[1..]),
            (Some(a), Some(b)) => a == b && go(&f[1..], &t[1..]),
            (None, None) => true,
            _ => false,
        }
    }
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let f: Vec<&str> = filter.split('/').collect();
    let t: Vec<&str> = topic.split('/').collect();
    go(&f, &t)
}
