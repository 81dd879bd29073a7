//! One client connection, from its CONNECT to its end: one task, which reads and answers
//! packets, sends what its session has queued, and enforces keep alive.
//!
//! Packets it writes are gathered in one buffer and sent once per wake-up, so a burst of
//! acknowledgements or deliveries costs one write.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::num::NonZeroU16;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use futures_util::FutureExt;
use midge_codec::properties::{AckProperties, ConnAckProperties};
use midge_codec::{
    ByteStr, ConnAck, Connect, DecodeError, Decoder, Disconnect, Packet, PacketId, ProtocolVersion,
    PubAck, PubComp, PubRec, PubRel, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    TopicName, UnsubAck, Unsubscribe, Will,
};
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, watch};
use tokio::time::{Instant, sleep_until, timeout};

use crate::auth::ClientInfo;
use crate::broker::Shared;
use crate::limits::Bucket;
use crate::metrics;
use crate::outbox::Outbox;
use crate::router::Subscription;
use crate::session::{Inflight, Outgoing, Session, SessionState};
use crate::store::{self, Op, Progress, Ticket};
use crate::transport::{Reader, Writer};

/// The most a connection writes (or frames, over WebSocket) at once from its queue.
const FLUSH_BYTES: usize = 64 * 1024;

/// How many reads that need no waiting a connection takes in before it waits for the store.
const MAX_GATHERED: usize = 64;

/// Why a connection ended.
#[derive(Debug)]
enum End {
    /// The client sent DISCONNECT; `publish_will` for 5.0's reason 0x04.
    Disconnect { publish_will: bool },
    /// The network connection closed or failed without a DISCONNECT.
    Lost,
    /// The client broke the protocol; 5.0 clients are told why.
    Violation(ReasonCode, String),
    /// Another connection took the session over.
    TakenOver,
    /// The broker is shutting down.
    Shutdown,
    /// Idle: the connection may be parked (see [`park`]), with its keep alive deadline.
    Park(Option<Instant>),
}

/// Takes a new connection through its handshake, then gives it a task of its own to be
/// served in ([`live`]), sized for serving only. `reader` and `writer` are the two halves
/// of its stream; `permit` counts it against `max_connections` while it lives, parked or
/// not.
pub(crate) async fn run(
    shared: Arc<Shared>,
    mut reader: Reader,
    writer: Writer,
    peer: SocketAddr,
    shutdown: watch::Receiver<bool>,
    identity: Option<String>,
    permit: OwnedSemaphorePermit,
) {
    let mut buf = BytesMut::new();
    let mut decoder =
        Decoder::new(ProtocolVersion::V5).with_max_packet_size(shared.config.max_packet_size);
    let handshake = handshake(
        &shared,
        &mut reader,
        writer,
        &mut decoder,
        &mut buf,
        peer,
        identity,
    );
    let Some(connection) = handshake.await else {
        return;
    };
    metrics::add(&shared.metrics.connections, 1);
    metrics::add(&shared.metrics.connections_total, 1);
    let deadline = connection.keep_alive_deadline();
    let parts = Parts {
        decoder,
        buf,
        shutdown,
        permit,
    };
    shared
        .parking
        .spawn(live(connection, reader, parts, deadline));
}

/// What a connection's task holds besides its [`Connection`] and its [`Reader`].
struct Parts {
    decoder: Decoder,
    buf: BytesMut,
    shutdown: watch::Receiver<bool>,
    /// Held: counts the connection against `max_connections`.
    permit: OwnedSemaphorePermit,
}

/// Serves a connection past its handshake to its end, or until it is parked. Not an
/// `async fn`: that would keep a copy of its arguments beside the ones it works on, in
/// every connection's task (a second `Connection`, and the rest).
#[allow(clippy::manual_async_fn)]
fn live(
    mut connection: Connection,
    mut reader: Reader,
    mut parts: Parts,
    mut deadline: Option<Instant>,
) -> impl Future<Output = ()> + Send {
    async move {
        let end = loop {
            let end = connection
                .serve(
                    &mut reader,
                    &mut parts.decoder,
                    &mut parts.buf,
                    parts.shutdown.clone(),
                    deadline,
                )
                .await;
            let End::Park(at) = end else { break end };
            match park(connection, reader, parts, at) {
                Parking::Parked => return,
                Parking::Refused(refused) => {
                    (connection, reader, parts) = *refused;
                    deadline = at;
                }
                Parking::Lost(connection) => return lost(*connection).await,
            }
        };
        let shared = connection.shared.clone();
        let violation = matches!(end, End::Violation(..));
        Box::pin(connection.finish(end)).await;
        if violation {
            Box::pin(linger(&mut reader, &mut parts.buf, parts.shutdown)).await;
        }
        metrics::sub(&shared.metrics.connections, 1);
    }
}

/// Ends a connection whose socket was lost in parking or reviving.
async fn lost(connection: Connection) {
    let shared = connection.shared.clone();
    Box::pin(connection.finish(End::Lost)).await;
    metrics::sub(&shared.metrics.connections, 1);
}

/// A parked connection: what its task held, its socket out of tokio's hands. Only what
/// lasts is kept: what it was sending, its read buffer and its writer are empty, and its
/// decoder is made again from its version.
pub(crate) struct Parked {
    connection: Dormant,
    stream: std::net::TcpStream,
    shutdown: watch::Receiver<bool>,
    permit: OwnedSemaphorePermit,
    deadline: Option<Instant>,
}

/// What came of trying to park.
enum Parking {
    /// The task may end: the connection waits in its session.
    Parked,
    /// Not now (something to send came in meanwhile, a takeover, shutdown): serve on.
    Refused(Box<(Connection, Reader, Parts)>),
    /// The socket could not be handed over, nor taken back.
    Lost(Box<Connection>),
}

/// Parks an idle plain TCP connection (`crate::park`): takes its socket out of tokio,
/// has the broker's watcher watch it, and leaves what the task held in the session, to be
/// revived by whatever needs it next. Under the session's lock, so that a message queued
/// or a takeover either comes before (and parking is refused) or finds it parked.
fn park(
    mut connection: Connection,
    reader: Reader,
    parts: Parts,
    deadline: Option<Instant>,
) -> Parking {
    let session = connection.session.clone();
    let mut state = session.lock();
    let sendable = (state.queue.front()).is_some_and(|m| connection.may_send(&state, m.qos));
    let current = state.generation == connection.generation;
    let writer = std::mem::replace(&mut connection.writer, Writer::Detached);
    let (r, w) = match (reader, writer) {
        (Reader::Tcp(r, _), Writer::Tcp(w))
            if !sendable && current && !*parts.shutdown.borrow() =>
        {
            (r, w)
        }
        (reader, writer) => {
            connection.writer = writer;
            return Parking::Refused(Box::new((connection, reader, parts)));
        }
    };
    let tcp = match r.reunite(w) {
        Ok(tcp) => tcp,
        // Halves of one stream always reunite; were they not, it goes on as it was.
        Err(e) => {
            connection.writer = Writer::Tcp(e.1);
            let reader = Reader::Tcp(e.0, false);
            return Parking::Refused(Box::new((connection, reader, parts)));
        }
    };
    let Ok(stream) = tcp.into_std() else {
        return Parking::Lost(Box::new(connection));
    };
    let shared = connection.shared.clone();
    let deadline_std = deadline.map(Instant::into_std);
    let fd = stream.as_raw_fd();
    if let Err(e) = shared.parking.park(&session, fd, deadline_std) {
        tracing::debug!(client = %session.client_id, "not parked: {e}");
        return serve_on(connection, TcpStream::from_std(stream).ok(), parts);
    }
    let parked = Parked {
        connection: connection.dormant(),
        stream,
        shutdown: parts.shutdown,
        permit: parts.permit,
        deadline,
    };
    state.parked = Some(Box::new(parked));
    metrics::add(&shared.metrics.connections_parked, 1);
    tracing::trace!(client = %session.client_id, "parked");
    Parking::Parked
}

