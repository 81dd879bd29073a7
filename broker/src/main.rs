//! `midge`: the broker's command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use midge_broker::passwd::PasswordFile;
use midge_broker::{Broker, Config};
use tracing_subscriber::EnvFilter;

/// jemalloc, not glibc's malloc: memory freed between memory still in use goes back to the
/// system. An idle connection gives up its task when parked (`park_after_idle_ms`); glibc
/// kept those tasks' memory, scattered between the sessions that live on, and the parked
/// connections cost twice what they hold (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// jemalloc's options (its manual, and its TUNING.md): a background thread gives freed
/// pages back within about a second (`dirty_decay_ms`), rather than over ten seconds and
/// only when something allocates.
// With the `Sync` below, the broker's only unsafe code: jemalloc looks its options up by this symbol's name.
#[allow(unsafe_code)]
#[unsafe(export_name = "_rjem_malloc_conf")]
static MALLOC_CONF: MallocConf =
    MallocConf(c"background_thread:true,dirty_decay_ms:1000,muzzy_decay_ms:0".as_ptr());

/// A C string jemalloc reads at start-up.
#[repr(transparent)]
struct MallocConf(*const std::ffi::c_char);

// SAFETY: it points to a string literal, never written.
#[allow(unsafe_code)]
unsafe impl Sync for MallocConf {}

/// Midge: an MQTT broker for the web. MQTT over TCP, and over WebSocket at /mqtt on the HTTP
/// port, which also serves the demo page. SIGHUP reloads the password and ACL files.
#[derive(Parser, Debug)]
#[command(version, about, args_conflicts_with_subcommands = true)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
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
    /// Let clients without a user name connect (and, without a password file, listen on
    /// non-loopback addresses).
    #[arg(long)]
    allow_anonymous: bool,
    /// Keep persistent sessions and retained messages here (created if missing), safe from
    /// restarts and crashes. Default: `data` beside the --config file; without one, nothing
    /// is kept on disk.
    #[arg(long, value_name = "DIR", conflicts_with = "in_memory")]
    data_dir: Option<PathBuf>,
    /// Keep sessions and retained messages in memory only, even with a --config file.
    #[arg(long)]
    in_memory: bool,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Adds a user to a password file, changes their password, or deletes them. The file is
    /// created if missing; passwords are stored as argon2id hashes.
    Passwd {
        /// The password file.
        file: PathBuf,
        /// The user name.
        user: String,
        /// Read the password from the first line of standard input instead of prompting.
        #[arg(long, conflicts_with = "delete")]
        stdin: bool,
        /// Delete the user.
        #[arg(long, short = 'D')]
        delete: bool,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    if let Some(Command::Passwd {
        file,
        user,
        stdin,
        delete,
    }) = &args.command
    {
        return match passwd(file, user, *stdin, *delete) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("midge passwd: {e}");
                ExitCode::FAILURE
            }
        };
    }
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
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("midge: cannot handle signals: {e}");
                return ExitCode::FAILURE;
            }
        };
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
                // A password, ACL or TLS file that cannot be used is a configuration error; a
                // store that cannot be read is never replaced by an empty one.
                let config = e.is::<midge_broker::ConfigError>() || e.is::<midge_broker::StoreError>();
                return if config { ExitCode::from(2) } else { ExitCode::FAILURE };
            }
        };
        tokio::pin!(stop);
        loop {
            tokio::select! {
                () = &mut stop => break,
                _ = hangup.recv() => match broker.reload() {
                    Ok(()) => tracing::info!("SIGHUP: password and ACL files reloaded"),
                    Err(e) => tracing::error!("SIGHUP: {e}; the previous rules stay in force"),
                },
            }
        }
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
    if let Some(dir) = &args.data_dir {
        config.data_dir = Some(dir.clone());
    }
    if args.in_memory {
        config.data_dir = None;
    }
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

/// `midge passwd`: sets or deletes a user's entry, keeping the rest of the file. The new
/// file replaces the old one whole (written beside it, then renamed), readable by its owner
/// only.
fn passwd(file: &std::path::Path, user: &str, stdin: bool, delete: bool) -> Result<(), String> {
    let mut passwords = match std::fs::read_to_string(file) {
        Ok(text) => PasswordFile::parse(&text).map_err(|e| e.at(file))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !delete => PasswordFile::default(),
        Err(e) => return Err(format!("{}: {e}", file.display())),
    };
    if delete {
        if !passwords.remove(user) {
            return Err(format!("{}: no user `{user}`", file.display()));
        }
    } else {
        let password = read_password(stdin)?;
        passwords.set(user, password.as_bytes())?;
    }
    write_private(file, &passwords.to_text()).map_err(|e| format!("{}: {e}", file.display()))
}

fn read_password(stdin: bool) -> Result<String, String> {
    let password = if stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(|e| format!("standard input: {e}"))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let again = rpassword::prompt_password("Reenter password: ").map_err(|e| e.to_string())?;
        if first != again {
            return Err("the passwords do not match".into());
        }
        first
    };
    if password.is_empty() {
        return Err("empty password".into());
    }
    Ok(password)
}

fn write_private(file: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut temporary = file.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&temporary)?;
    out.write_all(text.as_bytes())?;
    out.sync_all()?;
    std::fs::rename(&temporary, file)
}
