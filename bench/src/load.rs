//! One load run: publishers and subscribers in a topology, for a while, measured.
//!
//! Each payload starts with the time it was sent (nanoseconds since the run began) and the
//! publisher and sequence numbers, so every subscriber measures end-to-end latency itself and
//! the run counts exactly what was lost.

use std::io;
use std::num::NonZeroU16;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use futures_util::{StreamExt, TryStreamExt, stream};
use hdrhistogram::Histogram;
use midge_codec::{
    Packet, ProtocolVersion, PubAck, PubComp, PubRec, PubRel, Publish, QoS, Subscribe,
    Subscription, SubscriptionOptions, TopicFilter, TopicName,
};
use serde::Serialize;
use tokio::sync::watch;

use crate::client::{Buffers, CONCURRENCY, Conn, Endpoint, Transport, open_many};
use crate::process;

/// Who publishes to whom.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Topology {
    /// Publisher i to subscriber i, on topic `<prefix>/i`.
    Pairs,
    /// One publisher to every subscriber.
    Broadcast,
    /// Every publisher to one subscriber, which subscribes to `<prefix>/+`.
    FanIn,
}

/// What to run.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Plan {
    #[serde(skip)]
    pub(crate) endpoint: Endpoint,
    pub(crate) transport: Transport,
    pub(crate) version: u8,
    pub(crate) qos: u8,
    pub(crate) payload: usize,
    pub(crate) topology: Topology,
    pub(crate) publishers: usize,
    pub(crate) subscribers: usize,
    /// Subscribers keep persistent sessions (3.1.1 Clean Session 0, 5.0 Session Expiry).
    pub(crate) persistent: bool,
    /// Messages per second for each publisher; 0 for as fast as the broker takes them.
    pub(crate) rate: u64,
    pub(crate) seconds: f64,
    /// QoS 1/2 messages a publisher may have unacknowledged.
    pub(crate) window: usize,
    /// Topics are `<prefix>/<publisher>`; generators sharing a broker need different ones.
    pub(crate) prefix: String,
}

/// What came out.
#[derive(Debug, Serialize)]
pub(crate) struct Outcome {
    pub(crate) sent: u64,
    pub(crate) expected: u64,
    pub(crate) delivered: u64,
    pub(crate) lost: u64,
    /// How long the publishers were publishing.
    pub(crate) seconds: f64,
    /// Delivered messages over the longer of `seconds` and the time to the last delivery.
    pub(crate) msgs_per_sec: f64,
    pub(crate) mb_per_sec: f64,
    pub(crate) latency_us: Latency,
    /// From the first publish until the last delivery (or the drain gave up): the window
    /// over which CPU time is measured.
    pub(crate) measured_seconds: f64,
    /// CPU time the load generator itself spent while publishing and draining: near
    /// `seconds` times its threads means the generator, not the broker, set the pace.
    pub(crate) generator_cpu_seconds: f64,
    /// Publishers still blocked in a write (or waiting for acknowledgements) 3 s after being
    /// told to stop; they are abandoned.
    pub(crate) stuck_publishers: usize,
}

/// What the broker process spent over the measured window.
#[derive(Debug, Serialize)]
pub(crate) struct BrokerUsage {
    /// User plus system CPU time.
    pub(crate) cpu_seconds: f64,
    pub(crate) cpu_us_per_delivered: f64,
    /// The broker's peak resident memory so far (VmHWM).
    pub(crate) peak_rss_kib: u64,
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

/// The protocol version for `--protocol-version` 4 or 5.
pub(crate) fn protocol_version(version: u8) -> ProtocolVersion {
    if version == 5 {
        ProtocolVersion::V5
    } else {
        ProtocolVersion::V3_1_1
    }
}

impl Plan {
    fn version(&self) -> ProtocolVersion {
        protocol_version(self.version)
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
            Topology::Pairs => format!("{}/{s}", self.prefix),
            Topology::Broadcast => format!("{}/0", self.prefix),
            Topology::FanIn => format!("{}/+", self.prefix),
        }
    }
}

