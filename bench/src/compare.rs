//! `midge-bench compare`: Mosquitto and midge side by side on the same matrix of loads.
//!
//! Each row runs against a fresh Mosquitto, then a fresh midge (so peak memory is the row's
//! own), both pinned to the same core; the generator runs in this process, which
//! `bench/compare.sh` pins to the other core. One markdown table comes out, each row with
//! both brokers and the midge/Mosquitto ratio.

use std::fmt::Write as _;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::runtime::Runtime;

use crate::brokers::{Broker, Kind, Launch};
use crate::client::Transport;
use crate::idle::IdleOutcome;
use crate::load::{self, BrokerUsage, Outcome, Plan, Topology};

#[derive(clap::Args, Debug)]
pub(crate) struct CompareArgs {
    /// The midge binary (a release build for numbers worth reading).
    #[arg(long, default_value = "target/release/midge")]
    midge: PathBuf,
    #[arg(long, default_value = "/usr/sbin/mosquitto")]
    mosquitto: PathBuf,
    /// The core both brokers are pinned to (with taskset).
    #[arg(long, default_value_t = 0)]
    broker_cpu: usize,
    /// Do not pin the brokers.
    #[arg(long)]
    no_pin: bool,
    /// Seconds of publishing in each full-speed row.
    #[arg(long, default_value_t = 3.0)]
    seconds: f64,
    /// Seconds of publishing in each fixed-rate (latency) row.
    #[arg(long, default_value_t = 2.0)]
    rate_seconds: f64,
    /// Rounds of each fixed-rate row, the two brokers in turns. Their tails move with the
    /// machine from one run to the next (a p99 two or three times another run's), so the
    /// table shows, for each broker, the round with the median p99; the JSON has all.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=9))]
    rate_rounds: u32,
    /// Idle connections in the memory rows.
    #[arg(long, default_value_t = 10_000)]
    idle: usize,
    /// A few rows, a fraction of a second each, 200 idle connections: a smoke run.
    #[arg(long)]
    quick: bool,
    /// Only the rows whose label contains this.
    #[arg(long)]
    only: Option<String>,
    /// Also write every result as JSON to this file.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Threads for the generator; default: the cores this process may use.
    #[arg(long, default_value_t = crate::available_cores())]
    threads: usize,
}

/// The delivered rate of every fixed-rate row, whatever its topology.
const FIXED_DELIVERIES_PER_SEC: u64 = 10_000;

/// One row of the matrix.
#[derive(Clone, Debug)]
enum Row {
    Load(LoadRow),
    Idle {
        transport: Transport,
        connections: usize,
    },
}

/// A load: ten pairs, one publisher to a hundred subscribers, or a hundred publishers to
/// one subscriber; at full speed or at 10,000 deliveries a second in all.
#[derive(Clone, Copy, Debug)]
struct LoadRow {
    topology: Topology,
    qos: u8,
    payload: usize,
    transport: Transport,
    fixed_rate: bool,
}

impl LoadRow {
    fn clients(&self) -> (usize, usize) {
        match self.topology {
            Topology::Pairs => (10, 10),
            Topology::Broadcast => (1, 100),
            Topology::FanIn => (100, 1),
        }
    }

    /// Messages a second for each publisher; 0 for full speed.
    fn rate(&self) -> u64 {
        let (publishers, subscribers) = self.clients();
        let fanout = (subscribers / publishers).max(1) as u64;
        if self.fixed_rate {
            FIXED_DELIVERIES_PER_SEC / fanout / publishers as u64
        } else {
            0
        }
    }

    fn plan(&self, broker: &Broker, timing: &Timing) -> Plan {
        let (publishers, subscribers) = self.clients();
        Plan {
            endpoint: broker.endpoint(self.transport),
            transport: self.transport,
            version: 4,
            qos: self.qos,
            payload: self.payload,
            topology: self.topology,
            publishers,
            subscribers,
            persistent: false,
            rate: self.rate(),
            seconds: if self.fixed_rate {
                timing.rate_seconds
            } else {
                timing.seconds
            },
            window: 100,
            prefix: "bench".into(),
        }
    }

