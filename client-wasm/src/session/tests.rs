//! The client session state machine against a scripted server: a deterministic peer built
//! on midge-codec, with time passed in by hand.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU16;

use crate::session::{Closed, Event, Failure, Options, Session, message};
use bytes::BytesMut;
use midge_codec::properties::SubscribeProperties;
use midge_codec::{
    ConnAck, Decoder, Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS,
    ReasonCode, SubAck, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter, TopicName,
};

/// The server's side of the conversation.
struct Server {
    version: ProtocolVersion,
    decoder: Decoder,
}

impl Server {
    fn new(version: ProtocolVersion) -> Self {
        Server {
            version,
            decoder: Decoder::new(version),
        }
    }

    /// Everything the client has written since the last call, as packets.
    fn received(&mut self, client: &mut Session) -> Vec<Packet> {
        let mut packets = Vec::new();
        while let Some(bytes) = client.poll_transmit() {
            let mut buf = BytesMut::from(&bytes[..]);
            while let Some(packet) = self.decoder.decode(&mut buf).unwrap() {
                packets.push(packet);
            }
            assert!(buf.is_empty(), "whole packets only");
        }
        packets
    }

    fn send(&self, client: &mut Session, now: u64, packet: impl Into<Packet>) {
        let mut buf = BytesMut::new();
        packet.into().encode(self.version, &mut buf).unwrap();
        client.handle_bytes(now, &buf);
    }

    /// Takes the client through CONNECT and a successful CONNACK.
    fn accept(&mut self, client: &mut Session, now: u64, session_present: bool) -> Connect {
        client.start(now);
        let packets = self.received(client);
        let Some(Packet::Connect(connect)) = packets.first() else {
            panic!("{packets:?}")
        };
        let connect = Connect {
            clean_start: connect.clean_start,
        };
        self.send(
            client,
            now,
            ConnAck {
                session_present,
                ..ConnAck::default()
            },
        );
        connect
    }
}

struct Connect {
    clean_start: bool,
}

fn events(client: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| client.poll_event()).collect()
}

fn id(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap()
}

fn topic(s: &str) -> TopicName {
    TopicName::try_from(s).unwrap()
}

fn publishes(packets: &[Packet]) -> Vec<(Option<u16>, bool, String)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                p.packet_id.map(NonZeroU16::get),
                p.dup,
                String::from_utf8_lossy(&p.payload).into(),
            )),
            _ => None,
        })
        .collect()
}

fn client() -> (Session, Server) {
    let mut options = Options::new("dash-1");
    options.keep_alive = 10;
    options.response_timeout_ms = 2000;
    (Session::new(options), Server::new(ProtocolVersion::V5))
}

#[test]
fn connects_publishes_at_qos_1_and_completes_on_puback() {
    let (mut c, mut s) = client();
    let connect = s.accept(&mut c, 0, false);
    assert!(connect.clean_start);
    assert!(matches!(
        events(&mut c)[..],
        [Event::Connected {
            session_present: false,
            ..
        }]
    ));
    let token = c.publish(10, message(topic("a/b"), "hi", QoS::AtLeastOnce, false));
    assert_eq!(
        publishes(&s.received(&mut c)),
        [(Some(1), false, "hi".into())]
    );
    assert!(events(&mut c).is_empty(), "not complete before PUBACK");
    s.send(&mut c, 20, PubAck::new(id(1)));
    assert_eq!(
        events(&mut c),
        [Event::Published {
            token,
            result: Ok(())
        }]
    );
}

#[test]
fn a_lost_puback_means_the_publish_goes_again_with_dup() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    let token = c.publish(1, message(topic("a"), "once", QoS::AtLeastOnce, false));
    s.received(&mut c);
    events(&mut c);
    c.transport_closed();
    assert_eq!(events(&mut c), [Event::Closed(Closed::TransportClosed)]);
    // Reconnect: no clean start now, and the server kept the session.
    let connect = s.accept(&mut c, 100, true);
    assert!(!connect.clean_start);
    assert_eq!(
        publishes(&s.received(&mut c)),
        [(Some(1), true, "once".into())]
    );
    s.send(&mut c, 101, PubAck::new(id(1)));
    let done: Vec<_> = events(&mut c)
        .into_iter()
        .filter(|e| matches!(e, Event::Published { .. }))
        .collect();
    assert_eq!(
        done,
        [Event::Published {
            token,
            result: Ok(())
        }]
    );
}