/// Parking refused after the socket was taken apart: the connection goes on with it.
fn serve_on(mut connection: Connection, tcp: Option<TcpStream>, parts: Parts) -> Parking {
    let Some(tcp) = tcp else {
        return Parking::Lost(Box::new(connection));
    };
    let (r, w) = tcp.into_split();
    connection.writer = Writer::Tcp(w);
    Parking::Refused(Box::new((connection, Reader::Tcp(r, false), parts)))
}

impl Parked {
    /// Gives the connection a task again, its socket back in tokio's hands (by whoever
    /// took it out of its session, on a runtime thread or the watcher's).
    pub(crate) fn revive(self) {
        let Parked {
            connection,
            stream,
            shutdown,
            permit,
            deadline,
        } = self;
        let shared = connection.shared.clone();
        shared.parking.unpark(stream.as_raw_fd());
        metrics::sub(&shared.metrics.connections_parked, 1);
        tracing::trace!(client = %connection.session.client_id, "revived");
        let _runtime = shared.parking.enter();
        match TcpStream::from_std(stream) {
            Ok(tcp) => {
                let (r, w) = tcp.into_split();
                let connection = connection.wake(Writer::Tcp(w));
                let max_packet_size = shared.config.max_packet_size;
                let decoder =
                    Decoder::new(connection.version).with_max_packet_size(max_packet_size);
                let parts = Parts {
                    decoder,
                    buf: BytesMut::new(),
                    shutdown,
                    permit,
                };
                let reader = Reader::Tcp(r, false);
                (shared.parking).spawn(live(connection, reader, parts, deadline));
            }
            Err(e) => {
                tracing::warn!(client = %connection.session.client_id, "cannot revive a parked connection: {e}");
                shared
                    .parking
                    .spawn(lost(connection.wake(Writer::Detached)));
            }
        }
    }
}

/// From the first byte to CONNACK: reads the CONNECT within the connect timeout, and
/// accepts it or refuses it.
async fn handshake(
    shared: &Arc<Shared>,
    reader: &mut Reader,
    mut writer: Writer,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
    peer: SocketAddr,
    identity: Option<String>,
) -> Option<Connection> {
    let first = timeout(
        shared.config.connect_timeout(),
        read_connect(reader, decoder, buf),
    )
    .await;
    let mut connect = match first {
        Ok(Ok(connect)) => connect,
        Ok(Err(reason)) => {
            tracing::debug!(%peer, "no valid CONNECT: {reason}");
            writer.close().await;
            return None;
        }
        Err(_) => {
            tracing::debug!(%peer, "no CONNECT within the connect timeout");
            writer.close().await;
            return None;
        }
    };
    let certified = identity.is_some();
    if let Some(identity) = identity {
        // The verified certificate names the user, whatever the CONNECT says.
        connect.username = ByteStr::try_from(identity.as_str()).ok();
        connect.password = None;
    }
    Connection::accept(shared.clone(), connect, certified, writer, peer).await
}

/// After closing on a protocol violation, reads and discards what the client is still
/// sending, for a moment: closing a socket with unread input makes the kernel reset the
/// connection, and the client could lose the DISCONNECT that says why.
async fn linger(reader: &mut Reader, buf: &mut BytesMut, mut shutdown: watch::Receiver<bool>) {
    let drain = async {
        loop {
            buf.clear();
            if !matches!(reader.read(buf).await, Ok(Some(_))) {
                return;
            }
        }
    };
    tokio::select! {
        _ = timeout(Duration::from_secs(1), drain) => {}
        _ = shutdown.wait_for(|stop| *stop) => {}
    }
}

/// Reads until the first packet, which must be a CONNECT [MQTT-3.1.0-1].
async fn read_connect(
    reader: &mut Reader,
    decoder: &mut Decoder,
    buf: &mut BytesMut,
) -> Result<Connect, String> {
    loop {
        match decoder.decode(buf) {
            Ok(Some(Packet::Connect(connect))) => return Ok(*connect),
            Ok(Some(other)) => {
                return Err(format!(
                    "[MQTT-3.1.0-1] first packet is {}, not CONNECT",
                    other.packet_type()
                ));
            }
            Ok(None) => {}
            Err(e) => return Err(e.to_string()),
        }
        match reader.read(buf).await {
            Ok(None) => return Err("closed before CONNECT".into()),
            Ok(Some(_)) => {}
            Err(e) => return Err(e.to_string()),
        }
    }
}

struct Connection {
    shared: Arc<Shared>,
    username: Option<Box<str>>,
    session: Arc<Session>,
    writer: Writer,
    out: Outbox,
    peer: SocketAddr,
    version: ProtocolVersion,
    /// In seconds; `None` for none.
    keep_alive: Option<NonZeroU16>,
    /// Boxed: most clients have none, and an idle connection should be small.
    will: Option<Box<Will>>,
    /// 5.0: the client's Receive Maximum, capping our QoS 1/2 messages in flight to it.
    send_quota: u16,
    /// 5.0: the largest packet the client accepts (a Maximum Packet Size is 32 bits).
    client_max_packet: u32,
    /// 5.0: topic aliases, both ways; boxed, as most clients use none.
    aliases: Option<Box<Aliases>>,
    /// 5.0: how many topic aliases the client accepts from us.
    aliases_out_max: u16,
    waker: Arc<Notify>,
    generation: u32,
    /// The client's PUBLISH rate limit, if one is configured.
    publish_rate: Option<Box<Bucket>>,
    /// The store's write progress (`None`: it writes nothing), and the last ticket of this
    /// connection's changes: what `out` holds is sent only once that is durable.
    progress: Option<watch::Receiver<Progress>>,
    pending: Ticket,
    /// Sessions the client's last PUBLISH filled past their high-water mark: nothing more
    /// is read from the client until they have drained (or stalled).
    congested: Vec<Arc<Session>>,
}

/// A parked [`Connection`]: what lasts of it (what is being sent, or waited for, does not
/// while it is idle), so that a parked connection is small.
struct Dormant {
    shared: Arc<Shared>,
    username: Option<Box<str>>,
    session: Arc<Session>,
    peer: SocketAddr,
    version: ProtocolVersion,
    keep_alive: Option<NonZeroU16>,
    will: Option<Box<Will>>,
    send_quota: u16,
    client_max_packet: u32,
    aliases: Option<Box<Aliases>>,
    aliases_out_max: u16,
    waker: Arc<Notify>,
    generation: u32,
    publish_rate: Option<Box<Bucket>>,
    progress: Option<watch::Receiver<Progress>>,
}