/// Runs the plan: connects everyone, publishes for `seconds`, waits for stragglers.
/// With the broker's `pid`, also what the broker spent meanwhile.
pub(crate) async fn run(
    plan: Plan,
    pid: Option<u32>,
) -> io::Result<(Outcome, Option<BrokerUsage>)> {
    let start = Instant::now();
    let delivered = Arc::new(Deliveries::default());
    let sent = Arc::new(AtomicU64::new(0));
    let (stop_subs, stop_subs_rx) = watch::channel(false);
    let me = std::process::id();
    let ids = (0..plan.subscribers).map(|s| format!("bench-sub-{s}-{me}"));
    let persistent = plan.persistent;
    let mut conns = open_many(
        &plan.endpoint,
        plan.version(),
        ids,
        Buffers::Load,
        persistent,
    )
    .await?;
    stream::iter(conns.iter_mut().enumerate())
        .map(|(s, conn)| subscribe(conn, plan.subscription(s), plan.qos()))
        .buffered(CONCURRENCY)
        .try_collect::<Vec<()>>()
        .await?;
    let subscribers: Vec<_> = conns
        .into_iter()
        .map(|conn| {
            tokio::spawn(subscriber(
                conn,
                start,
                delivered.clone(),
                stop_subs_rx.clone(),
            ))
        })
        .collect();
    let (stop_pubs, stop_pubs_rx) = watch::channel(false);
    let (go, go_rx) = watch::channel(false);
    let ids = (0..plan.publishers).map(|p| format!("bench-pub-{p}-{me}"));
    let conns = open_many(&plan.endpoint, plan.version(), ids, Buffers::Load, false).await?;
    let publishers: Vec<_> = conns
        .into_iter()
        .enumerate()
        .map(|(p, conn)| {
            tokio::spawn(publisher(
                conn,
                plan.clone(),
                p,
                start,
                sent.clone(),
                go_rx.clone(),
                stop_pubs_rx.clone(),
            ))
        })
        .collect();
    let cpu_before = own_cpu_seconds();
    let broker_before = pid.and_then(process::usage);
    let publishing = Instant::now();
    let publishing_ns = start.elapsed().as_nanos() as u64;
    // Everyone is connected: all publishers start now.
    let _ = go.send(true);
    tokio::time::sleep(Duration::from_secs_f64(plan.seconds)).await;
    let _ = stop_pubs.send(true);
    let seconds = publishing.elapsed().as_secs_f64();
    // Publishers finish their last write and collect their acknowledgements; one the broker
    // no longer reads from is abandoned after 3 s (all of them together, not each).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    let mut stuck_publishers = 0;
    for mut task in publishers {
        match tokio::time::timeout_at(deadline, &mut task).await {
            Ok(joined) => joined.map_err(io::Error::other)??,
            Err(_) => {
                task.abort();
                stuck_publishers += 1;
            }
        }
    }
    let sent = sent.load(Ordering::Relaxed);
    let expected = sent * plan.fanout();
    drain(&delivered, expected).await;
    let generator_cpu_seconds = own_cpu_seconds() - cpu_before;
    let broker_after = pid.and_then(process::usage);
    let measured_seconds = publishing.elapsed().as_secs_f64();
    let _ = stop_subs.send(true);
    let mut histogram = Histogram::<u64>::new(3).map_err(io::Error::other)?;
    for task in subscribers {
        histogram
            .add(task.await.map_err(io::Error::other)??)
            .map_err(io::Error::other)?;
    }
    let last_ns = delivered.last_ns.load(Ordering::Relaxed);
    let delivering = last_ns.saturating_sub(publishing_ns) as f64 / 1e9;
    let delivered = delivered.count.load(Ordering::Relaxed);
    // Over the longer of publishing and delivering: a backlog drained after the publishers
    // stopped counts, and so does the time it took.
    let msgs_per_sec = delivered as f64 / seconds.max(delivering);
    let broker = broker_before.zip(broker_after).map(|(b, a)| {
        let cpu_seconds = a.cpu_seconds - b.cpu_seconds;
        BrokerUsage {
            cpu_seconds,
            cpu_us_per_delivered: cpu_seconds * 1e6 / delivered.max(1) as f64,
            peak_rss_kib: a.peak_rss_kib,
        }
    });
    let outcome = Outcome {
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
        measured_seconds,
        generator_cpu_seconds,
        stuck_publishers,
    };
    Ok((outcome, broker))
}

