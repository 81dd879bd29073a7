//! midge-codec beside rumqttc's MQTT codecs, on the same packets and the same bytes.
//!
//! Every row is a criterion group such as `publish_64B_v311/decode` holding a `midge` and a
//! `rumqttc` function. Before measuring, each row asserts that both codecs encode its packet
//! to identical bytes and decode those bytes back to the packet they started from, so both
//! sides do the same work. Results and how to read them: `docs/benchmarks.md`.
//!
//! - decode: one whole packet is split off a fresh `BytesMut` holding exactly that packet.
//!   Building the buffer (a copy of the wire bytes) and dropping the result are not timed.
//! - encode: the packet is appended to a reused `BytesMut`, cleared before each iteration and
//!   big enough never to grow.
//!
//! Run: `cargo bench -p midge-codec --bench codec`.

// A benchmark's setup may panic: a failed assertion means the comparison would be unfair.
#![allow(clippy::expect_used)]

use std::hint::black_box;
use std::num::{NonZeroU16, NonZeroU32};

use bytes::{Bytes, BytesMut};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use midge_codec::properties::{ConnectProperties, SubscribeProperties, WillProperties};
use midge_codec::{
    ByteStr, Connect, Decoder, MAX_PACKET_SIZE, Packet, PacketId, ProtocolVersion, Publish, QoS,
    RetainHandling, Subscribe, Subscription, SubscriptionId, SubscriptionOptions, TopicFilter,
    TopicName, UserProperty, Will,
};
use rumqttc::mqttbytes::{QoS as R4QoS, v4 as r4};
use rumqttc::v5::mqttbytes::{QoS as R5QoS, v5 as r5};

const TOPIC: &str = "sensors/building-7/floor-3/room-42/temperature";
const PACKET_ID: u16 = 1;

/// The largest packet each side accepts, the same for both: what MQTT can express.
const MAX_SIZE: u32 = MAX_PACKET_SIZE;

/// The ten topic filters of the SUBSCRIBE rows, with the 5.0 options of each
/// (QoS, No Local, Retain As Published, Retain Handling).
const FILTERS: [(&str, u8, bool, bool, u8); 10] = [
    ("sensors/+/temperature", 1, false, false, 0),
    ("sensors/+/humidity", 1, false, false, 0),
    ("home/livingroom/#", 0, true, false, 1),
    ("home/kitchen/light/state", 2, false, true, 0),
    ("factory/line-1/+/status", 1, true, true, 2),
    ("factory/line-2/+/status", 1, false, false, 1),
    ("$SYS/broker/clients/connected", 0, false, false, 0),
    ("alerts/#", 2, true, false, 0),
    ("devices/0042/commands", 1, false, true, 2),
    ("fleet/+/+/position", 0, false, false, 0),
];

fn payload(len: usize) -> Bytes {
    (0..=255u8).cycle().take(len).collect::<Vec<u8>>().into()
}

fn midge_encode(packet: &Packet, version: ProtocolVersion) -> Bytes {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .expect("midge encodes the packet");
    assert_eq!(buf.len(), packet.encoded_len(version), "encoded_len agrees");
    buf.freeze()
}

/// Checks that midge decodes `wire` to exactly `packet`, consuming all of it.
fn check_midge_decodes(row: &str, wire: &Bytes, version: ProtocolVersion, packet: &Packet) {
    let mut buf = BytesMut::from(wire.as_ref());
    let decoded = Decoder::new(version).decode(&mut buf);
    assert_eq!(decoded.as_ref(), Ok(&Some(packet.clone())), "{row}: midge");
    assert!(buf.is_empty(), "{row}: midge left bytes behind");
}

/// Times decoding `wire` with each codec's decode function.
fn compare_decode<M, R>(
    c: &mut Criterion,
    row: &str,
    wire: &Bytes,
    mut midge: impl FnMut(&mut BytesMut) -> M,
    mut rumqttc: impl FnMut(&mut BytesMut) -> R,
) {
    let mut group = c.benchmark_group(format!("{row}/decode"));
    group.throughput(Throughput::Bytes(wire.len() as u64));
    let fresh = || BytesMut::from(wire.as_ref());
    group.bench_function("midge", |b| {
        b.iter_batched_ref(fresh, |buf| black_box(midge(buf)), BatchSize::SmallInput)
    });
    group.bench_function("rumqttc", |b| {
        b.iter_batched_ref(fresh, |buf| black_box(rumqttc(buf)), BatchSize::SmallInput)
    });
    group.finish();
}

