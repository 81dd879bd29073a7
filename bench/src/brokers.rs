//! The brokers under comparison, started on free loopback ports with equivalent settings,
//! optionally pinned to one core, and always stopped by their pid (also on failure: `Drop`).

use std::fs::{self, File};
use std::io;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::client::{Endpoint, Transport};

/// Messages that may wait for one subscriber, in both brokers (both brokers' default).
pub(crate) const MAX_QUEUED_MESSAGES: usize = 1000;
/// QoS 1/2 messages in flight to one subscriber (midge's default `receive_maximum`;
/// Mosquitto's `max_inflight_messages` defaults to 20 and is raised to match).
pub(crate) const MAX_INFLIGHT: usize = 100;

/// Which broker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Kind {
    Mosquitto,
    Midge,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Mosquitto => "Mosquitto",
            Kind::Midge => "midge",
        }
    }
}

/// How to start the brokers.
#[derive(Clone, Debug)]
pub(crate) struct Launch {
    pub(crate) midge: PathBuf,
    pub(crate) mosquitto: PathBuf,
    /// The core each broker is pinned to with `taskset`, if any.
    pub(crate) cpu: Option<usize>,
    /// Where configuration files and logs go.
    pub(crate) dir: PathBuf,
}

/// A running broker.
pub(crate) struct Broker {
    pub(crate) kind: Kind,
    child: Child,
    tcp: SocketAddr,
    http: SocketAddr,
    log: PathBuf,
}

impl Broker {
    /// Starts `kind` on two free ports (MQTT/TCP and WebSocket) and waits until both accept.
    /// A port found free can be taken before the broker binds it (by the generator's own
    /// outgoing connections, say): then it starts again on two other ports, up to three times.
    pub(crate) fn start(kind: Kind, launch: &Launch) -> io::Result<Broker> {
        let mut tries = 1;
        loop {
            match Broker::start_on_free_ports(kind, launch) {
                Err(e) if tries < 3 && e.to_string().contains("Address already in use") => {
                    tries += 1;
                }
                started => return started,
            }
        }
    }

    fn start_on_free_ports(kind: Kind, launch: &Launch) -> io::Result<Broker> {
        let (tcp, http) = (free_port()?, free_port()?);
        let log = launch.dir.join(format!("{}.log", kind.name()));
        let mut command = match launch.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.arg("-c").arg(cpu.to_string());
                c
            }
            None => Command::new("env"),
        };
        match kind {
            Kind::Mosquitto => {
                let config = launch.dir.join("mosquitto.conf");
                fs::write(&config, mosquitto_config(tcp, http))?;
                command.arg(&launch.mosquitto).arg("-c").arg(&config);
            }
            Kind::Midge => {
                let web = launch.dir.join("web");
                fs::create_dir_all(&web)?;
                fs::write(
                    web.join("index.html"),
                    "<!doctype html><title>bench</title>\n",
                )?;
                let config = launch.dir.join("midge.toml");
                fs::write(&config, midge_config(tcp, http, &web))?;
                command.arg(&launch.midge).arg("--config").arg(&config);
                command.env("RUST_LOG", "info").env("NO_COLOR", "1");
            }
        }
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&log)?)
            .spawn()
            .map_err(|e| io::Error::other(format!("cannot start {}: {e}", kind.name())))?;
        let mut broker = Broker {
            kind,
            child,
            tcp,
            http,
            log,
        };
        broker.wait_ready()?;
        Ok(broker)
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    pub(crate) fn endpoint(&self, transport: Transport) -> Endpoint {
        Endpoint {
            addr: match transport {
                Transport::Tcp => self.tcp,
                Transport::Ws => self.http,
            },
            transport,
            path: "/mqtt".into(),
        }
    }

    fn wait_ready(&mut self) -> io::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        for addr in [self.tcp, self.http] {
            while TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_err() {
                if let Some(status) = self.child.try_wait()? {
                    return Err(self.failed(&format!("exited with {status}")));
                }
                if Instant::now() > deadline {
                    return Err(self.failed(&format!("not listening on {addr} after 10 s")));
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }

    fn failed(&self, what: &str) -> io::Error {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        io::Error::other(format!("{} {what}; its log:\n{log}", self.kind.name()))
    }

    /// Stops the broker: SIGTERM, then SIGKILL if it is still there after a second (Mosquitto
    /// with a WebSocket listener takes two to exit; the rows do not wait for it).
    pub(crate) fn stop(mut self) -> io::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> io::Result<()> {
        if self.child.try_wait()?.is_some() {
            return Ok(());
        }
        // SIGTERM through kill(1): the workspace allows no unsafe code, hence no libc::kill.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.child.kill()?;
        self.child.wait().map(drop)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Err(e) = self.terminate() {
            eprintln!(
                "midge-bench: stopping {} (pid {}): {e}",
                self.kind.name(),
                self.pid()
            );
        }
    }
}

/// A port nobody listens on now (the broker binds it right after).
fn free_port() -> io::Result<SocketAddr> {
    TcpListener::bind("127.0.0.1:0")?.local_addr()
}

/// Mosquitto's side: anonymous, no persistence, Nagle off (midge never uses it), the same
/// queue and in-flight limits as midge, and a WebSocket listener.
fn mosquitto_config(tcp: SocketAddr, ws: SocketAddr) -> String {
    format!(
        "# Written by midge-bench compare.
per_listener_settings false
allow_anonymous true
persistence false
max_queued_messages {MAX_QUEUED_MESSAGES}
max_inflight_messages {MAX_INFLIGHT}
set_tcp_nodelay true
log_dest stderr
listener {} {}
listener {} {}
protocol websockets
",
        tcp.port(),
        tcp.ip(),
        ws.port(),
        ws.ip(),
    )
}

/// midge's side: the same limits, nothing on disk (like Mosquitto's `persistence false`),
/// room for the idle-connection rows, $SYS as by default.
fn midge_config(tcp: SocketAddr, http: SocketAddr, web: &Path) -> String {
    format!(
        "# Written by midge-bench compare.
tcp = [\"{tcp}\"]
http = [\"{http}\"]
web = \"{}\"
allow_anonymous = true
in_memory = true
max_connections = 100000
max_queued_messages = {MAX_QUEUED_MESSAGES}
receive_maximum = {MAX_INFLIGHT}
",
        web.display()
    )
}