    fn label(&self) -> String {
        let (publishers, subscribers) = self.clients();
        let name = match self.topology {
            Topology::Pairs => "pairs",
            Topology::Broadcast => "broadcast",
            Topology::FanIn => "fan-in",
        };
        let size = if self.payload >= 1024 {
            format!("{} KiB", self.payload / 1024)
        } else {
            format!("{} B", self.payload)
        };
        let pace = if self.fixed_rate {
            format!("{}k/s", FIXED_DELIVERIES_PER_SEC / 1000)
        } else {
            "max".to_string()
        };
        format!(
            "{name} {publishers}→{subscribers} QoS {} {size} {} {pace}",
            self.qos,
            transport_name(self.transport)
        )
    }
}

impl Row {
    fn load(topology: Topology, qos: u8, payload: usize, transport: Transport, fixed: bool) -> Row {
        Row::Load(LoadRow {
            topology,
            qos,
            payload,
            transport,
            fixed_rate: fixed,
        })
    }

    fn label(&self) -> String {
        match self {
            Row::Load(load) => load.label(),
            Row::Idle {
                transport,
                connections,
            } => format!("idle {connections} {}", transport_name(*transport)),
        }
    }
}

fn transport_name(t: Transport) -> &'static str {
    match t {
        Transport::Tcp => "tcp",
        Transport::Ws => "ws",
    }
}

/// The full matrix: three topologies, QoS 0 and 1, 64 B and 4 KiB, TCP and WebSocket, at
/// full speed and at a fixed rate; then idle connections over TCP and WebSocket.
fn matrix(idle: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    for topology in [Topology::Pairs, Topology::Broadcast, Topology::FanIn] {
        for qos in [0, 1] {
            for payload in [64, 4096] {
                for transport in [Transport::Tcp, Transport::Ws] {
                    for fixed in [false, true] {
                        rows.push(Row::load(topology, qos, payload, transport, fixed));
                    }
                }
            }
        }
    }
    for transport in [Transport::Tcp, Transport::Ws] {
        rows.push(Row::Idle {
            transport,
            connections: idle,
        });
    }
    rows
}

/// A few rows that touch every topology, transport, QoS and pace: the smoke run. Its only
/// full-speed rows are at QoS 1, whose window bounds what is left to drain at the end.
fn quick_matrix() -> Vec<Row> {
    use Topology::*;
    use Transport::*;
    vec![
        Row::load(Pairs, 1, 64, Tcp, true),
        Row::load(Pairs, 1, 64, Tcp, false),
        Row::load(Broadcast, 0, 64, Tcp, true),
        Row::load(FanIn, 1, 64, Tcp, true),
        Row::load(Pairs, 1, 4096, Ws, false),
        Row::load(Pairs, 0, 64, Ws, true),
        Row::Idle {
            transport: Tcp,
            connections: 200,
        },
        Row::Idle {
            transport: Ws,
            connections: 200,
        },
    ]
}

/// What one broker did on one row.
#[derive(Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
enum Measured {
    Load {
        outcome: Outcome,
        /// What the broker spent.
        usage: Option<BrokerUsage>,
    },
    Idle(IdleOutcome),
    Failed {
        error: String,
    },
}

#[derive(Serialize)]
struct Result {
    row: String,
    broker: Kind,
    #[serde(flatten)]
    measured: Measured,
    /// Every round of a row run more than once, in the order run (`measured` is one of them).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rounds: Vec<Round>,
}

/// One round of a fixed-rate row, in brief.
#[derive(Serialize, Clone, Copy)]
struct Round {
    msgs_per_sec: f64,
    p50_us: u64,
    p99_us: u64,
    cpu_us_per_delivered: Option<f64>,
}

impl Round {
    fn of(m: &Measured) -> Option<Round> {
        match m {
            Measured::Load { outcome, usage } => Some(Round {
                msgs_per_sec: outcome.msgs_per_sec,
                p50_us: outcome.latency_us.p50,
                p99_us: outcome.latency_us.p99,
                cpu_us_per_delivered: usage.as_ref().map(|u| u.cpu_us_per_delivered),
            }),
            _ => None,
        }
    }
}

/// The round with the median p99 among those that ran (for an even count, the lower
/// middle); a failure only when every round failed.
fn median_round(mut rounds: Vec<Measured>) -> Measured {
    rounds.sort_by_key(|m| Round::of(m).map_or(u64::MAX, |r| r.p99_us));
    let ran = rounds.iter().filter(|m| Round::of(m).is_some()).count();
    let middle = ran.saturating_sub(1) / 2;
    rounds.swap_remove(middle)
}

