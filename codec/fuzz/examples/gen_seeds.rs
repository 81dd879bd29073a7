//! Writes the seed corpus of the `decode` fuzz target into `seeds/decode/`, using the codec's
//! own encoder, and checks each seed decodes back to the packets it was made from.
//!
//! Run from `codec/fuzz`: `cargo run --example gen_seeds` (plain stable cargo is enough).
//!
//! Each seed is `[config, split, stream...]` as `fuzz_targets/decode.rs` describes.

use std::collections::HashSet;
use std::num::{NonZeroU16, NonZeroU32};
use std::path::Path;

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

use ProtocolVersion::{V3_1, V3_1_1, V5};

/// The configuration byte for `version`, with no packet size limit.
fn config(version: ProtocolVersion) -> u8 {
    match version {
        V3_1 => 0,
        V3_1_1 => 1,
        V5 => 2,
    }
}

fn s(text: &str) -> ByteStr {
    ByteStr::try_from(text).unwrap()
}

fn topic(text: &str) -> TopicName {
    TopicName::try_from(text).unwrap()
}

fn filter(text: &str) -> TopicFilter {
    TopicFilter::try_from(text).unwrap()
}

fn id(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap()
}

fn user(name: &str, value: &str) -> UserProperty {
    UserProperty {
        name: s(name),
        value: s(value),
    }
}

fn connect(version: ProtocolVersion, full: bool) -> Packet {
    let mut c = Connect::new(version, s("client-1"));
    if full {
        c.clean_start = false;
        c.keep_alive = 30;
        c.username = Some(s("user"));
        c.password = Some(Bytes::from_static(b"secret"));
        let mut will = Will {
            topic: topic("clients/1/status"),
            payload: Bytes::from_static(b"offline"),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties::default(),
        };
        if version.is_v5() {
            will.properties = WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(true),
                message_expiry_interval: Some(3600),
                content_type: Some(s("text/plain")),
                response_topic: Some(topic("clients/1/reply")),
                correlation_data: Some(Bytes::from_static(b"\x01\x02")),
                user_properties: vec![user("k", "v")],
            };
            c.properties = ConnectProperties {
                session_expiry_interval: Some(120),
                receive_maximum: NonZeroU16::new(20),
                maximum_packet_size: NonZeroU32::new(4096),
                topic_alias_maximum: Some(10),
                request_response_information: Some(true),
                request_problem_information: Some(false),
                user_properties: vec![user("region", "eu"), user("region", "us")],
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"n,,n=user")),
            };
        }
        c.will = Some(will);
    }
    Packet::from(c)
}

fn connack(version: ProtocolVersion, full: bool) -> Packet {
    let mut c = ConnAck {
        session_present: !full,
        ..ConnAck::default()
    };
    if full {
        c.reason_code = ReasonCode::NotAuthorized;
        if version.is_v5() {
            c.reason_code = ReasonCode::Success;
            c.properties = ConnAckProperties {
                session_expiry_interval: Some(60),
                receive_maximum: NonZeroU16::new(100),
                maximum_qos: Some(QoS::AtLeastOnce),
                retain_available: Some(false),
                maximum_packet_size: NonZeroU32::new(65536),
                assigned_client_identifier: Some(s("auto-1f3a")),
                topic_alias_maximum: Some(5),
                reason_string: Some(s("welcome")),
                user_properties: vec![user("node", "b2")],
                wildcard_subscription_available: Some(true),
                subscription_identifier_available: Some(true),
                shared_subscription_available: Some(false),
                server_keep_alive: Some(45),
                response_information: Some(s("resp/")),
                server_reference: Some(s("other:1883")),
                authentication_method: Some(s("SCRAM-SHA-1")),
                authentication_data: Some(Bytes::from_static(b"r=nonce")),
            };
        }
    }
    Packet::from(c)
}

fn publish(version: ProtocolVersion, qos: QoS, full: bool) -> Packet {
    let mut p = Publish::new(topic("sensors/1/temp"), Bytes::from_static(b"21.5"));
    p.qos = qos;
    if qos != QoS::AtMostOnce {
        p.packet_id = Some(id(0x0102));
        p.dup = full;
    }
    p.retain = full;
    if full && version.is_v5() {
        *p.properties_mut() = PublishProperties {
            payload_format_indicator: Some(true),
            message_expiry_interval: Some(30),
            topic_alias: NonZeroU16::new(3),
            response_topic: Some(topic("reply/1")),
            correlation_data: Some(Bytes::from_static(b"corr")),
            user_properties: vec![user("a", "1"), user("b", "2")],
            subscription_identifiers: vec![
                SubscriptionId::new(1).unwrap(),
                SubscriptionId::new(300).unwrap(),
            ],
            content_type: Some(s("text/plain")),
        };
    }
    Packet::from(p)
}

