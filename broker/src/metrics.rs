//! Counters, exposed in the Prometheus text format at `GET /metrics`.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// What the broker holds right now.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Gauges {
    pub(crate) retained: usize,
    pub(crate) subscriptions: usize,
    pub(crate) sessions: usize,
    pub(crate) queued_bytes: usize,
    /// The store's transactions committed, and the changes they held.
    pub(crate) store: crate::store::Written,
}

/// The broker's counters. Relaxed atomics: each is independent and only ever summed.
#[derive(Default)]
pub(crate) struct Metrics {
    pub(crate) connections: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    /// Of the open connections, those parked (`crate::park`).
    pub(crate) connections_parked: AtomicU64,
    pub(crate) messages_received: [AtomicU64; 3],
    pub(crate) messages_sent: [AtomicU64; 3],
    pub(crate) bytes_received: AtomicU64,
    pub(crate) bytes_sent: AtomicU64,
    pub(crate) messages_dropped: AtomicU64,
    pub(crate) protocol_errors: AtomicU64,
    /// Connections closed at accept: the connection limit or a source's connection rate.
    pub(crate) connections_refused: AtomicU64,
    /// CONNECTs refused by authentication.
    pub(crate) auth_failures: AtomicU64,
    /// PUBLISH and SUBSCRIBE requests refused by the ACL, topic policy or limits.
    pub(crate) denied: AtomicU64,
}

pub(crate) fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

pub(crate) fn sub(counter: &AtomicU64, n: u64) {
    counter.fetch_sub(n, Ordering::Relaxed);
}

impl Metrics {
    /// The received-messages counter for `qos`.
    pub(crate) fn received(&self, qos: midge_codec::QoS) -> &AtomicU64 {
        let [q0, q1, q2] = &self.messages_received;
        pick(qos, q0, q1, q2)
    }

    /// The sent-messages counter for `qos`.
    pub(crate) fn sent(&self, qos: midge_codec::QoS) -> &AtomicU64 {
        let [q0, q1, q2] = &self.messages_sent;
        pick(qos, q0, q1, q2)
    }

    /// The Prometheus text exposition, with the gauges the caller knows.
    pub(crate) fn render(&self, gauges: Gauges) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(
                out,
                "# HELP midge_{name} {help}\n# TYPE midge_{name} {kind}"
            );
            for (labels, value) in samples {
                let _ = writeln!(out, "midge_{name}{labels} {value}");
            }
        };
        metric(
            "connections",
            "gauge",
            "Open MQTT connections.",
            &[("", get(&self.connections))],
        );
        metric(
            "connections_parked",
            "gauge",
            "Open MQTT connections parked while idle (no task of their own).",
            &[("", get(&self.connections_parked))],
        );
        metric(
            "connections_total",
            "counter",
            "MQTT connections accepted.",
            &[("", get(&self.connections_total))],
        );
        metric(
            "connections_refused_total",
            "counter",
            "Connections closed at accept (connection limit or rate per source address).",
            &[("", get(&self.connections_refused))],
        );
        metric(
            "auth_failures_total",
            "counter",
            "CONNECTs refused by authentication.",
            &[("", get(&self.auth_failures))],
        );
        metric(
            "denied_total",
            "counter",
            "PUBLISH and SUBSCRIBE requests refused by the ACL, topic policy or limits.",
            &[("", get(&self.denied))],
        );
        let by_qos = |[q0, q1, q2]: &[AtomicU64; 3]| {
            [
                ("{qos=\"0\"}", get(q0)),
                ("{qos=\"1\"}", get(q1)),
                ("{qos=\"2\"}", get(q2)),
            ]
        };
        metric(
            "messages_received_total",
            "counter",
            "PUBLISH packets received.",
            &by_qos(&self.messages_received),
        );
        metric(
            "messages_sent_total",
            "counter",
            "PUBLISH packets sent.",
            &by_qos(&self.messages_sent),
        );
        metric(
            "bytes_received_total",
            "counter",
            "Bytes of MQTT received.",
            &[("", get(&self.bytes_received))],
        );
        metric(
            "bytes_sent_total",
            "counter",
            "Bytes of MQTT sent.",
            &[("", get(&self.bytes_sent))],
        );
        metric(
            "messages_dropped_total",
            "counter",
            "Messages dropped because a client's queue was full.",
            &[("", get(&self.messages_dropped))],
        );
        metric(
            "protocol_errors_total",
            "counter",
            "Connections closed for malformed packets or protocol errors.",
            &[("", get(&self.protocol_errors))],
        );
        metric(
            "retained_messages",
            "gauge",
            "Retained messages held.",
            &[("", gauges.retained as u64)],
        );
        metric(
            "store_commits_total",
            "counter",
            "Transactions the durable store committed (each one fsync; group commit puts many changes in one).",
            &[("", gauges.store.commits)],
        );
        metric(
            "store_ops_total",
            "counter",
            "Changes written to the durable store (messages, acknowledgements, sessions, retained), less the messages acknowledged before their commit.",
            &[("", gauges.store.ops)],
        );
        metric(
            "queued_bytes",
            "gauge",
            "Bytes of messages waiting for clients.",
            &[("", gauges.queued_bytes as u64)],
        );
        metric(
            "subscriptions",
            "gauge",
            "Subscriptions held.",
            &[("", gauges.subscriptions as u64)],
        );
        metric(
            "sessions",
            "gauge",
            "Sessions held, connected or not.",
            &[("", gauges.sessions as u64)],
        );
        out
    }
}

fn pick<'a>(
    qos: midge_codec::QoS,
    q0: &'a AtomicU64,
    q1: &'a AtomicU64,
    q2: &'a AtomicU64,
) -> &'a AtomicU64 {
    match qos {
        midge_codec::QoS::AtMostOnce => q0,
        midge_codec::QoS::AtLeastOnce => q1,
        midge_codec::QoS::ExactlyOnce => q2,
    }
}