pub(crate) fn main(args: CompareArgs) -> io::Result<()> {
    let dir = std::env::temp_dir().join(format!("midge-compare-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let launch = Launch {
        midge: args.midge.clone(),
        mosquitto: args.mosquitto.clone(),
        cpu: (!args.no_pin).then_some(args.broker_cpu),
        dir: dir.clone(),
    };
    let result = compare(&args, &launch);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn compare(args: &CompareArgs, launch: &Launch) -> io::Result<()> {
    let timing = if args.quick {
        Timing {
            seconds: 0.3,
            rate_seconds: 0.3,
            settle: Duration::from_millis(200),
        }
    } else {
        Timing {
            seconds: args.seconds,
            rate_seconds: args.rate_seconds,
            // midge parks a connection idle for a second, and its allocator gives the
            // task's memory back within another; 3 s sees both brokers at rest.
            settle: Duration::from_secs(3),
        }
    };
    let rows: Vec<Row> = if args.quick {
        quick_matrix()
    } else {
        matrix(args.idle)
    }
    .into_iter()
    .filter(|r| {
        args.only
            .as_ref()
            .is_none_or(|o| r.label().contains(o.as_str()))
    })
    .collect();
    let runtime = crate::runtime(args.threads)?;
    let began = Instant::now();
    let mut results = Vec::new();
    for row in &rows {
        let fixed_rate = matches!(row, Row::Load(load) if load.fixed_rate);
        let rounds = if fixed_rate { args.rate_rounds } else { 1 };
        let kinds = [Kind::Mosquitto, Kind::Midge];
        let mut measured: [Vec<Measured>; 2] = Default::default();
        for _ in 0..rounds {
            for (kind, measured) in kinds.into_iter().zip(&mut measured) {
                let m = match measure(&runtime, row, kind, launch, &timing) {
                    Ok(m) => m,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Err(e),
                    Err(e) => Measured::Failed {
                        error: e.to_string(),
                    },
                };
                eprintln!(
                    "[{:>5.1} s] {} / {}: {}",
                    began.elapsed().as_secs_f64(),
                    row.label(),
                    kind.name(),
                    summary(&m)
                );
                measured.push(m);
            }
        }
        for (kind, measured) in kinds.into_iter().zip(measured) {
            let all = if measured.len() > 1 {
                measured.iter().filter_map(Round::of).collect()
            } else {
                Vec::new()
            };
            results.push(Result {
                row: row.label(),
                broker: kind,
                measured: median_round(measured),
                rounds: all,
            });
        }
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&results)?)?;
    }
    print!("{}", table(&results));
    println!(
        "\n{} rows, {:.0} s in all; fixed-rate rows: the median p99 of {} rounds; generator threads: {}; brokers pinned to core {}",
        rows.len(),
        began.elapsed().as_secs_f64(),
        args.rate_rounds,
        args.threads,
        launch
            .cpu
            .map_or_else(|| "none".to_string(), |c| c.to_string())
    );
    Ok(())
}

/// How long the rows run.
struct Timing {
    /// Publishing in a full-speed row.
    seconds: f64,
    /// Publishing in a fixed-rate row.
    rate_seconds: f64,
    /// Between opening the idle connections and reading the broker's memory.
    settle: Duration,
}

/// Runs `row` against a fresh broker of `kind`, which is stopped afterwards whatever happens.
fn measure(
    runtime: &Runtime,
    row: &Row,
    kind: Kind,
    launch: &Launch,
    timing: &Timing,
) -> io::Result<Measured> {
    let broker = Broker::start(kind, launch)?;
    let pid = broker.pid();
    let measured = match row {
        Row::Load(spec) => {
            let plan = spec.plan(&broker, timing);
            let (outcome, usage) = interruptible(runtime, load::run(plan, Some(pid)))?;
            Measured::Load { outcome, usage }
        }
        Row::Idle {
            transport,
            connections,
        } => {
            let endpoint = broker.endpoint(*transport);
            let version = load::protocol_version(4);
            Measured::Idle(interruptible(
                runtime,
                crate::idle::run(&endpoint, version, *connections, pid, timing.settle),
            )?)
        }
    };
    broker.stop()?;
    Ok(measured)
}

