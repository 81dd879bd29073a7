//! `$SYS/broker/...`: the broker's statistics as retained messages, republished every
//! `sys_interval_secs`, with Mosquitto's topic names where it has one. A filter starting
//! with a wildcard never matches them [MQTT-4.7.2-1]; subscribe to `$SYS/#`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use midge_codec::{Publish, TopicName};
use tokio::sync::watch;

use crate::broker::Shared;

/// Publishes the statistics now and every `interval` until shutdown.
pub(crate) async fn run(
    shared: Arc<Shared>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let started = Instant::now();
    let mut ticks = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => publish(&shared, started),
            _ = shutdown.changed() => return,
        }
    }
}

fn publish(shared: &Shared, started: Instant) {
    let m = &shared.metrics;
    let get = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed).to_string();
    let sum = |cs: &[std::sync::atomic::AtomicU64; 3]| {
        cs.iter()
            .map(|c| c.load(Ordering::Relaxed))
            .sum::<u64>()
            .to_string()
    };
    let gauges = shared.gauges();
    let values = [
        ("version", format!("midge {}", env!("CARGO_PKG_VERSION"))),
        ("uptime", format!("{} seconds", started.elapsed().as_secs())),
        ("clients/connected", get(&m.connections)),
        ("clients/total", gauges.sessions.to_string()),
        ("messages/received", sum(&m.messages_received)),
        ("messages/sent", sum(&m.messages_sent)),
        ("messages/dropped", get(&m.messages_dropped)),
        ("bytes/received", get(&m.bytes_received)),
        ("bytes/sent", get(&m.bytes_sent)),
        ("subscriptions/count", gauges.subscriptions.to_string()),
        ("retained messages/count", gauges.retained.to_string()),
    ];
    for (name, value) in values {
        let Ok(topic) = TopicName::try_from(format!("$SYS/broker/{name}")) else {
            continue;
        };
        let mut publish = Publish::new(topic, value.into_bytes());
        publish.retain = true;
        let _ = shared.publish(publish, None, Vec::new());
    }
}
