//! `midge-bench`: a load generator for any MQTT broker.
//!
//! ```text
//! midge-bench --port 1883 --topology pairs --publishers 10 --subscribers 10 --qos 1 --seconds 10
//! ```
//!
//! Reports messages sent, delivered and lost, msg/s, MB/s, end-to-end latency percentiles,
//! and with `--pid` the broker's CPU time per delivered message and peak memory.

mod brokers;
mod client;
mod compare;
mod idle;
mod load;
mod process;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use serde::Serialize;

use crate::client::{Endpoint, Transport};
use crate::idle::IdleOutcome;
use crate::load::{BrokerUsage, Outcome, Plan, Topology};

#[derive(Parser, Debug)]
#[command(
    version,
    about = "A load generator for MQTT brokers",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    load: Args,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Start Mosquitto and midge on free ports, run the matrix of loads against each, and
    /// print one table with both and their ratio.
    Compare(compare::CompareArgs),
}

#[derive(clap::Args, Debug)]
struct Args {
    /// The broker's address.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The broker's port: MQTT/TCP, or HTTP with `--transport ws`.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    #[arg(long, value_enum, default_value_t = Transport::Tcp)]
    transport: Transport,
    /// The WebSocket URL path.
    #[arg(long, default_value = "/mqtt")]
    path: String,
    /// MQTT protocol version: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=5))]
    protocol_version: u8,
    /// QoS of every message and subscription.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
    /// Subscribers keep persistent sessions (3.1.1 Clean Session 0; 5.0 Session Expiry
    /// Interval 600 s), so a broker with a durable store writes their QoS 1/2 messages.
    #[arg(long)]
    persistent: bool,
    /// Payload size in bytes (at least 16: the timestamp and sequence numbers).
    #[arg(long, default_value_t = 64)]
    payload: usize,
    #[arg(long, value_enum, default_value_t = Topology::Pairs)]
    topology: Topology,
    #[arg(long, default_value_t = 10)]
    publishers: usize,
    #[arg(long, default_value_t = 10)]
    subscribers: usize,
    /// Messages per second per publisher; 0 publishes as fast as the broker takes them.
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 10.0)]
    seconds: f64,
    /// QoS 1/2 messages a publisher may have unacknowledged.
    #[arg(long, default_value_t = 100)]
    window: usize,
    /// Topic prefix: publisher i publishes to `<prefix>/i`. Generators that share a broker
    /// need different ones.
    #[arg(long, default_value = "bench")]
    prefix: String,
    /// Instead of a load: open this many idle connections and report the broker's memory
    /// per connection (needs `--pid`, and `ulimit -n` above the count).
    #[arg(long, value_name = "CONNECTIONS")]
    idle: Option<usize>,
    /// With `--idle`: seconds between opening the connections and reading the broker's
    /// memory (a broker may give memory back a while after a burst of connections).
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    settle: f64,
    /// Threads for the generator's connections; default: the cores this process may use
    /// (so `taskset -c 1` gives one).
    #[arg(long, default_value_t = available_cores())]
    threads: usize,
    /// The broker's process id, to report its CPU time and memory.
    #[arg(long)]
    pid: Option<u32>,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct Report {
    plan: Plan,
    outcome: Outcome,
    broker: Option<BrokerUsage>,
}

fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The generator's runtime: one thread, or a worker per core it may use, each driving many
/// connections (one task each).
pub(crate) fn runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    if threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Compare(args)) => compare::main(args),
        None => run(cli.load),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("midge-bench: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> io::Result<()> {
    let endpoint = Endpoint {
        addr: SocketAddr::new(args.host, args.port),
        transport: args.transport,
        path: args.path.clone(),
    };
    let version = load::protocol_version(args.protocol_version);
    let runtime = runtime(args.threads)?;
    if let Some(connections) = args.idle {
        let pid = args
            .pid
            .ok_or_else(|| io::Error::other("--idle needs the broker's --pid"))?;
        let outcome = runtime.block_on(idle::run(
            &endpoint,
            version,
            connections,
            pid,
            Duration::from_secs_f64(args.settle),
        ))?;
        return print(args.json, &outcome, print_idle);
    }
    let plan = Plan {
        endpoint,
        transport: args.transport,
        version: args.protocol_version,
        qos: args.qos,
        persistent: args.persistent,
        payload: args.payload,
        topology: args.topology,
        publishers: if args.topology == Topology::Broadcast {
            1
        } else {
            args.publishers
        },
        subscribers: if args.topology == Topology::FanIn {
            1
        } else {
            args.subscribers
        },
        rate: args.rate,
        seconds: args.seconds,
        window: args.window,
        prefix: args.prefix.clone(),
    };
    let (outcome, broker) = runtime.block_on(load::run(plan.clone(), args.pid))?;
    let report = Report {
        plan,
        outcome,
        broker,
    };
    print(args.json, &report, print_table)
}

fn print<T: Serialize>(json: bool, value: &T, table: fn(&T)) -> io::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string(value).map_err(io::Error::other)?
        );
    } else {
        table(value);
    }
    Ok(())
}

fn print_idle(o: &IdleOutcome) {
    println!(
        "{} idle connections over {:?}, opened in {:.1} s",
        o.connections, o.transport, o.seconds_to_open
    );
    println!(
        "  broker RSS {} KiB before, {} KiB after: {:.0} bytes per connection",
        o.broker_rss_before_kib, o.broker_rss_after_kib, o.bytes_per_connection
    );
}

fn print_table(r: &Report) {
    let (p, o) = (&r.plan, &r.outcome);
    println!(
        "{:?} {}->{}  QoS {}  {} B  MQTT {} over {:?}  {}",
        p.topology,
        p.publishers,
        p.subscribers,
        p.qos,
        p.payload,
        if p.version == 5 { "5.0" } else { "3.1.1" },
        p.transport,
        if p.rate == 0 {
            "max rate".to_string()
        } else {
            format!("{} msg/s per publisher", p.rate)
        }
    );
    println!(
        "  sent {}  expected {}  delivered {}  lost {}",
        o.sent, o.expected, o.delivered, o.lost
    );
    println!(
        "  {:.0} msg/s delivered  {:.2} MB/s  over {:.1} s",
        o.msgs_per_sec, o.mb_per_sec, o.seconds
    );
    let l = &o.latency_us;
    println!(
        "  latency us: p50 {}  p90 {}  p99 {}  max {}",
        l.p50, l.p90, l.p99, l.max
    );
    println!(
        "  generator: {:.2} s CPU over {:.2} s{}",
        o.generator_cpu_seconds,
        o.measured_seconds,
        if o.stuck_publishers > 0 {
            format!(", {} publishers stuck in a write", o.stuck_publishers)
        } else {
            String::new()
        }
    );
    if let Some(b) = &r.broker {
        println!(
            "  broker: {:.2} s CPU, {:.2} us CPU per delivered message, peak RSS {} KiB",
            b.cpu_seconds, b.cpu_us_per_delivered, b.peak_rss_kib
        );
    }
}
