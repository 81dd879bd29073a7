//! # midge-broker
//!
//! An MQTT 3.1, 3.1.1 and 5.0 broker on tokio, over TCP and over WebSocket, serving the
//! demo page on its HTTP port. Built on `midge-codec`.
//!
//! [`Broker::start`] binds every listener of a [`Config`] (port 0 picks a free port; the
//! chosen addresses are in [`Broker::tcp_addrs`] and [`Broker::http_addrs`]) and serves
//! until [`Broker::shutdown`].

mod auth;
mod broker;
mod config;
mod connection;
mod http;
mod metrics;
mod router;
mod session;
mod sys;
mod transport;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

pub use auth::{AllowAll, Auth, ClientInfo};
pub use config::{Config, ConfigError};

use crate::broker::Shared;

/// A running broker.
pub struct Broker {
    tcp: Vec<SocketAddr>,
    http: Vec<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

impl Broker {
    /// Binds every listener and starts serving, letting everyone in ([`AllowAll`]).
    pub async fn start(config: Config) -> Result<Broker, Box<dyn std::error::Error + Send + Sync>> {
        Self::start_with_auth(config, Arc::new(AllowAll)).await
    }

    /// Binds every listener and starts serving, asking `auth` who may do what.
    pub async fn start_with_auth(
        config: Config,
        auth: Arc<dyn Auth>,
    ) -> Result<Broker, Box<dyn std::error::Error + Send + Sync>> {
        config.validate()?;
        let exposed = config
            .tcp
            .iter()
            .chain(&config.http)
            .filter(|a| !a.ip().is_loopback());
        for addr in exposed {
            tracing::warn!(
                "{addr} is not a loopback address and allow_anonymous is set: anyone who can reach it may connect"
            );
        }
        let (shutdown, _) = watch::channel(false);
        let shared = Arc::new(Shared::new(config, auth));
        let permits = Arc::new(Semaphore::new(shared.config.max_connections));
        let mut tasks = JoinSet::new();
        let mut tcp = Vec::new();
        for addr in &shared.config.tcp {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr()?;
            tracing::info!("listening for MQTT on tcp://{local}");
            tcp.push(local);
            tasks.spawn(accept(
                listener,
                shared.clone(),
                permits.clone(),
                shutdown.subscribe(),
                Kind::Mqtt,
            ));
        }
        let mut http = Vec::new();
        for addr in &shared.config.http {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
            let local = listener.local_addr()?;
            tracing::info!(
                "listening for HTTP on http://{local} (MQTT over WebSocket at ws://{local}/mqtt)"
            );
            http.push(local);
            tasks.spawn(accept(
                listener,
                shared.clone(),
                permits.clone(),
                shutdown.subscribe(),
                Kind::Http,
            ));
        }
        if shared.config.sys_interval_secs > 0 {
            let interval = Duration::from_secs(shared.config.sys_interval_secs);
            tasks.spawn(sys::run(shared.clone(), interval, shutdown.subscribe()));
        }
        Ok(Broker {
            tcp,
            http,
            shutdown,
            tasks,
        })
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
    /// up to `grace` for every connection to close.
    pub async fn shutdown(mut self, grace: Duration) {
        let _ = self.shutdown.send(true);
        let drained = tokio::time::timeout(grace, async {
            while self.tasks.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!("connections still open after {grace:?}; closing them");
            self.tasks.abort_all();
        }
    }
}

#[derive(Clone, Copy)]
enum Kind {
    Mqtt,
    Http,
}

async fn accept(
    listener: TcpListener,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
    mut shutdown: watch::Receiver<bool>,
    kind: Kind,
) {
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
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::warn!(%peer, "connection limit reached: refusing");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (shared, shutdown) = (shared.clone(), shutdown.clone());
        connections.spawn(async move {
            serve(shared, stream, peer, shutdown, kind).await;
            drop(permit);
        });
        // Reap finished connection tasks so the set does not grow.
        while connections.try_join_next().is_some() {}
    }
    while connections.join_next().await.is_some() {}
}

async fn serve(
    shared: Arc<Shared>,
    stream: TcpStream,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    kind: Kind,
) {
    let (reader, writer) = match kind {
        Kind::Mqtt => transport::tcp(stream),
        Kind::Http => match http::handle(&shared, stream).await {
            Ok(http::Outcome::WebSocket(ws)) => transport::ws(*ws),
            Ok(http::Outcome::Done) => return,
            Err(e) => {
                tracing::debug!(%peer, "HTTP: {e}");
                return;
            }
        },
    };
    connection::run(shared, reader, writer, peer, shutdown).await;
}