#[test]
fn when_the_server_lost_the_session_messages_go_as_new_and_subscriptions_are_made_again() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    let sub = c.subscribe(
        0,
        vec![Subscription {
            filter: TopicFilter::try_from("chat/+").unwrap(),
            options: SubscriptionOptions::qos(QoS::AtLeastOnce),
        }],
    );
    s.received(&mut c);
    s.send(
        &mut c,
        1,
        SubAck {
            packet_id: id(1),
            reason_codes: vec![ReasonCode::GrantedQos1],
            properties: Default::default(),
        },
    );
    c.publish(2, message(topic("x"), "unacked", QoS::AtLeastOnce, false));
    s.received(&mut c);
    events(&mut c);
    c.transport_closed();
    s.accept(&mut c, 50, false);
    let packets = s.received(&mut c);
    let resubscribed: Vec<_> = packets
        .iter()
        .filter_map(|p| match p {
            Packet::Subscribe(s) => Some(s.subscriptions[0].filter.as_str().to_owned()),
            _ => None,
        })
        .collect();
    assert_eq!(resubscribed, ["chat/+"]);
    let again = publishes(&packets);
    assert_eq!(again.len(), 1);
    assert_eq!(
        (again[0].1, &again[0].2[..]),
        (false, "unacked"),
        "a new message, not a DUP"
    );
    let evs = events(&mut c);
    assert!(
        !evs.iter()
            .any(|e| matches!(e, Event::Subscribed { token, .. } if *token == sub)),
        "{evs:?}"
    );
}

#[test]
fn a_resubscription_keeps_each_subscription_identifier() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    let filter = |f: &str| Subscription {
        filter: TopicFilter::try_from(f).unwrap(),
        options: SubscriptionOptions::qos(QoS::AtLeastOnce),
    };
    let tagged = SubscribeProperties {
        subscription_identifier: SubscriptionId::new(7),
        ..Default::default()
    };
    c.subscribe_with(0, vec![filter("alerts/#")], tagged.clone());
    c.subscribe(0, vec![filter("chat/+"), filter("news/+")]);
    s.received(&mut c);
    for packet_id in [1, 2] {
        let reason_codes = vec![ReasonCode::GrantedQos1; packet_id as usize];
        let properties = Default::default();
        s.send(
            &mut c,
            1,
            SubAck {
                packet_id: id(packet_id),
                reason_codes,
                properties,
            },
        );
    }
    c.transport_closed();
    s.accept(&mut c, 50, false);
    let mut resubscribed: Vec<_> = s
        .received(&mut c)
        .into_iter()
        .filter_map(|p| match p {
            Packet::Subscribe(s) => Some((
                s.properties.subscription_identifier,
                s.subscriptions
                    .iter()
                    .map(|s| s.filter.as_str().to_owned())
                    .collect::<Vec<_>>(),
            )),
            _ => None,
        })
        .collect();
    resubscribed.sort();
    assert_eq!(
        resubscribed,
        [
            (None, vec!["chat/+".to_owned(), "news/+".to_owned()]),
            (SubscriptionId::new(7), vec!["alerts/#".to_owned()]),
        ]
    );
}

#[test]
fn a_duplicate_pubrec_gets_pubrel_again_and_qos_2_completes_once() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    events(&mut c);
    let token = c.publish(1, message(topic("t"), "exactly", QoS::ExactlyOnce, false));
    s.received(&mut c);
    s.send(&mut c, 2, PubRec::new(id(1)));
    assert_eq!(s.received(&mut c), [Packet::PubRel(PubRel::new(id(1)))]);
    s.send(&mut c, 3, PubRec::new(id(1)));
    assert_eq!(s.received(&mut c), [Packet::PubRel(PubRel::new(id(1)))]);
    assert!(events(&mut c).is_empty());
    s.send(&mut c, 4, PubComp::new(id(1)));
    s.send(&mut c, 5, PubComp::new(id(1)));
    assert_eq!(
        events(&mut c),
        [Event::Published {
            token,
            result: Ok(())
        }]
    );
}