impl Connection {
    /// What lasts of an idle connection (its outbox, pending ticket and congested
    /// sessions are empty; its writer has been taken apart).
    fn dormant(self) -> Dormant {
        let Connection {
            shared,
            username,
            session,
            writer: _,
            out: _,
            peer,
            version,
            keep_alive,
            will,
            send_quota,
            client_max_packet,
            aliases,
            aliases_out_max,
            waker,
            generation,
            publish_rate,
            progress,
            pending: _,
            congested: _,
        } = self;
        Dormant {
            shared,
            username,
            session,
            peer,
            version,
            keep_alive,
            will,
            send_quota,
            client_max_packet,
            aliases,
            aliases_out_max,
            waker,
            generation,
            publish_rate,
            progress,
        }
    }
}

impl Dormant {
    /// The connection again, writing to `writer`.
    fn wake(self, writer: Writer) -> Connection {
        let Dormant {
            shared,
            username,
            session,
            peer,
            version,
            keep_alive,
            will,
            send_quota,
            client_max_packet,
            aliases,
            aliases_out_max,
            waker,
            generation,
            publish_rate,
            progress,
        } = self;
        Connection {
            shared,
            username,
            session,
            writer,
            out: Outbox::default(),
            peer,
            version,
            keep_alive,
            will,
            send_quota,
            client_max_packet,
            aliases,
            aliases_out_max,
            waker,
            generation,
            publish_rate,
            progress,
            pending: Ticket::NONE,
            congested: Vec::new(),
        }
    }
}

/// 5.0 topic aliases (§3.3.2.3.4) of one connection.
#[derive(Default)]
struct Aliases {
    /// The client's, towards us.
    inbound: HashMap<u16, TopicName>,
    /// Ours, towards the client.
    outbound: HashMap<TopicName, std::num::NonZeroU16>,
}

impl Connection {
    /// Answers the CONNECT: takes over or creates the session and sends CONNACK.
    async fn accept(
        shared: Arc<Shared>,
        connect: Connect,
        certified: bool,
        mut writer: Writer,
        peer: SocketAddr,
    ) -> Option<Connection> {
        let version = connect.protocol_version;
        let v5 = version.is_v5();
        let mut out = Outbox::default();
        let refuse = |code: ReasonCode, out: &mut Outbox| {
            let ack = ConnAck {
                reason_code: code,
                ..ConnAck::default()
            };
            // A CONNACK always encodes; the reason code is one CONNACK may carry.
            let _ = out.packet(&Packet::from(ack), version);
        };
        let mut assigned = None;
        let client_id: Arc<str> = if connect.client_id.is_empty() {
            // 3.1 requires an identifier; 3.1.1 only allows an empty one with a clean
            // session [MQTT-3.1.3-7]; the server then makes one up [MQTT-3.1.3-6].
            if version == ProtocolVersion::V3_1 || (!v5 && !connect.clean_start) {
                refuse(ReasonCode::ClientIdentifierNotValid, &mut out);
                let _ = writer.write(&out.take()).await;
                writer.close().await;
                return None;
            }
            let id: Arc<str> = format!("midge-{}", unique_suffix()).into();
            assigned = Some(id.clone());
            id
        } else {
            connect.client_id.as_str().into()
        };

        let user = connect.username.clone();
        let verdict = authenticate(&shared, connect, certified)
            .await
            .and_then(|c| will_allowed(&shared, &c, &client_id).map(|()| c));
        let connect = match verdict {
            Ok(connect) => connect,
            Err(code) => {
                tracing::info!(client = %client_id, %peer, user = ?user.as_deref(), "connection refused: {code}");
                metrics::add(&shared.metrics.auth_failures, 1);
                refuse(code, &mut out);
                let _ = writer.write(&out.take()).await;
                writer.close().await;
                return None;
            }
        };

        // Sessions: take over, resume or start (§4.1, [MQTT-3.1.2-4] to [MQTT-3.1.2-6]).
        let waker = Arc::new(Notify::new());
        let (session, session_present, generation) = {
            let mut sessions = shared.sessions();
            let existing = sessions.get(&client_id).cloned();
            let session = existing.clone().unwrap_or_else(|| {
                let s = Session::new(client_id.clone());
                sessions.insert(client_id.clone(), s.clone());
                s
            });
            drop(sessions);
            // A session whose expiry is 0 ends with its connection, which a takeover closes:
            // it is not resumed even if its old connection has not finished closing yet.
            let lasting = existing.is_some() && session.lock().expiry_interval != 0;
            let present = lasting && !connect.clean_start;
            if !present {
                shared.clear_session(&session);
            }
            let mut state = session.lock();
            if let Some(old) = state.waker.replace(waker.clone()) {
                old.notify_one();
            }
            // A parked connection has no task to wake: it is revived, to find itself taken
            // over (once the lock is let go).
            let old_parked = state.parked.take();
            state.generation = state.generation.wrapping_add(1);
            let generation = state.generation;
            state.expiry_interval = if v5 {
                connect.properties.session_expiry_interval.unwrap_or(0)
            } else if connect.clean_start {
                0
            } else {
                u32::MAX
            };
            // The store keeps a session that outlives its connection.
            let keep = shared.store.is_durable() && state.expiry_interval != 0;
            if state.persisted && !keep {
                let client_id = client_id.clone();
                shared.store.submit(Op::EndSession { client_id });
                state.forget_keys();
            }
            state.persisted = keep;
            // Under the lock, as the old connection's `finish` marks it disconnected: that
            // cannot land after this.
            session.set_connected(true);
            drop(state);
            if let Some(parked) = old_parked {
                parked.revive();
            }
            (session, present, generation)
        };
        // CONNACK (with session present) goes once the session is durable.
        let pending = shared.save_session(&session, false);

        let mut properties = ConnAckProperties::default();
        if v5 {
            properties.receive_maximum = PacketId::new(shared.config.receive_maximum);
            properties.maximum_packet_size =
                std::num::NonZeroU32::new(shared.config.max_packet_size);
            properties.topic_alias_maximum = Some(shared.config.topic_alias_maximum);
            properties.assigned_client_identifier = assigned
                .as_deref()
                .and_then(|id| ByteStr::try_from(id).ok());
        }
        // Keep alive: the client's, unless it exceeds the broker's maximum (or is 0, "never",
        // while there is a maximum); 5.0 clients are then told the value in force.
        let max = shared.config.max_keep_alive_secs;
        let keep_alive_secs =
            if max > 0 && (connect.keep_alive == 0 || connect.keep_alive > max) && v5 {
                properties.server_keep_alive = Some(max);
                max
            } else {
                connect.keep_alive
            };
        let keep_alive = NonZeroU16::new(keep_alive_secs);
        let ack = ConnAck {
            session_present,
            reason_code: ReasonCode::Success,
            properties,
        };
        let _ = out.packet(&Packet::from(ack), version);
        let max_publish_rate = shared.config.max_publish_rate;
        let mut connection = Connection {
            username: connect.username.as_deref().map(Into::into),
            // As many as the client takes (5.0's Receive Maximum, 65,535 when it names
            // none, as a 3.1.1 client cannot), and no more than `receive_maximum`: the rest
            // waits in the queue, where its limits and backpressure see it, and a reconnect
            // resends at most that many.
            send_quota: connect
                .properties
                .receive_maximum
                .map_or(u16::MAX, |r| r.get())
                .min(shared.config.receive_maximum),
            client_max_packet: connect
                .properties
                .maximum_packet_size
                .map_or(u32::MAX, |m| m.get()),
            session,
            writer,
            out,
            peer,
            version,
            keep_alive,
            will: connect.will.map(Box::new),
            aliases: None,
            aliases_out_max: if v5 {
                connect.properties.topic_alias_maximum.unwrap_or(0)
            } else {
                0
            },
            waker,
            generation,
            publish_rate: (max_publish_rate > 0)
                .then(|| Box::new(Bucket::new(max_publish_rate, std::time::Instant::now()))),
            progress: shared.store.progress(),
            pending,
            congested: Vec::new(),
            shared,
        };
        tracing::debug!(client = %client_id, %peer, %version, session_present, "connected");
        if session_present {
            connection.resend_inflight();
        }
        connection.fill_from_queue();
        if connection.flush().await.is_err() {
            connection.finish(End::Lost).await;
            return None;
        }
        Some(connection)
    }

