//! `midge`: the broker's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use midge_broker::{Broker, Config};
use tracing_subscriber::EnvFilter;

/// Midge: an MQTT broker for the web. MQTT over TCP, and over WebSocket at /mqtt on the HTTP
/// port, which also serves the demo page.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// A TOML configuration file (see broker/midge.example.toml); flags override it.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// MQTT/TCP listen address; repeatable; port 0 picks a free port. Default 127.0.0.1:1883.
    #[arg(long, value_name = "ADDR:PORT")]
    tcp: Vec<SocketAddr>,
    /// HTTP/WebSocket listen address; repeatable; port 0 picks a free port. Default 127.0.0.1:8080.
    #[arg(long, value_name = "ADDR:PORT")]
    http: Vec<SocketAddr>,
    /// The directory of static files served over HTTP. Default: web
    #[arg(long, value_name = "DIR")]
    web: Option<PathBuf>,
    /// Let anyone connect on non-loopback addresses (there is no authentication yet).
    #[arg(long)]
    allow_anonymous: bool,
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    let config = match load(&args) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("midge: {e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("midge: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async {
        // Before anything listens: a signal that arrives once the ports are logged must
        // already mean "shut down gracefully".
        let stop = match shutdown_signal() {
            Ok(stop) => stop,
            Err(e) => {
                eprintln!("midge: cannot handle signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let broker = match Broker::start(config).await {
            Ok(b) => b,
            Err(e) => {
                eprintln!("midge: {e}");
                return ExitCode::FAILURE;
            }
        };
        stop.await;
        tracing::info!("shutting down");
        broker.shutdown(Duration::from_secs(5)).await;
        ExitCode::SUCCESS
    })
}

fn load(args: &Args) -> Result<Config, midge_broker::ConfigError> {
    let mut config = match &args.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if !args.tcp.is_empty() {
        config.tcp.clone_from(&args.tcp);
    }
    if !args.http.is_empty() {
        config.http.clone_from(&args.http);
    }
    if let Some(web) = &args.web {
        config.web.clone_from(web);
    }
    config.allow_anonymous |= args.allow_anonymous;
    config.validate()?;
    Ok(config)
}

/// Resolves on SIGINT or SIGTERM; the handlers are installed when this is called.
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}
