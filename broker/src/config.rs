//! Configuration: a TOML file (`midge --config midge.toml`) and command-line flags, flags
//! winning. Every key is documented in `broker/midge.example.toml`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::passwd::LineError;
use crate::topic_policy::TopicPolicy;

/// Everything the broker can be told.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// MQTT over TCP listeners.
    pub tcp: Vec<SocketAddr>,
    /// HTTP listeners: the demo page, `/metrics`, and MQTT over WebSocket at `/mqtt`.
    pub http: Vec<SocketAddr>,
    /// The directory of static files served over HTTP.
    pub web: PathBuf,
    /// Required to listen on an address other than loopback while authentication is not
    /// configured: the broker is then open to anyone who can reach it.
    pub allow_anonymous: bool,
    /// The largest packet accepted, in bytes (announced to 5.0 clients).
    pub max_packet_size: u32,
    /// How many connections may be open at once.
    pub max_connections: usize,
    /// How many messages may wait for one client; beyond it QoS 0 ones are dropped first.
    pub max_queued_messages: usize,
    /// How many bytes (payloads and topics) may wait for one client.
    pub max_queued_bytes: usize,
    /// How many bytes may wait for all clients together.
    pub max_total_queued_bytes: usize,
    /// While a connected subscriber's queue is more than half full, the broker stops
    /// reading from the publishers that feed it (TCP then slows them down) until it is down
    /// to a quarter. A subscriber that takes no message for this many milliseconds counts as
    /// stalled: it holds no one back until it catches up, and its queue drops messages when
    /// full. 0: publishers never wait.
    pub max_publisher_wait_ms: u64,
    /// How many QoS 1 and 2 messages may be in flight to one client (capped by the client's
    /// own Receive Maximum), and how many QoS 2 messages it may have in flight to us.
    pub receive_maximum: u16,
    /// The highest topic alias a 5.0 client may use towards the broker.
    pub topic_alias_maximum: u16,
    /// Seconds a new connection has to complete its handshake and CONNECT.
    pub connect_timeout_secs: u64,
    /// The longest keep alive a client may ask for, in seconds (0: any). A 5.0 client that
    /// asks for more, or for none, is told this value in CONNACK (Server Keep Alive).
    pub max_keep_alive_secs: u16,
    /// Seconds between updates of the `$SYS/broker/...` statistics topics; 0 turns them off.
    pub sys_interval_secs: u64,
    /// A plain TCP connection with nothing to do for this many milliseconds is parked: it
    /// gives up its task, and one thread for the whole broker watches its socket until it
    /// has something to do again (a packet, a message for it, its keep alive running out).
    /// An idle connection then costs about a third of the memory. 0: never.
    pub park_after_idle_ms: u64,

    /// The password file (`midge passwd`): clients must then give a user name and its
    /// password, unless `allow_anonymous` lets those without a user name in.
    pub password_file: Option<PathBuf>,
    /// The ACL file: who may publish, subscribe and receive where.
    pub acl_file: Option<PathBuf>,
    /// `"open"` (any topic) or `"strict"` (the topic best practices; see the README).
    pub topic_policy: TopicPolicy,
    /// Users exempt from the strict policy's rules on `#` and `data/<client-id>/`.
    pub admin_users: Vec<String>,

    /// MQTT over TLS listeners (mqtts), with `tls_cert` and `tls_key`.
    pub mqtts: Vec<SocketAddr>,
    /// HTTPS listeners: the HTTP listener's service over TLS, MQTT over `wss://.../mqtt`.
    pub https: Vec<SocketAddr>,
    /// The certificate chain (PEM) TLS listeners present, the server's own first.
    pub tls_cert: Option<PathBuf>,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1) of the certificate.
    pub tls_key: Option<PathBuf>,
    /// CA certificates (PEM) for client certificates: TLS listeners then ask clients for
    /// one, and a verified certificate's subject common name is the client's user name (no
    /// password needed).
    pub tls_client_ca: Option<PathBuf>,
    /// With `tls_client_ca`: refuse TLS clients without a valid certificate.
    pub require_client_certificate: bool,

    /// New connections per second one source address may open (a burst of as many is
    /// allowed); more are closed at once. 0: no limit.
    pub max_connection_rate: u32,
    /// PUBLISH packets per second one client may send (a burst of as many is allowed);
    /// beyond it the broker stops reading from the client until the rate is met. 0: no limit.
    pub max_publish_rate: u32,
    /// Subscriptions one client may hold; more get Quota exceeded (0x97, 3.x: 0x80). 0: no limit.
    pub max_subscriptions: usize,
    /// Levels a topic name or filter may have; a longer one is refused (0x90 / 0x8F). 0: no limit.
    pub max_topic_levels: usize,
    /// The `Origin` values a browser may open `/mqtt` from (e.g. `"https://example.com"`);
    /// other origins get 403. Requests without an Origin (not from a browser) are let
    /// through. Empty: any origin.
    pub allowed_origins: Vec<String>,

    /// The directory of the durable store (persistent sessions, their QoS 1 and 2
    /// messages, retained messages); `None` keeps them in memory only. A configuration file
    /// sets it to `data` beside itself unless it says otherwise; relative paths in a file
    /// are relative to the file's directory.
    pub data_dir: Option<PathBuf>,
    /// Keep sessions and retained messages in memory only, whatever `data_dir` says.
    pub in_memory: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            tcp: vec![SocketAddr::from(([127, 0, 0, 1], 1883))],
            http: vec![SocketAddr::from(([127, 0, 0, 1], 8080))],
            web: PathBuf::from("web"),
            allow_anonymous: false,
            max_packet_size: 1024 * 1024,
            max_connections: 10_000,
            max_queued_messages: 1000,
            max_queued_bytes: 16 * 1024 * 1024,
            max_total_queued_bytes: 1024 * 1024 * 1024,
            max_publisher_wait_ms: 1000,
            receive_maximum: 100,
            topic_alias_maximum: 64,
            connect_timeout_secs: 10,
            max_keep_alive_secs: 0,
            sys_interval_secs: 10,
            park_after_idle_ms: 1000,
            password_file: None,
            acl_file: None,
            topic_policy: TopicPolicy::Open,
            admin_users: Vec::new(),
            mqtts: Vec::new(),
            https: Vec::new(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            require_client_certificate: false,
            max_connection_rate: 0,
            max_publish_rate: 0,
            max_subscriptions: 0,
            max_topic_levels: 0,
            allowed_origins: Vec::new(),
            data_dir: None,
            in_memory: false,
        }
    }
}

