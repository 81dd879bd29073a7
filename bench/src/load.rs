//! One load run: publishers and subscribers in a topology, for a while, measured.
//!
//! Each payload starts with the time it was sent (nanoseconds since the run began) and the
//! publisher and sequence numbers, so every subscriber measures end-to-end latency itself and
//! the run counts exactly what was lost.

use std::io;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use hdrhistogram::Histogram;
use midge_codec::{
    Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::client::Conn;

/// Who publishes to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Topology {
    /// Publisher i to subscriber i, on topic bench/i.
    Pairs,
    /// One publisher to every subscriber.
    Broadcast,
    /// Every publisher to one subscriber, which subscribes to bench/+.
    FanIn,
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Plan {
    #[serde(skip)]
    pub(crate) addr: SocketAddr,
    pub(crate) version: u8,
    pub(crate) qos: u8,
    pub(crate) payload: usize,
    pub(crate) topology: Topology,
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    /// Messages per second for each publisher; 0 for as fast as the broker takes them.
    pub(crate) rate: u64,
    pub(crate) seconds: f64,
    /// QoS 1/2 messages a publisher may have unacknowledged.
    pub(crate) window: usize,
}

/// What came out.
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) sent: u64,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    pub(crate) seconds: f64,
    pub(crate) msgs_per_sec: f64,
    pub(crate) mb_per_sec: f64,
    pub(crate) latency_us: Latency,
}

/// End-to-end latency percentiles, in microseconds.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Latency {
    pub(crate) p50: u64,
    pub(crate) p90: u64,
    pub(crate) p99: u64,
    pub(crate) max: u64,
}

const HEADER: usize = 16;

impl Plan {
    fn version(&self) -> ProtocolVersion {
        if self.version == 5 {
            ProtocolVersion::V5
        } else {
            ProtocolVersion::V3_1_1
        }
    }

    fn qos(&self) -> QoS {
        QoS::from_u8(self.qos).unwrap_or(QoS::AtMostOnce)
    }

    /// How many subscribers receive each message of publisher `p`.
    fn fanout(&self) -> u64 {
        match self.topology {
            Topology::Pairs | Topology::FanIn => 1,
            Topology::Broadcast => self.subscribers as u64,
        }
    }

    fn subscription(&self, s: usize) -> String {
        match self.topology {
            Topology::Pairs => format!("bench/{s}"),
            Topology::Broadcast => "bench/0".into(),
            Topology::FanIn => "bench/+".into(),
        }
    }
}

/// Runs the plan: connects everyone, publishes for `seconds`, waits for stragglers.
pub(crate) async fn run(plan: Plan) -> io::Result<Outcome> {
    let start = Instant::now();
    let delivered = Arc::new(AtomicU64::new(0));
    let (stop_subs, stop_subs_rx) = watch::channel(false);
    let mut subscribers = Vec::new();
    for s in 0..plan.subscribers {
        let mut conn = Conn::open(
            plan.addr,
            plan.version(),
            &format!("bench-sub-{s}-{}", std::process::id()),
        )
        .await?;
        subscribe(&mut conn, &plan.subscription(s), plan.qos()).await?;
        subscribers.push(tokio::spawn(subscriber(
            conn,
            start,
            delivered.clone(),
            stop_subs_rx.clone(),
        )));
    }
    let (stop_pubs, stop_pubs_rx) = watch::channel(false);
    let mut publishers = Vec::new();
    for p in 0..plan.publishers {
        let conn = Conn::open(
            plan.addr,
            plan.version(),
            &format!("bench-pub-{p}-{}", std::process::id()),
        )
        .await?;
        publishers.push(tokio::spawn(publisher(
            conn,
            plan.clone(),
            p,
            start,
            stop_pubs_rx.clone(),
        )));
    }
    let publishing = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(plan.seconds)).await;
    let _ = stop_pubs.send(true);
    let mut sent = 0;
    for task in publishers {
        sent += task.await.map_err(io::Error::other)??;
    }
    let seconds = publishing.elapsed().as_secs_f64();
    let expected = sent * plan.fanout();
    // Stragglers: up to 5 s for what is still on its way.
    let drain = Instant::now();
    while delivered.load(Ordering::Relaxed) < expected && drain.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = stop_subs.send(true);
    let mut histogram = Histogram::<u64>::new(3).map_err(io::Error::other)?;
    for task in subscribers {
        histogram
            .add(task.await.map_err(io::Error::other)??)
            .map_err(io::Error::other)?;
    }
    let delivered = delivered.load(Ordering::Relaxed);
    let msgs_per_sec = delivered as f64 / seconds;
    Ok(Outcome {
        sent,
        expected,
        delivered,
        lost: expected.saturating_sub(delivered),
        seconds,
        msgs_per_sec,
        mb_per_sec: msgs_per_sec * plan.payload as f64 / 1e6,
        latency_us: Latency {
            p50: histogram.value_at_quantile(0.5) / 1000,
            p90: histogram.value_at_quantile(0.9) / 1000,
            p99: histogram.value_at_quantile(0.99) / 1000,
            max: histogram.max() / 1000,
        },
    })
}

