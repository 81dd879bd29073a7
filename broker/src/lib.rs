//! # midge-broker
//!
//! An MQTT 3.1, 3.1.1 and 5.0 broker on tokio, over TCP and over WebSocket, serving the
//! demo page on its HTTP port. Built on `midge-codec`.
//!
//! [`Broker::start`] binds every listener of a [`Config`] (port 0 picks a free port; the
//! chosen addresses are in [`Broker::tcp_addrs`] and [`Broker::http_addrs`]) and serves
//! until [`Broker::shutdown`]. The password and ACL files it names are read again by
//! [`Broker::reload`] (the `midge` binary calls it on SIGHUP). With [`Config::data_dir`]
//! set, persistent sessions and retained messages are kept in a durable store there, read
//! back before anything listens (a store that cannot be read is a [`StoreError`]).

mod access;
pub mod acl;
mod auth;
mod broker;
mod cert_identity;
mod config;
mod connection;
mod http;
mod limits;
mod metrics;
mod outbox;
mod park;
pub mod passwd;
mod router;
mod session;
mod store;
mod sys;
mod tls;
pub mod topic_policy;
mod transport;
mod websocket;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;

pub use access::Access;
pub use auth::{AllowAll, Auth, ClientInfo};
pub use config::{Config, ConfigError};
pub use store::StoreError;

use crate::broker::Shared;
use crate::limits::ConnectionRate;
use crate::park::Parking;
use crate::store::{Disk, Snapshot, Store};
use crate::topic_policy::TopicPolicy;
use crate::transport::Stream;

/// A running broker.
pub struct Broker {
    tcp: Vec<SocketAddr>,
    http: Vec<SocketAddr>,
    mqtts: Vec<SocketAddr>,
    https: Vec<SocketAddr>,
    access: Option<Arc<Access>>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
    store: Arc<dyn Store>,
    parking: Arc<Parking>,
}

type StartError = Box<dyn std::error::Error + Send + Sync>;

impl Broker {
    /// Binds every listener and starts serving. The configuration's password file, ACL file
    /// and topic policy decide who may do what ([`Access`]); without any, everyone may
    /// ([`AllowAll`]).
    pub async fn start(config: Config) -> Result<Broker, StartError> {
        let files = config.password_file.is_some()
            || config.acl_file.is_some()
            || config.topic_policy != TopicPolicy::Open;
        if !files {
            return Self::start_with_auth(config, Arc::new(AllowAll)).await;
        }
        config.validate()?;
        let access = Arc::new(Access::from_config(&config)?);
        let mut broker = Self::start_with_auth(config, access.clone()).await?;
        broker.access = Some(access);
        Ok(broker)
    }

    /// Binds every listener and starts serving, asking `auth` who may do what.
    pub async fn start_with_auth(
        config: Config,
        auth: Arc<dyn Auth>,
    ) -> Result<Broker, StartError> {
        config.validate()?;
        if config.allow_anonymous {
            for addr in config.addresses().filter(|a| !a.ip().is_loopback()) {
                tracing::warn!(
                    "{addr} is not a loopback address and allow_anonymous is set: anyone who can reach it may connect"
                );
            }
        }
        let tls = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) if !config.mqtts.is_empty() || !config.https.is_empty() => {
                let clients = config
                    .tls_client_ca
                    .as_deref()
                    .map(|ca| tls::ClientCertificates {
                        ca,
                        required: config.require_client_certificate,
                    });
                Some(tls::acceptor(cert, key, clients)?)
            }
            _ => None,
        };
        // The store is read before anything listens: a client never sees a broker that has
        // not yet got its sessions back.
        let (store, snapshot): (Arc<dyn Store>, _) = match &config.data_dir {
            Some(dir) => {
                let (disk, snapshot) = Disk::open(dir)?;
                (Arc::new(disk), snapshot)
            }
            None => (Arc::new(store::Memory), Snapshot::default()),
        };
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, auth, store.clone()));
        shared.restore(snapshot);
        let listen = Listen {
            shared: shared.clone(),
            permits: Arc::new(Semaphore::new(shared.config.max_connections)),
            rate: Arc::new(ConnectionRate::new(shared.config.max_connection_rate)),
            shutdown: shutdown.clone(),
        };
        let mut tasks = JoinSet::new();
        let config = &shared.config;
        let tcp = listen
            .bind(&mut tasks, &config.tcp, Kind::Mqtt, None)
            .await?;
        let http = listen
            .bind(&mut tasks, &config.http, Kind::Http, None)
            .await?;
        let mqtts = listen
            .bind(&mut tasks, &config.mqtts, Kind::Mqtt, tls.clone())
            .await?;
        let https = listen
            .bind(&mut tasks, &config.https, Kind::Http, tls)
            .await?;
        tasks.spawn(sweep(shared.clone(), shutdown.subscribe()));
        if shared.config.sys_interval_secs > 0 {
            let interval = Duration::from_secs(shared.config.sys_interval_secs);
            tasks.spawn(sys::run(shared.clone(), interval, shutdown.subscribe()));
        }
        Ok(Broker {
            tcp,
            http,
            mqtts,
            https,
            access: None,
            shutdown,
            tasks,
            store,
            parking: shared.parking.clone(),
        })
    }

    /// Reads the password and ACL files again, keeping every connection. A file that cannot
    /// be used leaves its old rules in force; the error names the file and line.
    pub fn reload(&self) -> Result<(), String> {
        match &self.access {
            Some(access) => access.reload(),
            None => Ok(()),
        }
    }

    /// The addresses the MQTT over TLS listeners are bound to.
    pub fn mqtts_addrs(&self) -> &[SocketAddr] {
        &self.mqtts
    }

    /// The addresses the HTTPS (and secure WebSocket) listeners are bound to.
    pub fn https_addrs(&self) -> &[SocketAddr] {
        &self.https
    }

    /// The addresses the MQTT/TCP listeners are bound to.
    pub fn tcp_addrs(&self) -> &[SocketAddr] {
        &self.tcp
    }

    /// The addresses the HTTP (and WebSocket) listeners are bound to.
    pub fn http_addrs(&self) -> &[SocketAddr] {
        &self.http
    }

    /// Stops accepting, sends 5.0 clients DISCONNECT 0x8B (Server shutting down), and waits
    /// up to `grace` for every connection to close (those still open then close when the
    /// runtime ends).
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        // Parked connections get a task again, to close as the others do.
        self.parking.close();
        let parking = self.parking.clone();
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
            parking.closed().await;
        })
        .await;
        if drained.is_err() {
            // Connections' tasks are not held by handle (see `Parking::spawn`): those still
            // running end with the runtime.
            tracing::warn!(
                "connections still open after {grace:?}; stopped accepting, not waiting for them"
            );
            self.tasks.abort_all();
        }
        // What the connections wrote as they closed (sessions' disconnect times) goes too.
        let store = self.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