#[test]
fn keep_alive_pings_and_a_silent_server_times_out() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    s.received(&mut c);
    events(&mut c);
    // Keep alive 10 s: nothing sent since t=0, so a PINGREQ is due at 10 s.
    assert_eq!(c.poll_timeout(), Some(10_000));
    c.handle_timeout(9_999);
    assert!(s.received(&mut c).is_empty());
    c.handle_timeout(10_000);
    assert_eq!(s.received(&mut c), [Packet::PingReq]);
    // Answered: the next ping is due a keep alive after the last one.
    s.send(&mut c, 10_050, Packet::PingResp);
    assert_eq!(c.poll_timeout(), Some(20_000));
    c.handle_timeout(20_000);
    assert_eq!(s.received(&mut c), [Packet::PingReq]);
    // Not answered within the response timeout (2 s): the connection is given up.
    assert_eq!(c.poll_timeout(), Some(22_000));
    c.handle_timeout(22_000);
    assert_eq!(events(&mut c), [Event::Closed(Closed::Timeout)]);
    assert!(!c.is_connected());
}

#[test]
fn no_connack_in_time_is_a_timeout() {
    let (mut c, mut s) = client();
    c.start(0);
    s.received(&mut c);
    c.handle_timeout(2_000);
    assert_eq!(events(&mut c), [Event::Closed(Closed::Timeout)]);
}

#[test]
fn the_offline_queue_goes_out_on_connect() {
    let (mut c, mut s) = client();
    let q0 = c.publish(0, message(topic("t"), "zero", QoS::AtMostOnce, false));
    let q1 = c.publish(0, message(topic("t"), "one", QoS::AtLeastOnce, false));
    assert!(
        c.poll_transmit().is_none(),
        "nothing is written while offline"
    );
    s.accept(&mut c, 5, false);
    let sent = publishes(&s.received(&mut c));
    assert_eq!(
        sent,
        [(None, false, "zero".into()), (Some(1), false, "one".into())]
    );
    s.send(&mut c, 6, PubAck::new(id(1)));
    let done: Vec<_> = events(&mut c)
        .into_iter()
        .filter(|e| matches!(e, Event::Published { .. }))
        .collect();
    assert_eq!(
        done,
        [
            Event::Published {
                token: q0,
                result: Ok(())
            },
            Event::Published {
                token: q1,
                result: Ok(())
            }
        ]
    );
}

#[test]
fn the_servers_receive_maximum_bounds_what_is_in_flight() {
    let (mut c, mut s) = client();
    c.start(0);
    s.received(&mut c);
    let mut ack = ConnAck::default();
    ack.properties.receive_maximum = NonZeroU16::new(2);
    s.send(&mut c, 0, ack);
    for n in 0..3 {
        c.publish(
            1,
            message(topic("t"), n.to_string(), QoS::AtLeastOnce, false),
        );
    }
    assert_eq!(publishes(&s.received(&mut c)).len(), 2);
    s.send(&mut c, 2, PubAck::new(id(1)));
    assert_eq!(
        publishes(&s.received(&mut c)),
        [(Some(3), false, "2".into())]
    );
}

#[test]
fn incoming_qos_2_is_delivered_once_and_completed() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    events(&mut c);
    let mut p = Publish::new(topic("in"), "twice sent");
    p.qos = QoS::ExactlyOnce;
    p.packet_id = Some(id(5));
    s.send(&mut c, 1, p.clone());
    p.dup = true;
    s.send(&mut c, 2, p);
    assert_eq!(
        s.received(&mut c),
        [
            Packet::PubRec(PubRec::new(id(5))),
            Packet::PubRec(PubRec::new(id(5)))
        ]
    );
    assert_eq!(events(&mut c).len(), 1);
    s.send(&mut c, 3, PubRel::new(id(5)));
    assert_eq!(s.received(&mut c), [Packet::PubComp(PubComp::new(id(5)))]);
}

