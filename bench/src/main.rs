//! `midge-bench`: a load generator for any MQTT broker.
//!
//! ```text
//! midge-bench --port 1883 --topology pairs --publishers 10 --subscribers 10 --qos 1 --seconds 10
//! ```
//!
//! Reports messages sent, delivered and lost, msg/s, MB/s, end-to-end latency percentiles,
//! and with `--pid` the broker's CPU time per delivered message and peak memory.

mod client;
mod load;
mod process;

use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::Parser;
use serde::Serialize;

use crate::load::{Outcome, Plan, Topology};
use crate::process::Usage;

#[derive(Parser, Debug)]
#[command(version, about = "A load generator for MQTT brokers")]
struct Args {
    /// The broker's address.
    #[arg(long, default_value = "127.0.0.1")]
    host: IpAddr,
    /// The broker's MQTT/TCP port.
    #[arg(long, default_value_t = 1883)]
    port: u16,
    /// MQTT protocol version: 4 (3.1.1) or 5.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u8).range(4..=5))]
    protocol_version: u8,
    /// QoS of every message and subscription.
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=2))]
    qos: u8,
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
    broker: Option<Broker>,
}

#[derive(Serialize)]
struct Broker {
    cpu_seconds: f64,
    cpu_us_per_delivered: f64,
    peak_rss_kib: u64,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let plan = Plan {
        addr: SocketAddr::new(args.host, args.port),
        version: args.protocol_version,
        qos: args.qos,
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
    };
    // The load generator's own work stays on one thread, so it can be pinned to one core.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("midge-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let before = args.pid.and_then(process::usage);
    let outcome = match runtime.block_on(load::run(plan.clone())) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("midge-bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let after = args.pid.and_then(process::usage);
    let broker = before.zip(after).map(|(b, a): (Usage, Usage)| {
        let cpu_seconds = a.cpu_seconds - b.cpu_seconds;
        Broker {
            cpu_seconds,
            cpu_us_per_delivered: cpu_seconds * 1e6 / outcome.delivered.max(1) as f64,
            peak_rss_kib: a.peak_rss_kib,
        }
    });
    let report = Report {
        plan,
        outcome,
        broker,
    };
    if args.json {
        match serde_json::to_string(&report) {
            Ok(json) => println!("{json}"),
            Err(e) => {
                eprintln!("midge-bench: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print_table(&report);
    }
    ExitCode::SUCCESS
}

fn print_table(r: &Report) {
    let (p, o) = (&r.plan, &r.outcome);
    println!(
        "{:?} {}->{}  QoS {}  {} B  MQTT {}  {}",
        p.topology,
        p.publishers,
        p.subscribers,
        p.qos,
        p.payload,
        if p.version == 5 { "5.0" } else { "3.1.1" },
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
    if let Some(b) = &r.broker {
        println!(
            "  broker: {:.2} s CPU, {:.2} us CPU per delivered message, peak RSS {} KiB",
            b.cpu_seconds, b.cpu_us_per_delivered, b.peak_rss_kib
        );
    }
}