/// How often expired messages are looked for (sessions expire on timers of their own).
const SWEEP_INTERVAL: Duration = Duration::from_secs(60);

/// Drops expired retained and queued messages now and then, until shutdown.
async fn sweep(shared: Arc<Shared>, mut shutdown: watch::Receiver<bool>) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(SWEEP_INTERVAL) => shared.sweep_expired(),
            _ = shutdown.changed() => return,
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Mqtt,
    Http,
}

/// What every accept loop shares.
#[derive(Clone)]
struct Listen {
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    rate: Arc<ConnectionRate>,
    shutdown: watch::Sender<bool>,
}

impl Listen {
    /// Binds `addrs` and spawns their accept loops; the bound addresses, port 0 resolved.
    async fn bind(
        &self,
        tasks: &mut JoinSet<()>,
        addrs: &[SocketAddr],
        kind: Kind,
        tls: Option<TlsAcceptor>,
    ) -> Result<Vec<SocketAddr>, StartError> {
        let mut bound = Vec::new();
        for addr in addrs {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr()?;
            match (kind, tls.is_some()) {
                (Kind::Mqtt, false) => tracing::info!("listening for MQTT on tcp://{local}"),
                (Kind::Mqtt, true) => {
                    tracing::info!("listening for MQTT over TLS on mqtts://{local}")
                }
                (Kind::Http, false) => tracing::info!(
                    "listening for HTTP on http://{local} (MQTT over WebSocket at ws://{local}/mqtt)"
                ),
                (Kind::Http, true) => tracing::info!(
                    "listening for HTTPS on https://{local} (MQTT over WebSocket at wss://{local}/mqtt)"
                ),
            }
            bound.push(local);
            tasks.spawn(accept(listener, self.clone(), kind, tls.clone()));
        }
        Ok(bound)
    }
}

async fn accept(listener: TcpListener, listen: Listen, kind: Kind, tls: Option<TlsAcceptor>) {
    let Listen {
        shared,
        permits,
        rate,
        shutdown,
    } = listen;
    let mut shutdown = shutdown.subscribe();
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.changed() => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off rather than spin.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !rate.admit(peer.ip(), std::time::Instant::now()) {
            tracing::debug!(%peer, "connection rate limit: refusing");
            metrics::add(&shared.metrics.connections_refused, 1);
            continue;
        }
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached: refusing");
            metrics::add(&shared.metrics.connections_refused, 1);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, shutdown, tls) = (shared.clone(), shutdown.clone(), tls.clone());
        connections.spawn(serve(shared, stream, tls, peer, shutdown, kind, permit));
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    kind: Kind,
    permit: OwnedSemaphorePermit,
) {
    let mut identity = None;
    let stream = match tls {
        None => Stream::Tcp(stream),
        // The TLS handshake is part of the connection's handshake, under the same timeout.
        Some(tls) => {
            // Boxed, as the other handshake steps: only a connection in its handshake pays
            // for the handshake's state.
            let accept = Box::pin(tls.accept(stream));
            match tokio::time::timeout(shared.config.connect_timeout(), accept).await {
                Ok(Ok(tls)) => {
                    // A client certificate is there only if the verifier accepted it.
                    let certificate = tls.get_ref().1.peer_certificates().and_then(|c| c.first());
                    identity = certificate.and_then(|c| cert_identity::common_name(c));
                    Stream::Tls(Box::new(tls))
                }
                Ok(Err(e)) => {
                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    tracing::debug!(%peer, "no TLS handshake within the connect timeout");
                    return;
                }
            }
        }
    };
    let (reader, writer) = match kind {
        Kind::Mqtt => transport::stream(stream),
        Kind::Http => match Box::pin(http::handle(&shared, stream)).await {
            Ok(http::Outcome::WebSocket(halves)) => *halves,
            Ok(http::Outcome::Done) => return,
            Err(e) => {
                tracing::debug!(%peer, "HTTP: {e}");
                return;
            }
        },
    };
    connection::run(shared, reader, writer, peer, shutdown, identity, permit).await;
}