#[test]
fn topic_aliases_from_the_server_are_resolved() {
    let (mut c, mut s) = client();
    s.accept(&mut c, 0, false);
    events(&mut c);
    let mut first = Publish::new(topic("long/topic"), "1");
    first.properties_mut().topic_alias = NonZeroU16::new(1);
    s.send(&mut c, 1, first);
    let mut second = Publish::new(TopicName::empty_for_alias(), "2");
    second.properties_mut().topic_alias = NonZeroU16::new(1);
    s.send(&mut c, 2, second);
    let topics: Vec<String> = events(&mut c)
        .into_iter()
        .filter_map(|e| match e {
            Event::Message(p) => Some(p.topic.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(topics, ["long/topic", "long/topic"]);
}

#[test]
fn refusals_and_server_errors_close_with_a_reason() {
    let (mut c, mut s) = client();
    c.start(0);
    s.received(&mut c);
    s.send(
        &mut c,
        0,
        ConnAck {
            reason_code: ReasonCode::NotAuthorized,
            ..ConnAck::default()
        },
    );
    assert_eq!(
        events(&mut c),
        [Event::Closed(Closed::Refused(ReasonCode::NotAuthorized))]
    );
    // Garbage from a server: a 5.0 DISCONNECT says why, and the connection is closed. The
    // error names the rule and the reason code (not the spec's statement number: see text.rs).
    s.accept(&mut c, 1, false);
    events(&mut c);
    s.received(&mut c);
    c.handle_bytes(2, &[0x36, 0x03, 0x00, 0x01, b'a']); // PUBLISH with QoS 3
    assert!(
        matches!(&events(&mut c)[..], [Event::Closed(Closed::ProtocolError(why))] if why == "PUBLISH has QoS 3 (Malformed Packet (0x81))")
    );
    assert!(
        matches!(&s.received(&mut c)[..], [Packet::Disconnect(d)] if d.reason_code == ReasonCode::MalformedPacket)
    );
}

#[test]
fn a_message_too_large_for_the_server_fails_at_once() {
    let (mut c, mut s) = client();
    c.start(0);
    s.received(&mut c);
    let mut ack = ConnAck::default();
    ack.properties.maximum_packet_size = std::num::NonZeroU32::new(32);
    s.send(&mut c, 0, ack);
    events(&mut c);
    let token = c.publish(
        1,
        message(topic("t"), vec![0u8; 64], QoS::AtMostOnce, false),
    );
    assert!(
        matches!(&events(&mut c)[..], [Event::Published { token: t, result: Err(Failure::Invalid(_)) }] if *t == token)
    );
    assert!(s.received(&mut c).is_empty());
}

/// A session that assigns topic aliases, connected to a server whose Topic Alias Maximum is
/// `maximum` (`None`: not given).
fn aliasing(version: ProtocolVersion, maximum: Option<u16>) -> (Session, Server) {
    let mut options = Options::new("dash-1");
    options.version = version;
    options.auto_assign_topic_alias = true;
    let (mut c, mut s) = (Session::new(options), Server::new(version));
    connect_with_aliases(&mut c, &mut s, 0, false, maximum);
    (c, s)
}

fn connect_with_aliases(
    c: &mut Session,
    s: &mut Server,
    now: u64,
    session_present: bool,
    maximum: Option<u16>,
) {
    c.start(now);
    s.received(c);
    let mut ack = ConnAck {
        session_present,
        ..ConnAck::default()
    };
    ack.properties.topic_alias_maximum = maximum;
    s.send(c, now, ack);
    events(c);
}

/// Each PUBLISH's topic name, Topic Alias and DUP flag.
fn topics_sent(packets: &[Packet]) -> Vec<(String, Option<u16>, bool)> {
    packets
        .iter()
        .filter_map(|p| match p {
            Packet::Publish(p) => Some((
                p.topic.to_string(),
                p.properties().topic_alias.map(NonZeroU16::get),
                p.dup,
            )),
            _ => None,
        })
        .collect()
}

fn publish_to(c: &mut Session, topics: &[&str], qos: QoS) {
    for (i, t) in topics.iter().enumerate() {
        c.publish(i as u64, message(topic(t), "m", qos, false));
    }
}

#[test]
fn topic_aliases_are_assigned_reused_and_no_more_than_the_servers_maximum() {
    let (mut c, mut s) = aliasing(ProtocolVersion::V5, Some(2));
    publish_to(&mut c, &["a", "b", "a", "c", "b", "c"], QoS::AtMostOnce);
    let sent = |t: &str, alias| (t.to_string(), alias, false);
    assert_eq!(
        topics_sent(&s.received(&mut c)),
        [
            sent("a", Some(1)),
            sent("b", Some(2)),
            sent("", Some(1)),
            sent("c", None),
            sent("", Some(2)),
            sent("c", None),
        ]
    );
}

#[test]
fn no_topic_aliases_without_the_servers_leave_or_before_5_0_or_unasked() {
    let full = [
        ("a".to_string(), None, false),
        ("a".to_string(), None, false),
    ];
    for (version, maximum) in [
        (ProtocolVersion::V5, None),
        (ProtocolVersion::V5, Some(0)),
        (ProtocolVersion::V3_1_1, None),
    ] {
        let (mut c, mut s) = aliasing(version, maximum);
        publish_to(&mut c, &["a", "a"], QoS::AtLeastOnce);
        assert_eq!(topics_sent(&s.received(&mut c)), full, "{version:?}");
    }
    let (mut c, mut s) = client();
    connect_with_aliases(&mut c, &mut s, 0, false, Some(10));
    publish_to(&mut c, &["a", "a"], QoS::AtMostOnce);
    assert_eq!(topics_sent(&s.received(&mut c)), full);
}

#[test]
fn topic_aliases_are_forgotten_on_reconnecting_and_a_dup_resend_carries_its_topic() {
    let (mut c, mut s) = aliasing(ProtocolVersion::V5, Some(5));
    publish_to(&mut c, &["a", "a", "b"], QoS::AtLeastOnce);
    let sent = |t: &str, alias, dup| (t.to_string(), alias, dup);
    assert_eq!(
        topics_sent(&s.received(&mut c)),
        [
            sent("a", Some(1), false),
            sent("", Some(1), false),
            sent("b", Some(2), false)
        ]
    );
    // The server kept the session: the three go again with DUP, each with its topic (the
    // aliases of the old connection are gone; these set up new ones).
    c.transport_closed();
    connect_with_aliases(&mut c, &mut s, 10, true, Some(5));
    c.publish(11, message(topic("a"), "m", QoS::AtMostOnce, false));
    assert_eq!(
        topics_sent(&s.received(&mut c)),
        [
            sent("a", Some(1), true),
            sent("a", Some(1), true),
            sent("b", Some(2), true),
            sent("", Some(1), false)
        ]
    );
    // A new connection whose server takes no aliases: the topics go in full.
    c.transport_closed();
    connect_with_aliases(&mut c, &mut s, 20, true, None);
    assert_eq!(
        topics_sent(&s.received(&mut c)),
        [
            sent("a", None, true),
            sent("a", None, true),
            sent("b", None, true)
        ]
    );
    // And lost sessions: sent anew, the aliases set up from the start.
    c.transport_closed();
    connect_with_aliases(&mut c, &mut s, 30, false, Some(1));
    assert_eq!(
        topics_sent(&s.received(&mut c)),
        [
            sent("a", Some(1), false),
            sent("", Some(1), false),
            sent("b", None, false)
        ]
    );
}

#[test]
fn a_message_that_fits_only_without_its_topic_alias_fails_at_once() {
    let mut options = Options::new("dash-1");
    options.auto_assign_topic_alias = true;
    let (mut c, mut s) = (Session::new(options), Server::new(ProtocolVersion::V5));
    c.start(0);
    s.received(&mut c);
    let mut ack = ConnAck::default();
    ack.properties.maximum_packet_size = std::num::NonZeroU32::new(9);
    ack.properties.topic_alias_maximum = Some(1);
    s.send(&mut c, 0, ack);
    events(&mut c);
    // 2 + 3 (topic "t") + 1 (no properties) + 3 bytes of payload = 9; with a Topic Alias, 12.
    c.publish(1, message(topic("t"), "abc", QoS::AtMostOnce, false));
    assert!(matches!(
        &events(&mut c)[..],
        [Event::Published {
            result: Err(Failure::Invalid(_)),
            ..
        }]
    ));
}
