//! Idle connections: what each one costs the broker in memory.
//!
//! Opens `connections` clients that connect and then do nothing (keep alive 0), and reads
//! the broker's resident memory before and after. Each connection needs a file descriptor
//! here and in the broker: `ulimit -n` must allow it for both (20,000 allows 10,000).

use std::io;
use std::time::{Duration, Instant};

use midge_codec::ProtocolVersion;
use serde::Serialize;

use crate::client::{self, Buffers, Endpoint, Transport};
use crate::process;

/// What came out of opening the idle connections.
#[derive(Debug, Serialize)]
pub(crate) struct IdleOutcome {
    pub(crate) transport: Transport,
    pub(crate) connections: usize,
    /// How long opening all of them took (CONNECT to CONNACK), in seconds.
    pub(crate) seconds_to_open: f64,
    pub(crate) broker_rss_before_kib: u64,
    pub(crate) broker_rss_after_kib: u64,
    /// The broker's RSS growth divided by the number of connections.
    pub(crate) bytes_per_connection: f64,
}

/// Opens `connections` idle clients to the broker with process id `pid`, waits `settle` for
/// its memory to settle, measures, and closes them.
pub(crate) async fn run(
    endpoint: &Endpoint,
    version: ProtocolVersion,
    connections: usize,
    pid: u32,
    settle: Duration,
) -> io::Result<IdleOutcome> {
    let rss = || {
        process::usage(pid)
            .map(|u| u.rss_kib)
            .ok_or_else(|| io::Error::other(format!("cannot read /proc/{pid}")))
    };
    let before = rss()?;
    let began = Instant::now();
    let me = std::process::id();
    let ids = (0..connections).map(|i| format!("bench-idle-{i}-{me}"));
    let conns = client::open_many(endpoint, version, ids, Buffers::Idle, false).await?;
    let seconds_to_open = began.elapsed().as_secs_f64();
    tokio::time::sleep(settle).await;
    let after = rss()?;
    drop(conns);
    Ok(IdleOutcome {
        transport: endpoint.transport,
        connections,
        seconds_to_open,
        broker_rss_before_kib: before,
        broker_rss_after_kib: after,
        bytes_per_connection: after.saturating_sub(before) as f64 * 1024.0
            / connections.max(1) as f64,
    })
}
