//! Encodes one of the benchmark rows' PUBLISH packets `n` times, with midge-codec or with
//! rumqttc: run under `valgrind --tool=callgrind` by `codec/benches/instructions.sh`, which
//! turns two runs (`n` and `n` + 10,000) into instructions per encode. Instruction counts are
//! the same from run to run whatever else the machine does, so rows whose criterion medians
//! differ by less than the noise can still be ranked.
//!
//! `cargo run --release -p midge-codec --example encode_instructions -- midge publish_64B_v5 1000`

#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)]

use std::hint::black_box;

use bytes::{Bytes, BytesMut};
use midge_codec::{PacketId, ProtocolVersion, Publish, QoS, TopicName};
use rumqttc::mqttbytes::{QoS as R4QoS, v4 as r4};
use rumqttc::v5::mqttbytes::{QoS as R5QoS, v5 as r5};

/// The benchmark rows' topic (codec/benches/codec.rs).
const TOPIC: &str = "sensors/building-7/floor-3/room-42/temperature";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, codec, row, n] = args.as_slice() else {
        panic!("usage: encode_instructions midge|rumqttc publish_{{64B,4KiB}}_{{v311,v5}} N");
    };
    let n: usize = n.parse().expect("N is a number");
    let (size, v5) = match row.as_str() {
        "publish_64B_v311" => (64, false),
        "publish_4KiB_v311" => (4096, false),
        "publish_64B_v5" => (64, true),
        "publish_4KiB_v5" => (4096, true),
        other => panic!("unknown row {other}"),
    };
    let payload: Bytes = (0..=255u8).cycle().take(size).collect::<Vec<u8>>().into();
    let mut buf = BytesMut::with_capacity(2 * size + 128);
    match codec.as_str() {
        "midge" => {
            let mut publish = Publish::new(TopicName::from_static(TOPIC), payload);
            publish.qos = QoS::AtLeastOnce;
            publish.packet_id = PacketId::new(1);
            let version = if v5 {
                ProtocolVersion::V5
            } else {
                ProtocolVersion::V3_1_1
            };
            for _ in 0..n {
                buf.clear();
                black_box(black_box(&publish).encode(version, &mut buf)).unwrap();
                black_box(&buf);
            }
        }
        "rumqttc" if v5 => {
            let publish = r5::Publish {
                dup: false,
                qos: R5QoS::AtLeastOnce,
                retain: false,
                topic: Bytes::from_static(TOPIC.as_bytes()),
                pkid: 1,
                payload,
                properties: None,
            };
            for _ in 0..n {
                buf.clear();
                black_box(black_box(&publish).write(&mut buf)).unwrap();
                black_box(&buf);
            }
        }
        "rumqttc" => {
            let publish = r4::Publish {
                dup: false,
                qos: R4QoS::AtLeastOnce,
                retain: false,
                topic: TOPIC.to_owned(),
                pkid: 1,
                payload,
            };
            for _ in 0..n {
                buf.clear();
                black_box(black_box(&publish).write(&mut buf)).unwrap();
                black_box(&buf);
            }
        }
        other => panic!("unknown codec {other}"),
    }
}