/// A configuration that cannot be used, with where and why.
#[derive(Debug)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads a TOML file. Errors name the file, and the line and column of a bad key.
    pub fn from_file(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: {e}", path.display())))?;
        let mut config = Config::from_toml(&text).map_err(|e| match e.line {
            0 => ConfigError(format!("{}: {}", path.display(), e.message)),
            line => ConfigError(format!("{}: line {line}: {}", path.display(), e.message)),
        })?;
        // The store lives beside the configuration, wherever the broker is started from.
        let dir = path.parent().unwrap_or(Path::new("."));
        let data = config
            .data_dir
            .take()
            .unwrap_or_else(|| PathBuf::from("data"));
        config.data_dir = (!config.in_memory).then(|| dir.join(data));
        Ok(config)
    }

    /// Parses the text of a configuration file; the error has the line of the bad key or
    /// value where TOML knows it (else line 0).
    pub fn from_toml(text: &str) -> Result<Config, LineError> {
        toml::from_str(text).map_err(|e| {
            // An error at the very end (after the last newline) is about the last line.
            let last = text.lines().count().max(1);
            let line = e.span().map_or(0, |span| {
                text.get(..span.start)
                    .map_or(1, |before| before.matches('\n').count() + 1)
                    .min(last)
            });
            LineError::new(line, e.message())
        })
    }

    /// Every listen address, plain and TLS.
    pub(crate) fn addresses(&self) -> impl Iterator<Item = &SocketAddr> {
        self.tcp
            .iter()
            .chain(&self.http)
            .chain(&self.mqtts)
            .chain(&self.https)
    }

    /// Checks the configuration is safe to run: a non-loopback address needs a password
    /// file or an explicit `allow_anonymous`, as in Mosquitto 2; TLS listeners need a
    /// certificate and key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let exposed = self.addresses().find(|a| !a.ip().is_loopback());
        let authenticated = self.password_file.is_some();
        if let (Some(addr), false) = (exposed, self.allow_anonymous || authenticated) {
            return Err(ConfigError(format!(
                "refusing to listen on {addr}, which is not a loopback address, without \
                 authentication: set password_file, or allow_anonymous = true to let anyone who \
                 can reach it connect"
            )));
        }
        if self.max_packet_size < 64 {
            return Err(ConfigError(
                "max_packet_size must be at least 64 bytes".into(),
            ));
        }
        if self.receive_maximum == 0 {
            return Err(ConfigError("receive_maximum must be at least 1".into()));
        }
        let tls = !self.mqtts.is_empty() || !self.https.is_empty();
        if tls && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err(ConfigError(
                "mqtts and https listeners need tls_cert and tls_key (PEM files)".into(),
            ));
        }
        if self.require_client_certificate && self.tls_client_ca.is_none() {
            return Err(ConfigError(
                "require_client_certificate needs tls_client_ca (the CA certificates, PEM)".into(),
            ));
        }
        Ok(())
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_secs(self.connect_timeout_secs)
    }

    pub(crate) fn max_publisher_wait(&self) -> Duration {
        Duration::from_millis(self.max_publisher_wait_ms)
    }

    /// How long a plain TCP connection is idle before it is parked, if it ever is.
    pub(crate) fn park_after_idle(&self) -> Option<Duration> {
        (self.park_after_idle_ms > 0).then(|| Duration::from_millis(self.park_after_idle_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        let dir = std::env::temp_dir().join(format!("midge-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!(
            "{:x}.toml",
            text.len() * 31 + text.bytes().map(usize::from).sum::<usize>()
        ));
        std::fs::write(&path, text).unwrap();
        let result = Config::from_file(&path);
        std::fs::remove_file(&path).unwrap();
        result
    }

    #[test]
    fn the_example_documents_the_defaults() {
        let mut example = parse(include_str!("../midge.example.toml")).unwrap();
        let defaults = Config::default();
        // The one default that depends on the file: the store beside it.
        let data = example.data_dir.take().unwrap();
        assert!(data.ends_with(format!("midge-config-test-{}/data", std::process::id())));
        assert_eq!(format!("{example:?}"), format!("{defaults:?}"));
    }

    #[test]
    fn bad_files_name_the_line() {
        let err = parse("tcp = [\"127.0.0.1:1883\"]\n\nmax_packet_size = \"big\"\n").unwrap_err();
        assert!(err.0.contains("line 3"), "{err}");
        let err = parse("tcp = [\"127.0.0.1:1883\"]\nnot_a_key = 1\n").unwrap_err();
        assert!(
            err.0.contains("line 2") && err.0.contains("not_a_key"),
            "{err}"
        );
        // Found by the fuzzer: an error at the end of the text was put on a line after it.
        let err = Config::from_toml("tcp = []\nkey\n").unwrap_err();
        assert_eq!(err.line, 2, "{err}");
        let err = Config::from_file(Path::new("/nonexistent/midge.toml")).unwrap_err();
        assert!(err.0.starts_with("/nonexistent/midge.toml: "), "{err}");
    }

    #[test]
    fn exposing_the_broker_needs_allow_anonymous() {
        let mut config = Config {
            tcp: vec!["0.0.0.0:1883".parse().unwrap()],
            ..Config::default()
        };
        let err = config.validate().unwrap_err();
        assert!(
            err.0.contains("0.0.0.0:1883") && err.0.contains("allow_anonymous"),
            "{err}"
        );
        config.allow_anonymous = true;
        assert!(config.validate().is_ok());
        config.allow_anonymous = false;
        config.password_file = Some("passwd".into());
        assert!(
            config.validate().is_ok(),
            "a password file is authentication"
        );
    }

    #[test]
    fn tls_listeners_need_a_certificate() {
        let mut config = Config {
            mqtts: vec!["127.0.0.1:8883".parse().unwrap()],
            tls_cert: Some("cert.pem".into()),
            ..Config::default()
        };
        assert!(config.validate().unwrap_err().0.contains("tls_key"));
        config.tls_key = Some("key.pem".into());
        assert!(config.validate().is_ok());
    }

    #[test]
    fn the_store_is_beside_the_file_unless_in_memory() {
        let config = parse("data_dir = \"/var/lib/midge\"\n").unwrap();
        assert_eq!(config.data_dir.unwrap(), Path::new("/var/lib/midge"));
        let config = parse("data_dir = \"state\"\n").unwrap();
        assert!(config.data_dir.unwrap().ends_with("state"));
        let config = parse("in_memory = true\n").unwrap();
        assert!(config.data_dir.is_none());
        assert!(Config::default().data_dir.is_none(), "no file, no store");
    }

    #[test]
    fn the_topic_policy_is_a_word() {
        let config = parse("topic_policy = \"strict\"\n").unwrap();
        assert_eq!(config.topic_policy, TopicPolicy::Strict);
        let err = parse("\ntopic_policy = \"lenient\"\n").unwrap_err();
        assert!(
            err.0.contains("line 2") && err.0.contains("lenient"),
            "{err}"
        );
    }
}