/// Runs `work`, or stops with `Interrupted` on SIGINT or SIGTERM (so the brokers' `Drop`
/// stops them).
fn interruptible<T>(runtime: &Runtime, work: impl Future<Output = io::Result<T>>) -> io::Result<T> {
    runtime.block_on(async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
        tokio::select! {
            result = work => result,
            _ = tokio::signal::ctrl_c() => Err(io::ErrorKind::Interrupted.into()),
            _ = term.recv() => Err(io::ErrorKind::Interrupted.into()),
        }
    })
}

fn summary(m: &Measured) -> String {
    match m {
        Measured::Load { outcome: o, .. } => format!(
            "{:.0} msg/s, lost {}, p99 {} µs",
            o.msgs_per_sec, o.lost, o.latency_us.p99
        ),
        Measured::Idle(i) => format!("{:.0} B per connection", i.bytes_per_connection),
        Measured::Failed { error } => format!("FAILED: {error}"),
    }
}

const HEADER: &str = "| row | broker | delivered msg/s | lost | p50 µs | p99 µs | broker CPU µs/msg | broker CPU | generator CPU | peak RSS |\n|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";

/// The markdown table: per row, Mosquitto, midge, and midge/Mosquitto.
fn table(results: &[Result]) -> String {
    let mut out = String::from(HEADER);
    for pair in results.chunks(2) {
        let (Some(mosq), Some(midge)) = (pair.first(), pair.get(1)) else {
            continue;
        };
        let _ = writeln!(out, "| {} | {} |", mosq.row, cells(mosq));
        let _ = writeln!(out, "| | {} |", cells(midge));
        let _ = writeln!(out, "| | {} |", ratio(&mosq.measured, &midge.measured));
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn share(cpu: f64, seconds: f64) -> String {
    format!("{:.0}%", 100.0 * cpu / seconds.max(1e-9))
}

fn cells(r: &Result) -> String {
    let name = r.broker.name();
    match &r.measured {
        Measured::Load { outcome: o, usage } => {
            let (cpu_per_msg, cpu_share, rss) = usage.as_ref().map_or_else(
                || ("–".into(), "–".into(), "–".into()),
                |b| {
                    (
                        format!("{:.2}", b.cpu_us_per_delivered),
                        share(b.cpu_seconds, o.measured_seconds),
                        mib(b.peak_rss_kib),
                    )
                },
            );
            format!(
                "{name} | {:.0} | {} | {} | {} | {cpu_per_msg} | {cpu_share} | {} | {rss}",
                o.msgs_per_sec,
                o.lost,
                o.latency_us.p50,
                o.latency_us.p99,
                share(o.generator_cpu_seconds, o.measured_seconds),
            )
        }
        Measured::Idle(i) => format!(
            "{name} | – | – | – | – | – | – | – | {:.1} KiB per connection ({} → {})",
            i.bytes_per_connection / 1024.0,
            mib(i.broker_rss_before_kib),
            mib(i.broker_rss_after_kib)
        ),
        Measured::Failed { error } => {
            let first = error.lines().next().unwrap_or_default();
            format!("{name} | failed: {first} | | | | | | |")
        }
    }
}

/// midge's figure divided by Mosquitto's: above 1 is better for msg/s, below 1 for the rest.
fn ratio(mosq: &Measured, midge: &Measured) -> String {
    let x = |a: f64, b: f64| {
        if a > 0.0 && b.is_finite() {
            format!("{:.2}×", b / a)
        } else {
            "–".into()
        }
    };
    let label = "midge/Mosquitto";
    match (mosq, midge) {
        (
            Measured::Load {
                outcome: a,
                usage: ab,
            },
            Measured::Load {
                outcome: b,
                usage: bb,
            },
        ) => {
            let (cpu, rss) = match (ab, bb) {
                (Some(ab), Some(bb)) => (
                    x(ab.cpu_us_per_delivered, bb.cpu_us_per_delivered),
                    x(ab.peak_rss_kib as f64, bb.peak_rss_kib as f64),
                ),
                _ => ("–".into(), "–".into()),
            };
            format!(
                "{label} | {} | | {} | {} | {cpu} | | | {rss}",
                x(a.msgs_per_sec, b.msgs_per_sec),
                x(a.latency_us.p50 as f64, b.latency_us.p50 as f64),
                x(a.latency_us.p99 as f64, b.latency_us.p99 as f64),
            )
        }
        (Measured::Idle(a), Measured::Idle(b)) => format!(
            "{label} | | | | | | | | {}",
            x(a.bytes_per_connection, b.bytes_per_connection)
        ),
        _ => format!("{label} | | | | | | | | "),
    }
}