fn own_cpu_seconds() -> f64 {
    process::usage(std::process::id()).map_or(0.0, |u| u.cpu_seconds)
}

/// What the subscribers received, together.
#[derive(Default)]
struct Deliveries {
    count: AtomicU64,
    /// When the last one arrived, in nanoseconds since the run began.
    last_ns: AtomicU64,
}

/// Waits for what is still on its way: until everything arrived, nothing more arrived for
/// half a second (the rest is lost), or 8 s passed. A broker that holds publishers back
/// can have seconds of messages still in its sockets' buffers when publishing stops (the
/// p99 says how many); they are late, not lost, as long as they keep arriving.
async fn drain(delivered: &Deliveries, expected: u64) {
    let began = Instant::now();
    let (mut last, mut progress) = (delivered.count.load(Ordering::Relaxed), Instant::now());
    while last < expected
        && progress.elapsed() < Duration::from_millis(500)
        && began.elapsed() < Duration::from_secs(8)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
        let now = delivered.count.load(Ordering::Relaxed);
        if now != last {
            (last, progress) = (now, Instant::now());
        }
    }
}

async fn subscribe(conn: &mut Conn, filter: String, qos: QoS) -> io::Result<()> {
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

/// Publishes until told to stop (and, at QoS 1/2, until everything is acknowledged),
/// adding to `sent` what each write carried.
async fn publisher(
    mut conn: Conn,
    plan: Plan,
    index: usize,
    start: Instant,
    sent: Arc<AtomicU64>,
    mut go: watch::Receiver<bool>,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    go.wait_for(|go| *go).await.map_err(io::Error::other)?;
    let topic =
        TopicName::try_from(format!("{}/{index}", plan.prefix)).map_err(io::Error::other)?;
    let qos = plan.qos();
    let acked = qos != QoS::AtMostOnce;
    // Batches of messages per write: big at full speed, one per tick at a fixed rate.
    let batch = if plan.rate == 0 { 64 } else { 1 };
    let mut ticks = (plan.rate > 0).then(|| {
        let mut t = tokio::time::interval(Duration::from_secs_f64(1.0 / plan.rate as f64));
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        t
    });
    // Every message shares one payload; its first bytes are overwritten in the encoded
    // packet, so nothing is allocated per message.
    let size = plan.payload.max(HEADER);
    let template = Bytes::from(vec![b'x'; size]);
    let (mut seq, mut inflight, mut next_id, mut stopping) = (0u32, 0usize, 0u16, false);
    loop {
        let room = !stopping && (!acked || inflight + batch <= plan.window);
        let mut queued = 0;
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
                    let mut publish = Publish::new(topic.clone(), template.clone());
                    publish.qos = qos;
                    if acked {
                        next_id = next_id.wrapping_add(1).max(1);
                        publish.packet_id = NonZeroU16::new(next_id);
                        inflight += 1;
                    }
                    publish.encode(conn.version, &mut conn.out).map_err(io::Error::other)?;
                    stamp(&mut conn.out, size, start, index as u32, seq);
                    seq = seq.wrapping_add(1);
                    queued += 1;
                }
            }
        }
        conn.flush().await?;
        sent.fetch_add(queued, Ordering::Relaxed);
        if stopping && inflight == 0 {
            return Ok(());
        }
    }
}

/// Writes the send time, publisher and sequence number over the first bytes of the payload
/// that ends `out`.
fn stamp(out: &mut BytesMut, payload: usize, start: Instant, publisher: u32, seq: u32) {
    let mut header = [0u8; HEADER];
    let mut h = header.as_mut_slice();
    h.put_u64(start.elapsed().as_nanos() as u64);
    h.put_u32(publisher);
    h.put_u32(seq);
    let at = out.len().saturating_sub(payload);
    if let Some(bytes) = out.get_mut(at..at + HEADER) {
        bytes.copy_from_slice(&header);
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
    delivered: Arc<Deliveries>,
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
        if count > 0 {
            delivered.count.fetch_add(count, Ordering::Relaxed);
            delivered.last_ns.fetch_max(now, Ordering::Relaxed);
        }
        conn.flush().await?;
    }
}