/// Times encoding with each codec's encode function into a reused buffer.
fn compare_encode<M, R>(
    c: &mut Criterion,
    row: &str,
    len: usize,
    mut midge: impl FnMut(&mut BytesMut) -> M,
    mut rumqttc: impl FnMut(&mut BytesMut) -> R,
) {
    let mut group = c.benchmark_group(format!("{row}/encode"));
    group.throughput(Throughput::Bytes(len as u64));
    let mut buf = BytesMut::with_capacity(2 * len);
    group.bench_function("midge", |b| {
        b.iter(|| {
            buf.clear();
            black_box(midge(&mut buf));
            black_box(&buf);
        })
    });
    group.bench_function("rumqttc", |b| {
        b.iter(|| {
            buf.clear();
            black_box(rumqttc(&mut buf));
            black_box(&buf);
        })
    });
    group.finish();
}

/// The packet struct inside a `Packet`: the encode rows time `Publish::encode` and the like,
/// as rumqttc's rows time `Publish::write`, not a dispatch over the packet enum.
macro_rules! packet_struct {
    ($packet:expr, $variant:ident) => {
        match &$packet {
            Packet::$variant(inner) => inner,
            _ => unreachable!("the row builds a {}", stringify!($variant)),
        }
    };
}

fn midge_publish(payload: &Bytes) -> Packet {
    let mut publish = Publish::new(TopicName::from_static(TOPIC), payload.clone());
    publish.qos = QoS::AtLeastOnce;
    publish.packet_id = PacketId::new(PACKET_ID);
    Packet::from(publish)
}

/// PUBLISH QoS 1, MQTT 3.1.1.
fn publish_v311(c: &mut Criterion, row: &str, payload_len: usize) {
    let v = ProtocolVersion::V3_1_1;
    let payload = payload(payload_len);
    let midge = midge_publish(&payload);
    let rumqttc = r4::Publish {
        dup: false,
        qos: R4QoS::AtLeastOnce,
        retain: false,
        topic: TOPIC.to_owned(),
        pkid: PACKET_ID,
        payload,
    };

    let wire = midge_encode(&midge, v);
    let mut theirs = BytesMut::new();
    rumqttc.write(&mut theirs).expect("rumqttc encodes");
    assert_eq!(wire, theirs, "{row}: both encode the same bytes");
    check_midge_decodes(row, &wire, v, &midge);
    let decoded = r4::Packet::read(&mut BytesMut::from(wire.as_ref()), MAX_SIZE as usize);
    assert_eq!(decoded.ok(), Some(r4::Packet::Publish(rumqttc.clone())));

    let mut decoder = Decoder::new(v);
    compare_decode(
        c,
        row,
        &wire,
        |buf| decoder.decode(buf),
        |buf| r4::Packet::read(buf, MAX_SIZE as usize),
    );
    // Both sides encode the packet struct itself, as a broker sends a shared PUBLISH.
    let midge_struct = packet_struct!(midge, Publish);
    compare_encode(
        c,
        row,
        wire.len(),
        |buf| black_box(midge_struct).encode(v, buf),
        |buf| black_box(&rumqttc).write(buf),
    );
}

/// PUBLISH QoS 1, MQTT 5.0, no properties.
fn publish_v5(c: &mut Criterion, row: &str, payload_len: usize) {
    let v = ProtocolVersion::V5;
    let payload = payload(payload_len);
    let midge = midge_publish(&payload);
    let rumqttc = r5::Publish {
        dup: false,
        qos: R5QoS::AtLeastOnce,
        retain: false,
        topic: Bytes::from_static(TOPIC.as_bytes()),
        pkid: PACKET_ID,
        payload,
        properties: None,
    };

    let wire = midge_encode(&midge, v);
    let mut theirs = BytesMut::new();
    rumqttc.write(&mut theirs).expect("rumqttc encodes");
    assert_eq!(wire, theirs, "{row}: both encode the same bytes");
    check_midge_decodes(row, &wire, v, &midge);
    let decoded = r5::Packet::read(&mut BytesMut::from(wire.as_ref()), Some(MAX_SIZE));
    assert_eq!(decoded.ok(), Some(r5::Packet::Publish(rumqttc.clone())));

    let mut decoder = Decoder::new(v);
    compare_decode(
        c,
        row,
        &wire,
        |buf| decoder.decode(buf),
        |buf| r5::Packet::read(buf, Some(MAX_SIZE)),
    );
    // Both sides encode the packet struct itself, as a broker sends a shared PUBLISH.
    let midge_struct = packet_struct!(midge, Publish);
    compare_encode(
        c,
        row,
        wire.len(),
        |buf| black_box(midge_struct).encode(v, buf),
        |buf| black_box(&rumqttc).write(buf),
    );
}

fn publish(c: &mut Criterion) {
    publish_v311(c, "publish_64B_v311", 64);
    publish_v311(c, "publish_4KiB_v311", 4096);
    publish_v5(c, "publish_64B_v5", 64);
    publish_v5(c, "publish_4KiB_v5", 4096);
}