/// A v5 PUBLISH with an empty topic that a Topic Alias stands for.
fn aliased_publish() -> Packet {
    let mut p = Publish::new(TopicName::empty_for_alias(), Bytes::from_static(b"22.0"));
    p.properties_mut().topic_alias = NonZeroU16::new(3);
    Packet::from(p)
}

fn ack_properties(version: ProtocolVersion, full: bool) -> AckProperties {
    if full && version.is_v5() {
        AckProperties {
            reason_string: Some(s("because")),
            user_properties: vec![user("x", "y")],
        }
    } else {
        AckProperties::default()
    }
}

fn acks(version: ProtocolVersion, full: bool) -> [Packet; 4] {
    let p = ack_properties(version, full);
    let code = |c| {
        if full && version.is_v5() {
            c
        } else {
            ReasonCode::Success
        }
    };
    [
        Packet::from(PubAck {
            packet_id: id(1),
            reason_code: code(ReasonCode::NoMatchingSubscribers),
            properties: p.clone(),
        }),
        Packet::from(PubRec {
            packet_id: id(2),
            reason_code: code(ReasonCode::QuotaExceeded),
            properties: p.clone(),
        }),
        Packet::from(PubRel {
            packet_id: id(3),
            reason_code: code(ReasonCode::PacketIdentifierNotFound),
            properties: p.clone(),
        }),
        Packet::from(PubComp {
            packet_id: id(0xffff),
            reason_code: code(ReasonCode::PacketIdentifierNotFound),
            properties: p,
        }),
    ]
}

fn subscribe(version: ProtocolVersion, full: bool) -> Packet {
    let mut subscriptions = vec![
        Subscription {
            filter: filter("sensors/+/temp"),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        },
        Subscription {
            filter: filter("alerts/#"),
            options: SubscriptionOptions::qos(QoS::ExactlyOnce),
        },
    ];
    let mut properties = SubscribeProperties::default();
    if full && version.is_v5() {
        subscriptions[0].options = SubscriptionOptions {
            qos: QoS::AtLeastOnce,
            no_local: true,
            retain_as_published: true,
            retain_handling: RetainHandling::SendAtSubscribeIfNew,
        };
        subscriptions.push(Subscription {
            filter: filter("$share/group/jobs/+"),
            options: SubscriptionOptions {
                qos: QoS::AtMostOnce,
                no_local: false,
                retain_as_published: false,
                retain_handling: RetainHandling::DoNotSend,
            },
        });
        properties = SubscribeProperties {
            subscription_identifier: SubscriptionId::new(268_435_455),
            user_properties: vec![user("k", "v")],
        };
    }
    Packet::from(Subscribe {
        packet_id: id(10),
        subscriptions,
        properties,
    })
}

fn suback(version: ProtocolVersion, full: bool) -> Packet {
    let mut reason_codes = vec![
        ReasonCode::GrantedQos1,
        ReasonCode::GrantedQos2,
        ReasonCode::Success,
        ReasonCode::UnspecifiedError,
    ];
    if full && version.is_v5() {
        reason_codes.push(ReasonCode::SharedSubscriptionsNotSupported);
    }
    Packet::from(SubAck {
        packet_id: id(10),
        reason_codes,
        properties: ack_properties(version, full),
    })
}

fn unsubscribe(version: ProtocolVersion, full: bool) -> Packet {
    let mut properties = UnsubscribeProperties::default();
    if full && version.is_v5() {
        properties.user_properties = vec![user("k", "v")];
    }
    Packet::from(Unsubscribe {
        packet_id: id(11),
        filters: vec![filter("sensors/+/temp"), filter("$share/group/jobs/+")],
        properties,
    })
}

fn unsuback(version: ProtocolVersion, full: bool) -> Packet {
    let reason_codes = if version.is_v5() {
        vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
    } else {
        Vec::new()
    };
    Packet::from(UnsubAck {
        packet_id: id(11),
        reason_codes,
        properties: ack_properties(version, full),
    })
}

fn disconnect(version: ProtocolVersion, full: bool) -> Packet {
    let mut d = Disconnect::default();
    if full && version.is_v5() {
        d.reason_code = ReasonCode::ServerShuttingDown;
        d.properties = DisconnectProperties {
            session_expiry_interval: Some(0),
            reason_string: Some(s("maintenance")),
            user_properties: vec![user("k", "v")],
            server_reference: Some(s("other:1883")),
        };
    }
    Packet::from(d)
}

fn auth(full: bool) -> Packet {
    let mut a = Auth::default();
    if full {
        a.reason_code = ReasonCode::ContinueAuthentication;
        a.properties = AuthProperties {
            authentication_method: Some(s("SCRAM-SHA-1")),
            authentication_data: Some(Bytes::from_static(b"c=biws,r=nonce")),
            reason_string: Some(s("step 2")),
            user_properties: vec![user("k", "v")],
        };
    }
    Packet::from(a)
}

struct Seeds {
    dir: &'static Path,
    written: HashSet<Vec<u8>>,
    bytes: usize,
}