async fn subscribe(conn: &mut Conn, filter: &str, qos: QoS) -> io::Result<()> {
    let filter = TopicFilter::try_from(filter).map_err(io::Error::other)?;
    let subscribe = Subscribe {
        packet_id: NonZeroU16::MIN,
        subscriptions: vec![Subscription {
            filter,
            options: SubscriptionOptions::qos(qos),
        }],
        properties: Default::default(),
    };
    conn.queue(&Packet::from(subscribe))?;
    conn.flush().await?;
    match conn.next().await? {
        Packet::SubAck(ack) if ack.reason_codes.iter().all(|c| !c.is_error()) => Ok(()),
        other => Err(io::Error::other(format!("subscription refused: {other:?}"))),
    }
}

/// Publishes until told to stop (and, at QoS 1/2, until everything is acknowledged).
/// Returns how many messages were published.
async fn publisher(
    mut conn: Conn,
    plan: Plan,
    index: usize,
    start: Instant,
    mut stop: watch::Receiver<bool>,
) -> io::Result<u64> {
    let topic = TopicName::try_from(format!("bench/{index}")).map_err(io::Error::other)?;
    let qos = plan.qos();
    let acked = qos != QoS::AtMostOnce;
    // Batches of messages per write: big at full speed, one per tick at a fixed rate.
    let batch = if plan.rate == 0 { 64 } else { 1 };
    let mut ticks = (plan.rate > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate as f64));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    let (mut seq, mut inflight, mut next_id, mut stopping) = (0u64, 0usize, 0u16, false);
    let mut payload = BytesMut::with_capacity(plan.payload.max(HEADER));
    loop {
        let room = !stopping && (!acked || inflight + batch <= plan.window);
        tokio::select! {
            biased;
            _ = stop.changed(), if !stopping => stopping = true,
            read = conn.fill() => {
                read?;
                while let Some(packet) = conn.decoded()? {
                    match packet {
                        Packet::PubAck(_) | Packet::PubComp(_) => inflight -= 1,
                        Packet::PubRec(rec) => conn.queue(&Packet::PubRel(PubRel::new(rec.packet_id)))?,
                        _ => {}
                    }
                }
            }
            () = tick(&mut ticks), if room => {
                for _ in 0..batch {
                    payload.clear();
                    payload.put_u64(start.elapsed().as_nanos() as u64);
                    payload.put_u32(index as u32);
                    payload.put_u32(seq as u32);
                    payload.resize(plan.payload.max(HEADER), b'x');
                    let mut publish = Publish::new(topic.clone(), Bytes::copy_from_slice(&payload));
                    publish.qos = qos;
                    if acked {
                        next_id = next_id.wrapping_add(1).max(1);
                        publish.packet_id = NonZeroU16::new(next_id);
                        inflight += 1;
                    }
                    publish.encode(conn.version, &mut conn.out).map_err(io::Error::other)?;
                    seq += 1;
                }
            }
        }
        conn.flush().await?;
        if stopping && inflight == 0 {
            return Ok(seq);
        }
    }
}

async fn tick(ticks: &mut Option<tokio::time::Interval>) {
    if let Some(t) = ticks {
        t.tick().await;
    }
}

/// Receives, acknowledges and times messages until told to stop. Returns the latencies.
async fn subscriber(
    mut conn: Conn,
    start: Instant,
    delivered: Arc<AtomicU64>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<Histogram<u64>> {
    let mut histogram = Histogram::<u64>::new(3).map_err(io::Error::other)?;
    loop {
        tokio::select! {
            _ = stop.changed() => return Ok(histogram),
            read = conn.fill() => read?,
        }
        let now = start.elapsed().as_nanos() as u64;
        let mut count = 0;
        while let Some(packet) = conn.decoded()? {
            match packet {
                Packet::Publish(publish) => {
                    let sent = publish
                        .payload
                        .get(..8)
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_be_bytes);
                    if let Some(sent) = sent {
                        let _ = histogram.record(now.saturating_sub(sent).max(1));
                    }
                    count += 1;
                    match (publish.qos, publish.packet_id) {
                        (QoS::AtLeastOnce, Some(id)) => {
                            conn.queue(&Packet::PubAck(PubAck::new(id)))?
                        }
                        (QoS::ExactlyOnce, Some(id)) => {
                            conn.queue(&Packet::PubRec(PubRec::new(id)))?
                        }
                        _ => {}
                    }
                }
                Packet::PubRel(rel) => conn.queue(&Packet::PubComp(PubComp::new(rel.packet_id)))?,
                _ => {}
            }
        }
        delivered.fetch_add(count, Ordering::Relaxed);
        conn.flush().await?;
    }
}