/// CONNECT, MQTT 5.0: session expiry, receive maximum, maximum packet size, topic alias
/// maximum and a user property; a will with properties; user name and password.
fn connect_v5(c: &mut Criterion) {
    let row = "connect_v5";
    let v = ProtocolVersion::V5;
    const CLIENT_ID: &str = "midge-bench-client-0001";
    const WILL_TOPIC: &str = "clients/midge-bench-client-0001/status";
    const WILL_PAYLOAD: &str = "offline";
    const USERNAME: &str = "bench-user";
    const PASSWORD: &str = "correct horse battery staple";

    let midge = Packet::from(Connect {
        protocol_version: v,
        clean_start: true,
        keep_alive: 30,
        client_id: ByteStr::from_static(CLIENT_ID),
        will: Some(Will {
            topic: TopicName::from_static(WILL_TOPIC),
            payload: Bytes::from_static(WILL_PAYLOAD.as_bytes()),
            qos: QoS::AtLeastOnce,
            retain: true,
            properties: WillProperties {
                will_delay_interval: Some(5),
                payload_format_indicator: Some(true),
                message_expiry_interval: Some(3600),
                content_type: Some(ByteStr::from_static("text/plain")),
                ..Default::default()
            },
        }),
        username: Some(ByteStr::from_static(USERNAME)),
        password: Some(Bytes::from_static(PASSWORD.as_bytes())),
        properties: ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: NonZeroU16::new(100),
            maximum_packet_size: NonZeroU32::new(1 << 20),
            topic_alias_maximum: Some(16),
            user_properties: vec![UserProperty {
                name: ByteStr::from_static("app"),
                value: ByteStr::from_static("midge-bench"),
            }],
            ..Default::default()
        },
    });
    let connect = r5::Connect {
        keep_alive: 30,
        client_id: CLIENT_ID.to_owned(),
        clean_start: true,
        properties: Some(r5::ConnectProperties {
            session_expiry_interval: Some(3600),
            receive_maximum: Some(100),
            max_packet_size: Some(1 << 20),
            topic_alias_max: Some(16),
            user_properties: vec![("app".to_owned(), "midge-bench".to_owned())],
            ..r5::ConnectProperties::new()
        }),
    };
    let will = Some(r5::LastWill {
        topic: Bytes::from_static(WILL_TOPIC.as_bytes()),
        message: Bytes::from_static(WILL_PAYLOAD.as_bytes()),
        qos: R5QoS::AtLeastOnce,
        retain: true,
        properties: Some(r5::LastWillProperties {
            delay_interval: Some(5),
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(3600),
            content_type: Some("text/plain".to_owned()),
            response_topic: None,
            correlation_data: None,
            user_properties: Vec::new(),
        }),
    });
    let login = Some(r5::Login::new(USERNAME, PASSWORD));

    let wire = midge_encode(&midge, v);
    let mut theirs = BytesMut::new();
    connect
        .write(&will, &login, &mut theirs)
        .expect("rumqttc encodes");
    assert_eq!(wire, theirs, "{row}: both encode the same bytes");
    check_midge_decodes(row, &wire, v, &midge);
    let decoded = r5::Packet::read(&mut BytesMut::from(wire.as_ref()), Some(MAX_SIZE));
    assert_eq!(
        decoded.ok(),
        Some(r5::Packet::Connect(
            connect.clone(),
            will.clone(),
            login.clone()
        ))
    );

    // A server's decoder before the CONNECT: it adopts the version the CONNECT announces.
    let mut decoder = Decoder::new(v);
    compare_decode(
        c,
        row,
        &wire,
        |buf| decoder.decode(buf),
        |buf| r5::Packet::read(buf, Some(MAX_SIZE)),
    );
    // Both sides encode the packet struct itself, not a dispatch over the packet enum.
    let midge_struct = packet_struct!(midge, Connect);
    compare_encode(
        c,
        row,
        wire.len(),
        |buf| black_box(midge_struct).encode(v, buf),
        |buf| black_box(&connect).write(black_box(&will), black_box(&login), buf),
    );
}