impl Seeds {
    /// Writes `packets` as one stream, decoded starting from `version`, after `config` and a
    /// mid-stream split byte; checks the seed decodes back to `packets`.
    fn write(&mut self, name: &str, config: u8, version: ProtocolVersion, packets: &[Packet]) {
        let mut stream = BytesMut::new();
        let mut encode_version = version;
        for packet in packets {
            packet.encode(encode_version, &mut stream).unwrap();
            if let Packet::Connect(c) = packet {
                encode_version = c.protocol_version;
            }
        }
        let mut decoder = Decoder::new(version);
        let mut buf = stream.clone();
        for packet in packets {
            assert_eq!(
                decoder.decode(&mut buf).unwrap().as_ref(),
                Some(packet),
                "{name}"
            );
        }
        assert!(buf.is_empty(), "{name}: bytes left over");

        let mut seed = vec![config, 0x80];
        seed.extend_from_slice(&stream);
        // 3.1.1 has no room for the reason codes and properties of the "full" variants:
        // skip what would only repeat an earlier seed.
        if self.written.insert(seed.clone()) {
            std::fs::write(self.dir.join(name), &seed).unwrap();
            self.bytes += seed.len();
        }
    }
}

fn main() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("seeds/decode");
    std::fs::create_dir_all(&dir).unwrap();
    let mut seeds = Seeds {
        dir: Box::leak(dir.into_boxed_path()),
        written: HashSet::new(),
        bytes: 0,
    };

    // MQTT 3.1: only the CONNECT differs ("MQIsdp", level 3).
    seeds.write("v31-connect", config(V3_1), V3_1, &[connect(V3_1, false)]);
    seeds.write(
        "v31-connect-full",
        config(V3_1),
        V3_1,
        &[connect(V3_1, true)],
    );

    for (version, tag) in [(V3_1_1, "v311"), (V5, "v5")] {
        let c = config(version);
        let variants: &[(bool, &str)] = if version.is_v5() {
            &[(false, ""), (true, "-props")]
        } else {
            &[(false, ""), (true, "-full")]
        };
        for &(full, suffix) in variants {
            let mut one = |name: &str, packet: Packet| {
                seeds.write(&format!("{tag}-{name}{suffix}"), c, version, &[packet]);
            };
            one("connect", connect(version, full));
            one("connack", connack(version, full));
            one("publish-qos0", publish(version, QoS::AtMostOnce, full));
            one("publish-qos1", publish(version, QoS::AtLeastOnce, full));
            one("publish-qos2", publish(version, QoS::ExactlyOnce, full));
            let [puback, pubrec, pubrel, pubcomp] = acks(version, full);
            one("puback", puback);
            one("pubrec", pubrec);
            one("pubrel", pubrel);
            one("pubcomp", pubcomp);
            one("subscribe", subscribe(version, full));
            one("suback", suback(version, full));
            one("unsubscribe", unsubscribe(version, full));
            one("unsuback", unsuback(version, full));
            if !full {
                one("pingreq", Packet::PingReq);
                one("pingresp", Packet::PingResp);
            }
            one("disconnect", disconnect(version, full));
            if version.is_v5() {
                one("auth", auth(full));
            }
        }
    }
    seeds.write("v5-publish-aliased", config(V5), V5, &[aliased_publish()]);

    // Whole conversations, in one stream: the CONNECT switches a decoder that started on
    // another version.
    seeds.write(
        "v311-client-session",
        config(V5),
        V5,
        &[
            connect(V3_1_1, true),
            subscribe(V3_1_1, false),
            publish(V3_1_1, QoS::AtLeastOnce, true),
            acks(V3_1_1, false)[0].clone(),
            Packet::PingReq,
            unsubscribe(V3_1_1, false),
            disconnect(V3_1_1, false),
        ],
    );
    seeds.write(
        "v5-client-session",
        config(V3_1_1),
        V3_1_1,
        &[
            connect(V5, true),
            auth(true),
            subscribe(V5, true),
            publish(V5, QoS::ExactlyOnce, true),
            acks(V5, true)[2].clone(),
            aliased_publish(),
            disconnect(V5, true),
        ],
    );
    seeds.write(
        "v5-server-session",
        config(V5),
        V5,
        &[
            connack(V5, true),
            suback(V5, true),
            publish(V5, QoS::AtLeastOnce, true),
            acks(V5, true)[1].clone(),
            acks(V5, true)[3].clone(),
            unsuback(V5, true),
            Packet::PingResp,
        ],
    );
    // A maximum packet size of 0x1f * 8 = 248 bytes (configuration bit 7).
    seeds.write(
        "v5-limited",
        0x80 | (0x1f << 2) | config(V5),
        V5,
        &[publish(V5, QoS::AtMostOnce, false), Packet::PingReq],
    );

    println!(
        "wrote {} seeds, {} bytes, to {}",
        seeds.written.len(),
        seeds.bytes,
        seeds.dir.display()
    );
}
