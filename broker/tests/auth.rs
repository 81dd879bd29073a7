//! The authentication hook, through the library: a broker started with a custom `Auth`,
//! driven by a minimal client built on midge-codec.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::num::NonZeroU16;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use midge_broker::{Auth, Broker, ClientInfo, Config};
use midge_codec::{
    ByteStr, Connect, Decoder, Packet, ProtocolVersion, Publish, QoS, ReasonCode, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Mallory may not connect; nobody may subscribe under `secret/`; only `writer` may
/// publish under `readonly/`.
struct Policy;

impl Auth for Policy {
    fn connect(&self, connect: &Connect) -> Result<(), ReasonCode> {
        match connect.username.as_deref() {
            Some("mallory") => Err(ReasonCode::BadUserNameOrPassword),
            _ => Ok(()),
        }
    }

    fn subscribe(&self, _: ClientInfo<'_>, filter: &TopicFilter) -> bool {
        !filter.filter().starts_with("secret/")
    }

    fn publish(&self, client: ClientInfo<'_>, topic: &TopicName) -> bool {
        !topic.as_str().starts_with("readonly/") || client.username == Some("writer")
    }
}

struct TestClient {
    stream: TcpStream,
    decoder: Decoder,
    buf: BytesMut,
    version: ProtocolVersion,
}

impl TestClient {
    async fn connect(
        broker: &Broker,
        version: ProtocolVersion,
        username: Option<&str>,
    ) -> (TestClient, Packet) {
        let stream = TcpStream::connect(broker.tcp_addrs()[0]).await.unwrap();
        let mut client = TestClient {
            stream,
            decoder: Decoder::new(version),
            buf: BytesMut::new(),
            version,
        };
        let mut connect = Connect::new(
            version,
            ByteStr::try_from(format!("c-{}", username.unwrap_or("anon"))).unwrap(),
        );
        connect.username = username.map(|u| ByteStr::try_from(u).unwrap());
        client.send(Packet::from(connect)).await;
        let ack = client.receive().await.expect("a CONNACK");
        (client, ack)
    }

    async fn send(&mut self, packet: Packet) {
        let mut out = BytesMut::new();
        packet.encode(self.version, &mut out).unwrap();
        self.stream.write_all(&out).await.unwrap();
    }

    /// The next packet, or None if the broker closed the connection.
    async fn receive(&mut self) -> Option<Packet> {
        loop {
            if let Some(packet) = self.decoder.decode(&mut self.buf).unwrap() {
                return Some(packet);
            }
            let n =
                tokio::time::timeout(Duration::from_secs(5), self.stream.read_buf(&mut self.buf))
                    .await
                    .expect("the broker answers within 5 s")
                    .unwrap();
            if n == 0 {
                return None;
            }
        }
    }
}

fn subscribe(filters: &[&str]) -> Packet {
    Packet::from(Subscribe {
        packet_id: NonZeroU16::new(1).unwrap(),
        subscriptions: filters
            .iter()
            .map(|f| Subscription {
                filter: TopicFilter::try_from(*f).unwrap(),
                options: SubscriptionOptions::qos(QoS::AtLeastOnce),
            })
            .collect(),
        properties: Default::default(),
    })
}

fn publish(topic: &str, payload: &'static str, qos: QoS) -> Packet {
    let mut p = Publish::new(TopicName::try_from(topic).unwrap(), payload);
    p.qos = qos;
    p.packet_id = (qos != QoS::AtMostOnce).then(|| NonZeroU16::new(7).unwrap());
    Packet::from(p)
}

async fn broker() -> Broker {
    let config = Config {
        tcp: vec!["127.0.0.1:0".parse().unwrap()],
        http: vec![],
        ..Config::default()
    };
    Broker::start_with_auth(config, Arc::new(Policy))
        .await
        .unwrap()
}

#[tokio::test]
async fn refused_connections_get_their_reason_code() {
    let broker = broker().await;
    let (mut v5, ack) = TestClient::connect(&broker, ProtocolVersion::V5, Some("mallory")).await;
    let Packet::ConnAck(ack) = ack else {
        panic!("{ack:?}")
    };
    assert_eq!(ack.reason_code, ReasonCode::BadUserNameOrPassword);
    assert!(v5.receive().await.is_none(), "closed after the refusal");
    // 3.1.1: return code 4, "bad user name or password".
    let (_, ack) = TestClient::connect(&broker, ProtocolVersion::V3_1_1, Some("mallory")).await;
    let Packet::ConnAck(ack) = ack else {
        panic!("{ack:?}")
    };
    assert_eq!(ack.reason_code.to_v3_connack(), 4);
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn refused_filters_fail_alone_in_the_suback() {
    let broker = broker().await;
    for (version, refused) in [
        (ProtocolVersion::V5, ReasonCode::NotAuthorized),
        (ProtocolVersion::V3_1_1, ReasonCode::UnspecifiedError),
    ] {
        let (mut client, _) = TestClient::connect(&broker, version, Some("alice")).await;
        client
            .send(subscribe(&["public/#", "secret/plans", "news"]))
            .await;
        let Some(Packet::SubAck(ack)) = client.receive().await else {
            panic!()
        };
        assert_eq!(
            ack.reason_codes,
            [ReasonCode::GrantedQos1, refused, ReasonCode::GrantedQos1],
            "{version}"
        );
    }
    broker.shutdown(Duration::from_secs(1)).await;
}

#[tokio::test]
async fn refused_publishes_are_dropped_and_5_0_says_so() {
    let broker = broker().await;
    let (mut reader, _) = TestClient::connect(&broker, ProtocolVersion::V5, Some("reader")).await;
    reader.send(subscribe(&["readonly/#"])).await;
    assert!(matches!(reader.receive().await, Some(Packet::SubAck(_))));

    let (mut alice, _) = TestClient::connect(&broker, ProtocolVersion::V5, Some("alice")).await;
    alice
        .send(publish("readonly/config", "from alice", QoS::AtLeastOnce))
        .await;
    let Some(Packet::PubAck(ack)) = alice.receive().await else {
        panic!()
    };
    assert_eq!(ack.reason_code, ReasonCode::NotAuthorized);
    alice
        .send(publish("readonly/config", "from alice", QoS::ExactlyOnce))
        .await;
    let Some(Packet::PubRec(rec)) = alice.receive().await else {
        panic!()
    };
    assert_eq!(rec.reason_code, ReasonCode::NotAuthorized);

    let (mut writer, _) = TestClient::connect(&broker, ProtocolVersion::V5, Some("writer")).await;
    writer
        .send(publish("readonly/config", "from writer", QoS::AtLeastOnce))
        .await;
    let Some(Packet::PubAck(ack)) = writer.receive().await else {
        panic!()
    };
    assert_eq!(ack.reason_code, ReasonCode::Success);
    // Only the writer's message arrives.
    let Some(Packet::Publish(p)) = reader.receive().await else {
        panic!()
    };
    assert_eq!(&p.payload[..], b"from writer");
    reader.send(Packet::PingReq).await;
    assert_eq!(
        reader.receive().await,
        Some(Packet::PingResp),
        "nothing else was queued"
    );
    broker.shutdown(Duration::from_secs(1)).await;
}