    async fn serve(
        &mut self,
        reader: &mut Reader,
        decoder: &mut Decoder,
        buf: &mut BytesMut,
        mut shutdown: watch::Receiver<bool>,
        mut deadline: Option<Instant>,
    ) -> End {
        let grace = self.keep_alive_grace();
        // Only a plain TCP connection is parked when idle.
        let park_after =
            (self.shared.config.park_after_idle()).filter(|_| matches!(reader, Reader::Tcp(..)));
        let mut gathered = 0;
        // Whether the packets just handled include a PUBLISH.
        let mut published = false;
        loop {
            // Every whole packet already buffered first: a client may send CONNECT and more
            // in one segment or WebSocket message.
            loop {
                match decoder.decode(buf) {
                    Ok(Some(packet)) => {
                        if matches!(packet, Packet::Publish(_)) && self.publish_rate.is_some() {
                            // Boxed, as wait_for_room: rare steps, kept out of every task.
                            if let Some(end) = Box::pin(self.throttle(&mut shutdown)).await {
                                return end;
                            }
                            // Waiting for the rate is not the client being silent.
                            deadline = grace.map(|g| Instant::now() + g);
                        }
                        published |= matches!(packet, Packet::Publish(_));
                        if let Some(end) = self.handle(packet) {
                            let _ = self.flush().await;
                            return end;
                        }
                        if !self.congested.is_empty() {
                            if let Some(end) = Box::pin(self.wait_for_room(&mut shutdown)).await {
                                return end;
                            }
                            // Waiting for subscribers is not the client being silent.
                            deadline = grace.map(|g| Instant::now() + g);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return self.violation(e),
                }
            }
            if buf.is_empty() && buf.capacity() > 0 {
                // Everything read is decoded: let the buffer go (the payloads it held live on
                // in their messages), so that an idle client costs no read buffer.
                *buf = BytesMut::new();
            }
            // Before waiting for the store, what has already arrived is taken in too, so one
            // wait covers many packets (a WebSocket client sends each in a message of its own).
            if self.pending != Ticket::NONE
                && gathered < MAX_GATHERED
                && let Some(read) = reader.read(buf).now_or_never()
            {
                match read {
                    Ok(None) | Err(_) => return End::Lost,
                    Ok(Some(n)) => {
                        self.received(n, grace, &mut deadline);
                        gathered += 1;
                        continue;
                    }
                }
            }
            gathered = 0;
            // The deliveries of what was just published go out before its acknowledgement, as
            // Mosquitto orders them: the subscribers' tasks it woke run first. Sent the other
            // way round, a busy client (or load generator) wakes to the PUBACK first and
            // takes its deliveries later (fan-in QoS 1 4 KiB at 10k/s: p50 and p99 a fifth
            // to a third lower; docs/benchmarks.md, the fifth run).
            if std::mem::take(&mut published) && !self.out.is_empty() {
                tokio::task::yield_now().await;
            }
            if self.send_queue().await.is_err() {
                return End::Lost;
            }
            // One timer for the keep alive and for parking, whichever comes first.
            let now = Instant::now();
            let idle = park_after.map(|p| now + p);
            let alarm = match (deadline, idle) {
                (Some(d), Some(i)) => Some(d.min(i)),
                (d, i) => d.or(i),
            };
            let far = now + Duration::from_secs(86_400);
            tokio::select! {
                read = reader.read(buf) => match read {
                    Ok(None) | Err(_) => return End::Lost,
                    Ok(Some(n)) => self.received(n, grace, &mut deadline),
                },
                () = self.waker.notified() => {
                    if self.session.lock().generation != self.generation {
                        return End::TakenOver;
                    }
                }
                () = sleep_until(alarm.unwrap_or(far)), if alarm.is_some() => {
                    if deadline.is_some_and(|d| d <= Instant::now()) {
                        return End::Violation(ReasonCode::KeepAliveTimeout, "keep alive timeout".into());
                    }
                    if buf.is_empty() && self.is_idle() {
                        return End::Park(deadline);
                    }
                }
                _ = shutdown.changed() => return End::Shutdown,
            }
        }
    }

    /// Whether a message at `qos` may go out now: QoS 0 always, QoS 1 and 2 within the
    /// client's Receive Maximum.
    fn may_send(&self, state: &SessionState, qos: QoS) -> bool {
        qos == QoS::AtMostOnce || state.inflight.len() < usize::from(self.send_quota)
    }

    fn client_max_packet(&self) -> usize {
        usize::try_from(self.client_max_packet).unwrap_or(usize::MAX)
    }

    /// Keep alive is enforced at one and a half times the client's interval [MQTT-3.1.2-22].
    fn keep_alive_grace(&self) -> Option<Duration> {
        let k = Duration::from_secs(u64::from(self.keep_alive?.get()));
        Some(k + k / 2)
    }

    /// When the client must have sent something by, counted from now.
    fn keep_alive_deadline(&self) -> Option<Instant> {
        self.keep_alive_grace().map(|g| Instant::now() + g)
    }

    /// Whether nothing is waiting to go out or for the store, nor held back: what parking
    /// needs (the session's queue is checked under its lock, by `park`).
    fn is_idle(&self) -> bool {
        self.out.is_empty()
            && self.pending == Ticket::NONE
            && self.congested.is_empty()
            && !self.writer.has_control()
    }

    /// Counts `n` bytes read; any (not a WebSocket ping alone) restart the keep alive.
    fn received(&self, n: usize, grace: Option<Duration>, deadline: &mut Option<Instant>) {
        if n > 0 {
            metrics::add(&self.shared.metrics.bytes_received, n as u64);
            *deadline = grace.map(|g| Instant::now() + g);
        }
    }

    /// Waits until the client's PUBLISH rate allows one more, not reading meanwhile (TCP
    /// flow control then slows the client down); what is queued for it still goes out first.
    async fn throttle(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<End> {
        let wait = self.publish_rate.as_mut()?.take(std::time::Instant::now());
        if wait.is_zero() {
            return None;
        }
        self.fill_from_queue();
        if self.flush().await.is_err() {
            return Some(End::Lost);
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => None,
            _ = shutdown.changed() => Some(End::Shutdown),
        }
    }

    /// Backpressure: while a subscriber's queue this client's messages went to is past its
    /// high-water mark, nothing more is read from the client (TCP flow control then slows
    /// it down). Waiting goes on as long as the subscriber takes messages; one that takes
    /// none for `max_publisher_wait` is marked stalled and holds no one back until it has
    /// caught up. The client's own deliveries and acknowledgements still go out meanwhile.
    async fn wait_for_room(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<End> {
        let wait = self.shared.config.max_publisher_wait();
        let mut give_up = Instant::now() + wait;
        let mut waiting: Vec<(Arc<Session>, u64)> = (self.congested.drain(..))
            .map(|session| {
                let taken = session.taken();
                (session, taken)
            })
            .collect();
        let shared = self.shared.clone();
        loop {
            // Registered before the check, so that a drain in between is not missed.
            let drained = shared.drained.notified();
            tokio::pin!(drained);
            drained.as_mut().enable();
            waiting.retain(|(session, _)| session.holds_back());
            if waiting.is_empty() {
                return None;
            }
            if self.send_queue().await.is_err() {
                return Some(End::Lost);
            }
            tokio::select! {
                () = &mut drained => {}
                () = self.waker.notified() => {
                    if self.session.lock().generation != self.generation {
                        return Some(End::TakenOver);
                    }
                }
                () = sleep_until(give_up) => {
                    waiting.retain_mut(|(session, taken)| {
                        let now = session.taken();
                        if now == *taken {
                            session.stall();
                            return false;
                        }
                        *taken = now;
                        true
                    });
                    give_up = Instant::now() + wait;
                }
                _ = shutdown.changed() => return Some(End::Shutdown),
            }
        }
    }

    fn violation(&self, e: DecodeError) -> End {
        metrics::add(&self.shared.metrics.protocol_errors, 1);
        End::Violation(e.reason_code(), e.to_string())
    }

    /// Handles one packet from the client; `Some` ends the connection.
    fn handle(&mut self, packet: Packet) -> Option<End> {
        match packet {
            Packet::Publish(publish) => return self.on_publish(publish),
            Packet::PubAck(ack) => self.acknowledged(ack.packet_id),
            Packet::PubRec(rec) => {
                let id = rec.packet_id;
                let known = self.session.lock().inflight.contains_key(&id.get());
                if known && rec.reason_code.is_error() {
                    // A failure PUBREC ends the flow: no PUBREL follows (§4.3.3).
                    self.acknowledged(id);
                    return None;
                }
                if known {
                    self.released(id);
                }
                let mut rel = PubRel::new(id);
                if !known && self.version.is_v5() {
                    rel.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(&Packet::PubRel(rel));
            }
            Packet::PubRel(rel) => {
                let session = self.session.clone();
                let mut state = session.lock();
                let id = rel.packet_id.get();
                let known = (state.awaiting_pubrel.as_mut()).is_some_and(|ids| ids.remove(&id));
                if known && state.persisted {
                    let client_id = self.session.client_id.clone();
                    let packet_id = rel.packet_id.get();
                    let ticket = self.shared.store.submit(Op::PubRelReceived {
                        client_id,
                        packet_id,
                    });
                    self.pending = self.pending.max(ticket);
                }
                drop(state);
                let mut comp = PubComp::new(rel.packet_id);
                if !known && self.version.is_v5() {
                    comp.reason_code = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(&Packet::PubComp(comp));
            }
            Packet::PubComp(comp) => self.acknowledged(comp.packet_id),
            Packet::Subscribe(subscribe) => self.on_subscribe(subscribe),
            Packet::Unsubscribe(unsubscribe) => self.on_unsubscribe(unsubscribe),
            Packet::PingReq => self.send(&Packet::PingResp),
            Packet::Disconnect(disconnect) => return Some(self.on_disconnect(&disconnect)),
            Packet::Connect(_) => {
                return Some(End::Violation(
                    ReasonCode::ProtocolError,
                    "[MQTT-3.1.0-2] second CONNECT".into(),
                ));
            }
            Packet::Auth(_) => {
                return Some(End::Violation(
                    ReasonCode::BadAuthenticationMethod,
                    "extended authentication is not supported".into(),
                ));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                let name = packet.packet_type();
                return Some(End::Violation(
                    ReasonCode::ProtocolError,
                    format!("a client does not send {name}"),
                ));
            }
        }
        None
    }

    fn client_info(&self) -> ClientInfo<'_> {
        ClientInfo {
            client_id: &self.session.client_id,
            username: self.username.as_deref(),
        }
    }

    fn on_disconnect(&mut self, disconnect: &Disconnect) -> End {
        let expiry = disconnect
            .properties
            .session_expiry_interval
            .filter(|_| self.version.is_v5());
        if let Some(expiry) = expiry {
            let mut state = self.session.lock();
            // Turning 0 into non-zero on DISCONNECT is a Protocol Error (§3.14.2.2.2).
            if state.expiry_interval == 0 && expiry != 0 {
                return End::Violation(
                    ReasonCode::ProtocolError,
                    "session expiry set on DISCONNECT after 0 on CONNECT".into(),
                );
            }
            state.expiry_interval = expiry;
        }
        let publish_will = disconnect.reason_code == ReasonCode::DisconnectWithWillMessage;
        End::Disconnect { publish_will }
    }

    fn on_publish(&mut self, mut publish: Publish) -> Option<End> {
        // 5.0 topic aliases (§3.3.2.3.4): a name sets the alias, an empty name uses it.
        if let Some(alias) = publish.properties().topic_alias {
            if alias.get() > self.shared.config.topic_alias_maximum {
                return Some(End::Violation(
                    ReasonCode::TopicAliasInvalid,
                    format!("topic alias {alias} above the maximum"),
                ));
            }
            if publish.topic.is_empty() {
                let aliases = self.aliases.as_ref();
                match aliases.and_then(|a| a.inbound.get(&alias.get())) {
                    Some(topic) => publish.topic = topic.clone(),
                    None => {
                        return Some(End::Violation(
                            ReasonCode::ProtocolError,
                            format!("topic alias {alias} was never set"),
                        ));
                    }
                }
            } else {
                let aliases = self.aliases.get_or_insert_default();
                aliases.inbound.insert(alias.get(), publish.topic.clone());
            }
            publish.properties_mut().topic_alias = None;
        }
        if !publish.properties().subscription_identifiers.is_empty() {
            // [MQTT-3.3.4-6]: only the server sends these.
            return Some(End::Violation(
                ReasonCode::ProtocolError,
                "[MQTT-3.3.4-6] a client PUBLISH carries a subscription identifier".into(),
            ));
        }
        metrics::add(self.shared.metrics.received(publish.qos), 1);
        if too_deep(publish.topic.as_str(), self.shared.config.max_topic_levels) {
            tracing::info!(client = %self.session.client_id, topic = %publish.topic, "publish refused: too many topic levels");
            self.refuse_publish(&publish, ReasonCode::TopicNameInvalid);
            return None;
        }
        if !self.shared.auth.publish(self.client_info(), &publish.topic) {
            tracing::info!(client = %self.session.client_id, topic = %publish.topic, "publish refused");
            self.refuse_publish(&publish, ReasonCode::NotAuthorized);
            return None;
        }
        let packet_id = publish.packet_id;
        let qos = publish.qos;
        let client = self.session.client_id.clone();
        match (qos, packet_id) {
            (QoS::AtMostOnce, _) | (_, None) => {
                let published = self.shared.publish(publish, Some(&client), Vec::new());
                self.congested.extend(published.congested);
            }
            (QoS::AtLeastOnce, Some(id)) => {
                // PUBACK goes out once the message is durable (see `flush`).
                let published = self.shared.publish(publish, Some(&client), Vec::new());
                self.congested.extend(published.congested);
                self.pending = self.pending.max(published.ticket);
                self.send(&Packet::PubAck(PubAck::new(id)));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // Delivered on the first PUBLISH; duplicates until PUBREL only re-acknowledge
                // (§4.3.3, method B).
                let mut state = self.session.lock();
                let ids = state.awaiting_pubrel.get_or_insert_default();
                let first = ids.insert(id.get());
                let over = ids.len() > usize::from(self.shared.config.receive_maximum);
                drop(state);
                if over {
                    return Some(End::Violation(
                        ReasonCode::ReceiveMaximumExceeded,
                        "more QoS 2 messages in flight than the Receive Maximum".into(),
                    ));
                }
                if first {
                    publish.dup = false;
                    // The packet identifier is kept with the message, in one write: after a
                    // crash both are there (the DUP that follows is not delivered again) or
                    // neither is (and the client, never acknowledged, sends it again).
                    let mut ops = Vec::new();
                    if self.session.lock().persisted {
                        let client_id = client.clone();
                        let packet_id = id.get();
                        ops.push(Op::AwaitPubRel {
                            client_id,
                            packet_id,
                        });
                    }
                    let published = self.shared.publish(publish, Some(&client), ops);
                    self.congested.extend(published.congested);
                    self.pending = self.pending.max(published.ticket);
                }
                self.send(&Packet::PubRec(PubRec::new(id)));
            }
        }
        None
    }

    /// Answers a PUBLISH that is dropped because the client may not publish there: 5.0
    /// clients hear why (`code`); 3.x ones have no way to, and get the usual
    /// acknowledgement (as Mosquitto does).
    fn refuse_publish(&mut self, publish: &Publish, code: ReasonCode) {
        metrics::add(&self.shared.metrics.denied, 1);
        let Some(id) = publish.packet_id else { return };
        let v5 = self.version.is_v5();
        match publish.qos {
            QoS::AtMostOnce => {}
            QoS::AtLeastOnce => {
                let mut ack = PubAck::new(id);
                ack.reason_code = code;
                self.send(&Packet::PubAck(ack));
            }
            // A failure PUBREC ends a 5.0 flow; a 3.x one goes on to PUBREL and PUBCOMP.
            QoS::ExactlyOnce if v5 => {
                let mut rec = PubRec::new(id);
                rec.reason_code = code;
                self.send(&Packet::PubRec(rec));
            }
            QoS::ExactlyOnce => {
                let mut state = self.session.lock();
                state
                    .awaiting_pubrel
                    .get_or_insert_default()
                    .insert(id.get());
                drop(state);
                self.send(&Packet::PubRec(PubRec::new(id)));
            }
        }
    }

    fn on_subscribe(&mut self, subscribe: Subscribe) {
        let mut codes = Vec::with_capacity(subscribe.subscriptions.len());
        let mut retained = Vec::new();
        for s in &subscribe.subscriptions {
            if let Err(code) = self.may_subscribe(&s.filter) {
                tracing::info!(client = %self.session.client_id, filter = %s.filter, "subscription refused: {code}");
                metrics::add(&self.shared.metrics.denied, 1);
                codes.push(code);
                continue;
            }
            let subscription = Subscription {
                options: s.options,
                id: subscribe.properties.subscription_identifier,
            };
            let existed = {
                let mut state = self.session.lock();
                state.subscriptions.insert(
                    s.filter.as_str().into(),
                    (s.filter.clone(), subscription.clone()),
                );
                drop(state);
                self.shared
                    .router()
                    .subscribe(&self.session, &s.filter, subscription.clone())
            };
            codes.push(match s.options.qos {
                QoS::AtMostOnce => ReasonCode::GRANTED_QOS_0,
                QoS::AtLeastOnce => ReasonCode::GrantedQos1,
                QoS::ExactlyOnce => ReasonCode::GrantedQos2,
            });
            // Retained messages: never for shared subscriptions (§4.8.2), else per Retain Handling.
            let send_retained = !s.filter.is_shared()
                && match s.options.retain_handling {
                    RetainHandling::SendAtSubscribe => true,
                    RetainHandling::SendAtSubscribeIfNew => !existed,
                    RetainHandling::DoNotSend => false,
                };
            if send_retained {
                for message in self.shared.retained_matching(&s.filter) {
                    retained.push(Outgoing {
                        qos: s.options.qos.min(message.publish.qos),
                        retain: true,
                        subscription_ids: subscription.id.into_iter().collect(),
                        message,
                        key: None,
                    });
                }
            }
        }
        let ack = SubAck {
            packet_id: subscribe.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        };
        let ticket = self.shared.save_session(&self.session, false);
        self.pending = self.pending.max(ticket);
        self.send(&Packet::SubAck(ack));
        self.shared.deliver_retained(&self.session, retained);
    }

    /// Whether the client may add a subscription to `filter`: the topic level and
    /// subscription limits, then the auth hook.
    fn may_subscribe(&self, filter: &midge_codec::TopicFilter) -> Result<(), ReasonCode> {
        let config = &self.shared.config;
        if too_deep(filter.filter(), config.max_topic_levels) {
            return Err(ReasonCode::TopicFilterInvalid);
        }
        if config.max_subscriptions > 0 {
            let state = self.session.lock();
            let replacing = state.subscriptions.contains_key(filter.as_str());
            if !replacing && state.subscriptions.len() >= config.max_subscriptions {
                return Err(ReasonCode::QuotaExceeded);
            }
        }
        if !self.shared.auth.subscribe(self.client_info(), filter) {
            return Err(ReasonCode::NotAuthorized);
        }
        Ok(())
    }

    fn on_unsubscribe(&mut self, unsubscribe: Unsubscribe) {
        let mut codes = Vec::with_capacity(unsubscribe.filters.len());
        for filter in &unsubscribe.filters {
            self.session.lock().subscriptions.remove(filter.as_str());
            let existed = self
                .shared
                .router()
                .unsubscribe(&self.session.client_id, filter);
            codes.push(if existed {
                ReasonCode::Success
            } else {
                ReasonCode::NoSubscriptionExisted
            });
        }
        let ack = UnsubAck {
            packet_id: unsubscribe.packet_id,
            reason_codes: codes,
            properties: AckProperties::default(),
        };
        let ticket = self.shared.save_session(&self.session, false);
        self.pending = self.pending.max(ticket);
        self.send(&Packet::UnsubAck(ack));
    }

    /// Moves queued messages into flight, as far as the client's Receive Maximum allows.
    fn fill_from_queue(&mut self) {
        self.fill_up_to(usize::MAX);
    }

    /// [`Self::fill_from_queue`] until `out` holds `limit` bytes or more; whether it stopped
    /// there with messages still to send.
    fn fill_up_to(&mut self, limit: usize) -> bool {
        let session = self.session.clone();
        let mut state = session.lock();
        // Taken over: the new connection owns the queue and has resent what was in flight;
        // taking more here would strand it on a dead connection.
        if state.generation != self.generation {
            return false;
        }
        while let Some(message) = state.queue.front() {
            if self.out.len() >= limit {
                self.wake_publishers(&mut state);
                return true;
            }
            let needs_id = message.qos != QoS::AtMostOnce;
            if !self.may_send(&state, message.qos) {
                break;
            }
            let Some(message) = state.queue.pop_front(&self.shared.queued_bytes) else {
                break;
            };
            // [MQTT-3.3.2-5]: an expired message is not delivered.
            if message.message.is_expired(std::time::Instant::now()) {
                self.forget(&state, message.key);
                continue;
            }
            let client = ClientInfo {
                client_id: &session.client_id,
                username: self.username.as_deref(),
            };
            if !self
                .shared
                .auth
                .receive(client, &message.message.publish.topic)
            {
                self.forget(&state, message.key);
                continue;
            }
            let packet_id = needs_id.then(|| state.next_packet_id());
            if let Some(id) = packet_id {
                if let (Some(key), true) = (message.key, state.persisted) {
                    let op = Op::Inflight {
                        client_id: session.client_id.clone(),
                        key,
                        packet_id: id.get(),
                        released: false,
                    };
                    let ticket = self.shared.store.submit(op);
                    // QoS 2 goes out under a packet identifier the store keeps, so that
                    // after a crash the same one comes again and a receiver that delivers
                    // on PUBLISH can tell. A QoS 1 message whose identifier was lost is
                    // only sent again under a new one, which QoS 1 allows: it does not wait.
                    if message.qos == QoS::ExactlyOnce {
                        self.pending = self.pending.max(ticket);
                    }
                }
                state
                    .inflight
                    .insert(id.get(), Inflight::Sent(message.clone()));
            }
            let publish = outgoing_publish(&message, packet_id, false, self.version);
            self.send_publish(publish);
        }
        self.wake_publishers(&mut state);
        false
    }

    /// After messages left the queue: publishers held back by it go on once it has drained.
    fn wake_publishers(&self, state: &mut SessionState) {
        if state.drained(self.shared.limits()) {
            self.shared.drained.notify_waiters();
        }
    }

    /// After a reconnect with a session present: the unacknowledged, again (§4.4).
    fn resend_inflight(&mut self) {
        let inflight: Vec<(u16, Inflight)> = self
            .session
            .lock()
            .inflight
            .iter()
            .map(|(id, f)| (*id, f.clone()))
            .collect();
        for (id, flight) in inflight {
            let Some(id) = PacketId::new(id) else {
                continue;
            };
            match flight {
                Inflight::Sent(message) => {
                    let publish = outgoing_publish(&message, Some(id), true, self.version);
                    self.send_publish(publish);
                }
                Inflight::Released(_) => self.send(&Packet::PubRel(PubRel::new(id))),
            }
        }
    }

    /// PUBACK, PUBCOMP or a failure PUBREC: the flow of packet `id` is over.
    fn acknowledged(&mut self, id: PacketId) {
        let session = self.session.clone();
        let mut state = session.lock();
        let key = match state.inflight.remove(&id.get()) {
            Some(Inflight::Sent(message)) => message.key,
            Some(Inflight::Released(key)) => key,
            None => None,
        };
        self.forget(&state, key);
    }

    /// PUBREC: the message of packet `id` has arrived; PUBREL follows.
    fn released(&mut self, id: PacketId) {
        let session = self.session.clone();
        let mut state = session.lock();
        let key = match state.inflight.get(&id.get()) {
            Some(Inflight::Sent(message)) => message.key,
            Some(Inflight::Released(key)) => *key,
            None => return,
        };
        state.inflight.insert(id.get(), Inflight::Released(key));
        if let (Some(key), true) = (key, state.persisted) {
            let op = Op::Inflight {
                client_id: self.session.client_id.clone(),
                key,
                packet_id: id.get(),
                released: true,
            };
            self.pending = self.pending.max(self.shared.store.submit(op));
        }
    }

    /// The store forgets a message that is done with (`state` is the session's, locked).
    /// Nothing waits for it: lost in a crash, the message is only sent again (QoS 1), or
    /// its PUBREL is (QoS 2), which the client answers without delivering anything.
    fn forget(&self, state: &SessionState, key: Option<u64>) {
        if let (Some(key), true) = (key, state.persisted) {
            let client_id = self.session.client_id.clone();
            self.shared.store.submit(Op::Forget { client_id, key });
        }
    }

    fn send_publish(&mut self, mut publish: Publish) {
        self.alias_topic(&mut publish);
        // [MQTT-3.1.2-25]: a message too large for the client is dropped, as if sent.
        if publish.encoded_len(self.version) > self.client_max_packet() {
            metrics::add(&self.shared.metrics.messages_dropped, 1);
            return;
        }
        metrics::add(self.shared.metrics.sent(publish.qos), 1);
        if let Err(e) = self.out.publish(&publish, self.version) {
            tracing::warn!(client = %self.session.client_id, "cannot send: {e}");
        }
    }

    /// 5.0 topic aliases towards the client, within its Topic Alias Maximum: the first
    /// message to a topic sets an alias, later ones send it with an empty topic name. Once
    /// the client's aliases are used up, other topics go out in full.
    fn alias_topic(&mut self, publish: &mut Publish) {
        if self.aliases_out_max == 0 {
            return;
        }
        let aliases = &mut self.aliases.get_or_insert_default().outbound;
        let alias = match aliases.get(&publish.topic) {
            Some(&alias) => {
                publish.topic = TopicName::empty_for_alias();
                alias
            }
            None => {
                let next = u16::try_from(aliases.len() + 1)
                    .ok()
                    .filter(|&n| n <= self.aliases_out_max);
                let Some(alias) = next.and_then(PacketId::new) else {
                    return;
                };
                aliases.insert(publish.topic.clone(), alias);
                alias
            }
        };
        publish.properties_mut().topic_alias = Some(alias);
    }

    fn send(&mut self, packet: &Packet) {
        if let Err(e) = self.out.packet(packet, self.version) {
            tracing::warn!(client = %self.session.client_id, "cannot send {}: {e}", packet.packet_type());
        }
    }

    /// Sends what `out` holds and what the queue does, in writes of at most FLUSH_BYTES: one
    /// write (or one WebSocket frame) of a whole deep queue held megabytes per client.
    async fn send_queue(&mut self) -> std::io::Result<()> {
        loop {
            let more = self.fill_up_to(FLUSH_BYTES);
            self.flush().await?;
            if !more {
                return Ok(());
            }
        }
    }

    /// Sends what `out` holds, once every store write it depends on is durable.
    async fn flush(&mut self) -> std::io::Result<()> {
        if self.out.is_empty() && !self.writer.has_control() {
            return Ok(());
        }
        let ticket = std::mem::take(&mut self.pending);
        if let (Some(progress), true) = (&mut self.progress, ticket != Ticket::NONE)
            && let Err(e) = store::durable(progress, ticket).await
        {
            // Nothing that waits for the store may go out: the client will send again.
            self.out.clear();
            return Err(std::io::Error::other(e.0));
        }
        let outgoing = self.out.take();
        metrics::add(&self.shared.metrics.bytes_sent, outgoing.len() as u64);
        self.writer.write(&outgoing).await
    }

    /// Closes the connection the way `end` requires: DISCONNECT to 5.0 clients where the
    /// server ends it, the will where the client did not end it cleanly, session expiry.
    async fn finish(mut self, end: End) {
        let reason = match &end {
            End::Violation(code, why) => {
                tracing::info!(client = %self.session.client_id, peer = %self.peer, "closing: {why}");
                Some(*code)
            }
            End::TakenOver => Some(ReasonCode::SessionTakenOver),
            End::Shutdown => Some(ReasonCode::ServerShuttingDown),
            End::Disconnect { .. } | End::Lost | End::Park(_) => None,
        };
        if matches!(end, End::Shutdown) {
            // Whatever the client's window takes from its queue goes out before we leave.
            self.fill_from_queue();
        }
        if let (Some(code), true) = (reason, self.version.is_v5()) {
            let mut disconnect = Disconnect::new(code);
            // Say why, in words, where the client can take the extra bytes (§3.14.2.2.3).
            if let End::Violation(_, why) = &end {
                disconnect.properties.reason_string = ByteStr::try_from(why.as_str()).ok();
                if disconnect.encoded_len(self.version) > self.client_max_packet() {
                    disconnect.properties.reason_string = None;
                }
            }
            self.send(&Packet::from(disconnect));
        }
        let _ = self.flush().await;
        self.writer.close().await;
        let clean = matches!(
            end,
            End::Disconnect {
                publish_will: false
            }
        );
        let taken_over = matches!(end, End::TakenOver);
        if let (Some(will), false) = (self.will.take(), clean) {
            self.schedule_will(*will, taken_over);
        }
        if taken_over {
            return;
        }
        let expiry = {
            let mut state = self.session.lock();
            if state.generation != self.generation {
                return;
            }
            state.waker = None;
            // Under the lock: a new connection that has taken the session over since has
            // also changed the generation, so it is not marked disconnected here.
            self.session.set_connected(false);
            state.expiry_interval
        };
        // Publishers held back by this client's queue go on.
        self.shared.drained.notify_waiters();
        tracing::debug!(client = %self.session.client_id, ?end, "disconnected");
        match expiry {
            0 => self.shared.end_session(&self.session),
            seconds => {
                // The store learns when the client left, so a restart keeps the expiry.
                self.shared.save_session(&self.session, true);
                if seconds != u32::MAX {
                    let wait = Duration::from_secs(u64::from(seconds));
                    self.shared
                        .expire_later(&self.session, self.generation, wait);
                }
            }
        }
    }
}

impl Connection {
    /// Publishes the will now, or (5.0) after its Will Delay Interval unless the client
    /// connects again first; never later than the session ends (§3.1.3.2.2).
    fn schedule_will(&self, will: Will, taken_over: bool) {
        let delay = will.properties.will_delay_interval.unwrap_or(0);
        let expiry = self.session.lock().expiry_interval;
        let wait = delay.min(expiry);
        if wait == 0 {
            // A new connection before the delay elapsed cancels a delayed will.
            if !(taken_over && delay > 0) {
                publish_will(&self.shared, will, &self.session.client_id);
            }
            return;
        }
        let (shared, session, generation) =
            (self.shared.clone(), self.session.clone(), self.generation);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(wait))).await;
            if session.lock().generation == generation {
                publish_will(&shared, will, &session.client_id);
            }
        });
    }
}

/// The PUBLISH a subscriber receives for `outgoing`: the original's topic, payload and
/// properties (less its topic alias), with this subscriber's QoS, RETAIN flag, packet
/// identifier and subscription identifiers, and the expiry interval left.
fn outgoing_publish(
    outgoing: &Outgoing,
    packet_id: Option<PacketId>,
    dup: bool,
    version: ProtocolVersion,
) -> Publish {
    let original = &outgoing.message.publish;
    let mut publish = Publish {
        dup,
        qos: outgoing.qos,
        retain: outgoing.retain,
        topic: original.topic.clone(),
        packet_id,
        payload: original.payload.clone(),
        properties: None,
    };
    if version.is_v5() && (original.properties.is_some() || !outgoing.subscription_ids.is_empty()) {
        let mut properties = original.properties().clone();
        properties.topic_alias = None;
        properties
            .subscription_identifiers
            .clone_from(&outgoing.subscription_ids);
        properties.message_expiry_interval =
            outgoing.message.remaining_secs(Instant::now().into_std());
        publish.properties = Some(Box::new(properties));
    }
    publish
}

fn publish_will(shared: &Shared, will: Will, client: &str) {
    let mut publish = Publish::new(will.topic, will.payload);
    publish.qos = will.qos;
    publish.retain = will.retain;
    let p = will.properties;
    if p.payload_format_indicator.is_some()
        || p.message_expiry_interval.is_some()
        || p.content_type.is_some()
        || p.response_topic.is_some()
        || p.correlation_data.is_some()
        || !p.user_properties.is_empty()
    {
        let properties = publish.properties_mut();
        properties.payload_format_indicator = p.payload_format_indicator;
        properties.message_expiry_interval = p.message_expiry_interval;
        properties.content_type = p.content_type;
        properties.response_topic = p.response_topic;
        properties.correlation_data = p.correlation_data;
        properties.user_properties = p.user_properties;
    }
    tracing::debug!(client, topic = %publish.topic, "publishing will");
    // No one is left to hold back.
    let _ = shared.publish(publish, Some(client), Vec::new());
}

/// Asks the auth hook about a CONNECT on a blocking thread (checking a password hash takes
/// memory and milliseconds), at most as many at once as there are CPUs, within the connect
/// timeout: a flood of logins slows logins, not the clients already connected.
async fn authenticate(
    shared: &Arc<Shared>,
    connect: Connect,
    certified: bool,
) -> Result<Connect, ReasonCode> {
    let auth = shared.auth.clone();
    let check = async {
        // The permit goes with the check: it is released when the check ends, even if the
        // client has given up waiting by then.
        let permit = shared.auth_permits.clone().acquire_owned().await.ok()?;
        let verdict = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let verdict = if certified {
                auth.connect_certified(&connect)
            } else {
                auth.connect(&connect)
            };
            verdict.map(|()| connect)
        });
        verdict.await.ok()
    };
    match timeout(shared.config.connect_timeout(), check).await {
        Ok(Some(verdict)) => verdict,
        // The check panicked, or logins are queued beyond the connect timeout.
        _ => Err(ReasonCode::ServerBusy),
    }
}

/// A will is a publish the client asks for in advance: the same limits and rules apply,
/// and a refused one refuses the connection (as Mosquitto does).
fn will_allowed(shared: &Shared, connect: &Connect, client_id: &str) -> Result<(), ReasonCode> {
    let Some(will) = &connect.will else {
        return Ok(());
    };
    if too_deep(will.topic.as_str(), shared.config.max_topic_levels) {
        return Err(ReasonCode::TopicNameInvalid);
    }
    let client = ClientInfo {
        client_id,
        username: connect.username.as_deref(),
    };
    if !shared.auth.publish(client, &will.topic) {
        return Err(ReasonCode::NotAuthorized);
    }
    Ok(())
}

/// Whether a topic name or filter has more than `max` levels (0: no limit).
fn too_deep(topic: &str, max: usize) -> bool {
    max > 0 && topic.split('/').nth(max).is_some()
}

/// A suffix for assigned client identifiers: unique within this process and unlikely to
/// repeat across restarts.
fn unique_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!("{nanos:08x}{n:x}")
}