fn midge_subscribe(version: ProtocolVersion) -> Packet {
    let subscriptions = FILTERS
        .iter()
        .map(|&(filter, qos, no_local, rap, rh)| {
            let qos = QoS::from_u8(qos).expect("QoS 0..=2");
            let options = if version.is_v5() {
                SubscriptionOptions {
                    qos,
                    no_local,
                    retain_as_published: rap,
                    retain_handling: match rh {
                        0 => RetainHandling::SendAtSubscribe,
                        1 => RetainHandling::SendAtSubscribeIfNew,
                        _ => RetainHandling::DoNotSend,
                    },
                }
            } else {
                SubscriptionOptions::qos(qos)
            };
            Subscription {
                filter: TopicFilter::try_from(filter).expect("valid filter"),
                options,
            }
        })
        .collect();
    let mut properties = SubscribeProperties::default();
    if version.is_v5() {
        properties.subscription_identifier = SubscriptionId::new(42);
    }
    Packet::from(Subscribe {
        packet_id: PacketId::new(PACKET_ID).expect("non-zero"),
        subscriptions,
        properties,
    })
}

fn r4_qos(qos: u8) -> R4QoS {
    rumqttc::mqttbytes::qos(qos).expect("QoS 0..=2")
}

fn r5_qos(qos: u8) -> R5QoS {
    rumqttc::v5::mqttbytes::qos(qos).expect("QoS 0..=2")
}

/// SUBSCRIBE with ten filters, MQTT 3.1.1.
fn subscribe_v311(c: &mut Criterion) {
    let row = "subscribe_10_v311";
    let v = ProtocolVersion::V3_1_1;
    let midge = midge_subscribe(v);
    let rumqttc = r4::Subscribe {
        pkid: PACKET_ID,
        filters: FILTERS
            .iter()
            .map(|&(path, qos, ..)| r4::SubscribeFilter::new(path.to_owned(), r4_qos(qos)))
            .collect(),
    };

    let wire = midge_encode(&midge, v);
    let mut theirs = BytesMut::new();
    rumqttc.write(&mut theirs).expect("rumqttc encodes");
    assert_eq!(wire, theirs, "{row}: both encode the same bytes");
    check_midge_decodes(row, &wire, v, &midge);
    let decoded = r4::Packet::read(&mut BytesMut::from(wire.as_ref()), MAX_SIZE as usize);
    assert_eq!(decoded.ok(), Some(r4::Packet::Subscribe(rumqttc.clone())));

    let mut decoder = Decoder::new(v);
    compare_decode(
        c,
        row,
        &wire,
        |buf| decoder.decode(buf),
        |buf| r4::Packet::read(buf, MAX_SIZE as usize),
    );
    // Both sides encode the packet struct itself, not a dispatch over the packet enum.
    let midge_struct = packet_struct!(midge, Subscribe);
    compare_encode(
        c,
        row,
        wire.len(),
        |buf| black_box(midge_struct).encode(v, buf),
        |buf| black_box(&rumqttc).write(buf),
    );
}

/// SUBSCRIBE with ten filters and a subscription identifier, MQTT 5.0.
fn subscribe_v5(c: &mut Criterion) {
    let row = "subscribe_10_v5";
    let v = ProtocolVersion::V5;
    let midge = midge_subscribe(v);
    let rumqttc = r5::Subscribe {
        pkid: PACKET_ID,
        filters: FILTERS
            .iter()
            .map(|&(path, qos, nolocal, preserve_retain, rh)| r5::Filter {
                path: path.to_owned(),
                qos: r5_qos(qos),
                nolocal,
                preserve_retain,
                retain_forward_rule: match rh {
                    0 => r5::RetainForwardRule::OnEverySubscribe,
                    1 => r5::RetainForwardRule::OnNewSubscribe,
                    _ => r5::RetainForwardRule::Never,
                },
            })
            .collect(),
        properties: Some(r5::SubscribeProperties {
            id: Some(42),
            user_properties: Vec::new(),
        }),
    };

    let wire = midge_encode(&midge, v);
    let mut theirs = BytesMut::new();
    rumqttc.write(&mut theirs).expect("rumqttc encodes");
    assert_eq!(wire, theirs, "{row}: both encode the same bytes");
    check_midge_decodes(row, &wire, v, &midge);
    let decoded = r5::Packet::read(&mut BytesMut::from(wire.as_ref()), Some(MAX_SIZE));
    assert_eq!(decoded.ok(), Some(r5::Packet::Subscribe(rumqttc.clone())));

    let mut decoder = Decoder::new(v);
    compare_decode(
        c,
        row,
        &wire,
        |buf| decoder.decode(buf),
        |buf| r5::Packet::read(buf, Some(MAX_SIZE)),
    );
    // Both sides encode the packet struct itself, not a dispatch over the packet enum.
    let midge_struct = packet_struct!(midge, Subscribe);
    compare_encode(
        c,
        row,
        wire.len(),
        |buf| black_box(midge_struct).encode(v, buf),
        |buf| black_box(&rumqttc).write(buf),
    );
}

fn subscribe(c: &mut Criterion) {
    subscribe_v311(c);
    subscribe_v5(c);
}

criterion_group!(benches, publish, connect_v5, subscribe);
criterion_main!(benches);
