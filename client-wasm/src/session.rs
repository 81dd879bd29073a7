//! The client side of MQTT, with no I/O and no clock: connection handshake, keep alive,
//! QoS 0/1/2 in both directions, the inflight window, topic aliases both ways,
//! redelivery after reconnecting, an offline queue and resubscription.
//!
//! # Driving a [`Session`]
//!
//! Time is milliseconds on any monotonic clock, passed in as `now` (in the browser,
//! `performance.now()`); the session never reads a clock itself, so it runs unchanged in a
//! browser, a worker or a native test.
//!
//! 1. Feed it: [`Session::start`] when a transport is open, [`Session::handle_bytes`] with what
//!    arrives, [`Session::handle_timeout`] once [`Session::poll_timeout`] has passed, and
//!    [`Session::transport_closed`] when the transport goes. Commands ([`Session::publish`],
//!    [`Session::subscribe`], [`Session::unsubscribe`], [`Session::disconnect`]) may come at
//!    any time, connected or not.
//! 2. Then drain it: [`Session::poll_transmit`] until `None`, writing each buffer to the
//!    transport; [`Session::poll_event`] until `None`; and arm a timer for
//!    [`Session::poll_timeout`].
//!
//! The session outlives connections: after `transport_closed`, open a new transport and call
//! `start` again; what was in flight is sent again (with DUP where the server kept the
//! session) and what was queued offline goes out.

use alloc::{borrow::ToOwned, boxed::Box, string::String, vec, vec::Vec};
use core::num::NonZeroU16;

use bytes::{Bytes, BytesMut};
use midge_codec::properties::{ConnectProperties, SubscribeProperties};
use midge_codec::{
    ByteStr, ConnAck, Connect, DecodeError, Decoder, Disconnect, Encode, EncodeError, Packet,
    PacketId, PacketType, ProtocolVersion, PubAck, PubRec, Publish, QoS, ReasonCode, Subscribe,
    Subscription, TopicFilter, TopicName, UnsubAck, Unsubscribe, Will, encode_ack,
};

use crate::fifo::Fifo;
use crate::text::{cat, decimal, written};

/// Identifies a command, so its outcome can be matched to it (a Promise, in the shell).
pub type Token = u64;

/// The token of the SUBSCRIBEs the session sends itself to restore subscriptions.
const RESUBSCRIBE: Token = Token::MAX;

/// How to connect.
#[derive(Clone, Debug)]
pub struct Options {
    /// The client identifier; empty asks the server for one (kept for reconnecting).
    pub client_id: String,
    /// MQTT 3.1.1 or 5.0.
    pub version: ProtocolVersion,
    /// Clean start on the first connection. Reconnections always resume the session.
    pub clean_start: bool,
    /// Keep alive in seconds; 0 turns it off.
    pub keep_alive: u16,
    /// The user name.
    pub username: Option<String>,
    /// The password.
    pub password: Option<Bytes>,
    /// The will message, published by the server if the connection ends abnormally.
    pub will: Option<Will>,
    /// 5.0 CONNECT properties (Session Expiry Interval, Receive Maximum, ...).
    pub properties: ConnectProperties,
    /// How long to wait for CONNACK, and for PINGRESP, before giving the connection up.
    pub response_timeout_ms: u64,
    /// How many messages may wait while disconnected; more are refused.
    pub max_offline_queue: usize,
    /// 5.0: send topics through topic aliases (§3.3.2.3.4), as many as the server's Topic
    /// Alias Maximum allows, assigned to topics in the order first published on each
    /// connection (MQTT.js's `autoAssignTopicAlias`).
    pub auto_assign_topic_alias: bool,
}

impl Options {
    /// 5.0, clean start, a 60 s keep alive, 10 s response timeout, 1000 queued messages.
    pub fn new(client_id: impl Into<String>) -> Self {
        Options {
            client_id: client_id.into(),
            version: ProtocolVersion::V5,
            clean_start: true,
            keep_alive: 60,
            username: None,
            password: None,
            will: None,
            properties: ConnectProperties::default(),
            response_timeout_ms: 10_000,
            max_offline_queue: 1000,
            auto_assign_topic_alias: false,
        }
    }
}

/// What happened, for the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Event {
    /// The server accepted the connection.
    Connected {
        /// Whether the server resumed our session.
        session_present: bool,
        /// The CONNACK, with the server's limits.
        connack: Box<ConnAck>,
    },
    /// A message arrived (topic aliases already resolved).
    Message(Publish),
    /// A publish completed: at once for QoS 0, on PUBACK for 1, on PUBCOMP for 2.
    Published {
        /// The publish's token.
        token: Token,
        /// Its outcome.
        result: Result<(), Failure>,
    },
    /// A SUBSCRIBE was answered: one reason code per filter (granted QoS or failure).
    Subscribed {
        /// The subscribe's token.
        token: Token,
        /// One per filter, in order.
        reason_codes: Vec<ReasonCode>,
    },
    /// An UNSUBSCRIBE was answered (5.0: one reason code per filter; empty before 5.0).
    Unsubscribed {
        /// The unsubscribe's token.
        token: Token,
        /// 5.0: one per filter, in order.
        reason_codes: Vec<ReasonCode>,
    },
    /// The connection is over; the session stays, for the next `start`.
    Closed(Closed),
}

/// Why a command failed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// The server refused it with this reason code.
    Refused(ReasonCode),
    /// It cannot be sent: too large for the server, or not valid in this protocol version.
    Invalid(String),
    /// The offline queue is full.
    QueueFull,
}

/// Why a connection ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Closed {
    /// The server refused the CONNECT.
    Refused(ReasonCode),
    /// The server sent DISCONNECT (5.0), with this reason.
    ByServer(ReasonCode),
    /// No CONNACK or PINGRESP within the response timeout.
    Timeout,
    /// The server broke the protocol; 5.0 servers were told so.
    ProtocolError(String),
    /// The transport closed.
    TransportClosed,
    /// [`Session::disconnect`] was called.
    Requested,
}

/// A QoS 1 or 2 publish of ours, not yet completed.
#[derive(Clone, Debug)]
struct Outgoing {
    token: Token,
    publish: Publish,
}

#[derive(Clone, Debug)]
enum Flight {
    /// Sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent(Outgoing),
    /// QoS 2: PUBREL sent, waiting for PUBCOMP.
    Released(Token),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Link {
    Down,
    /// CONNECT sent; CONNACK due by this time.
    Connecting {
        deadline: u64,
    },
    Up,
}

/// One client's MQTT session: see the module documentation for how to drive it.
#[derive(Debug)]
pub struct Session {
    /// Boxed: the session is moved into place as it is made, and a boxed copy of the
    /// options (the will, the CONNECT properties) is moved as one pointer.
    options: Box<Options>,
    link: Link,
    decoder: Decoder,
    inbox: BytesMut,
    transmit: BytesMut,
    events: Fifo<Event>,
    next_token: Token,
    next_packet_id: u16,
    /// QoS 1/2 publishes waiting for the window or a connection, and QoS 0 ones while offline.
    queue: Fifo<Outgoing>,
    /// QoS 1/2 publishes sent and not yet complete, by packet identifier, in the order sent
    /// (so they are sent again in that order): a plain `Vec`, searched from the oldest.
    inflight: Vec<(u16, Flight)>,
    /// Inbound QoS 2 identifiers whose PUBREL has not come yet.
    /// A plain `Vec`: each is put in and taken out once, a walk either way (as the memmove
    /// of a sorted one would be).
    awaiting_pubrel: Vec<u16>,
    /// What we are subscribed to, to subscribe again when the server lost the session.
    /// With the properties of the SUBSCRIBE that made each (its subscription identifier).
    /// One entry per filter, in the order first subscribed; a plain `Vec`, searched by the
    /// filter the subscription holds (no key copied out of it, no map type of its own).
    subscriptions: Vec<(Subscription, SubscribeProperties)>,
    /// SUBSCRIBEs and UNSUBSCRIBEs not yet answered, in the order made: plain `Vec`s
    /// searched by the packet identifier each packet holds (no map type of their own).
    pending_subscribe: Vec<(Token, Subscribe)>,
    pending_unsubscribe: Vec<(Token, Unsubscribe)>,
    /// The server's Receive Maximum: how many QoS 1/2 publishes may be in flight.
    send_quota: usize,
    server_max_packet: usize,
    keep_alive_ms: u64,
    last_sent: u64,
    ping_sent: Option<u64>,
    /// Topic aliases the server set up towards us.
    /// A plain `Vec` searched from end to end (no more than the few the server uses).
    aliases: Vec<(u16, TopicName)>,
    /// Topic aliases we set up towards the server on this connection: alias `i + 1` stands
    /// for `sent_aliases[i]`. A plain `Vec`, no longer than the server's Topic Alias Maximum.
    sent_aliases: Vec<TopicName>,
    /// How many topic aliases we may set up on this connection (0: we send none).
    sent_alias_maximum: u16,
    connected_once: bool,
}

impl Session {
    /// A session that will connect with `options`; nothing happens until [`Session::start`].
    pub fn new(options: Options) -> Self {
        Session {
            decoder: Decoder::new(options.version),
            keep_alive_ms: u64::from(options.keep_alive) * 1000,
            options: Box::new(options),
            link: Link::Down,
            inbox: BytesMut::new(),
            transmit: BytesMut::new(),
            events: Fifo::new(),
            next_token: 0,
            next_packet_id: 0,
            queue: Fifo::new(),
            inflight: Vec::new(),
            awaiting_pubrel: Vec::new(),
            subscriptions: Vec::new(),
            pending_subscribe: Vec::new(),
            pending_unsubscribe: Vec::new(),
            send_quota: usize::from(u16::MAX),
            server_max_packet: usize::MAX,
            last_sent: 0,
            ping_sent: None,
            aliases: Vec::new(),
            sent_aliases: Vec::new(),
            sent_alias_maximum: 0,
            connected_once: false,
        }
    }

    /// Whether the server has accepted the current connection.
    pub fn is_connected(&self) -> bool {
        self.link == Link::Up
    }

    // ----- inputs -------------------------------------------------------------------------

    /// A transport is open: sends CONNECT.
    pub fn start(&mut self, now: u64) {
        self.link = Link::Connecting {
            deadline: now + self.options.response_timeout_ms,
        };
        self.decoder = Decoder::new(self.options.version);
        self.inbox.clear();
        self.transmit.clear();
        self.aliases.clear();
        // Topic aliases belong to one network connection (§3.3.2.3.4).
        self.sent_aliases.clear();
        self.ping_sent = None;
        let connect = self.connect_packet();
        self.send(now, &connect);
    }

    /// Bytes arrived from the transport.
    pub fn handle_bytes(&mut self, now: u64, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
        while self.link != Link::Down {
            match self.decoder.decode_from_server(&mut self.inbox) {
                Ok(Some(packet)) => self.handle_packet(now, packet),
                Ok(None) => break,
                Err(e) => self.protocol_error(now, &e),
            }
        }
    }

    /// Time passed: sends PINGREQ when due, gives up on a silent server.
    pub fn handle_timeout(&mut self, now: u64) {
        match self.link {
            Link::Connecting { deadline } if now >= deadline => self.close(Closed::Timeout),
            Link::Up => match self.ping_sent {
                Some(sent) if now >= sent + self.options.response_timeout_ms => {
                    self.close(Closed::Timeout);
                }
                None if self.keep_alive_ms > 0 && now >= self.last_sent + self.keep_alive_ms => {
                    self.send(now, &PingReq);
                    self.ping_sent = Some(now);
                }
                _ => {}
            },
            _ => {}
        }
    }

    /// The transport closed, or failed.
    pub fn transport_closed(&mut self) {
        if self.link != Link::Down {
            self.close(Closed::TransportClosed);
        }
    }

    // ----- commands -----------------------------------------------------------------------

    /// Publishes a message. QoS 0 completes once written; QoS 1 and 2 when acknowledged.
    /// While disconnected it waits in the offline queue.
    pub fn publish(&mut self, now: u64, mut publish: Publish) -> Token {
        let token = self.token();
        publish.packet_id = None;
        publish.dup = false;
        if let Err(failure) = self.check_sendable(&mut publish) {
            self.events.push_back(Event::Published {
                token,
                result: Err(failure),
            });
            return token;
        }
        if self.queue.len() >= self.options.max_offline_queue && !self.is_connected() {
            self.events.push_back(Event::Published {
                token,
                result: Err(Failure::QueueFull),
            });
            return token;
        }
        self.queue.push_back(Outgoing { token, publish });
        self.pump(now);
        token
    }

    /// Subscribes; answered by [`Event::Subscribed`]. Sent at once when connected, else on
    /// connecting.
    pub fn subscribe(&mut self, now: u64, subscriptions: Vec<Subscription>) -> Token {
        self.subscribe_with(now, subscriptions, SubscribeProperties::default())
    }

    /// [`Session::subscribe`] with 5.0 properties (a subscription identifier, user
    /// properties); they are left out before 5.0.
    pub fn subscribe_with(
        &mut self,
        now: u64,
        subscriptions: Vec<Subscription>,
        properties: SubscribeProperties,
    ) -> Token {
        let token = self.token();
        let packet_id = self.packet_id();
        let subscribe = Subscribe {
            packet_id,
            subscriptions,
            properties,
        };
        if self.is_connected() {
            self.send(now, &subscribe);
        }
        self.pending_subscribe.push((token, subscribe));
        token
    }

    /// Unsubscribes; answered by [`Event::Unsubscribed`].
    pub fn unsubscribe(&mut self, now: u64, filters: Vec<TopicFilter>) -> Token {
        let token = self.token();
        let packet_id = self.packet_id();
        self.subscriptions
            .retain(|(subscription, _)| !filters.contains(&subscription.filter));
        let unsubscribe = Unsubscribe {
            packet_id,
            filters,
            properties: Default::default(),
        };
        if self.is_connected() {
            self.send(now, &unsubscribe);
        }
        self.pending_unsubscribe.push((token, unsubscribe));
        token
    }

    /// Ends the connection cleanly (the will is not published). The session stays.
    pub fn disconnect(&mut self, now: u64) {
        if self.link != Link::Down {
            self.send(now, &Disconnect::default());
            self.close(Closed::Requested);
        }
    }

    // ----- outputs ------------------------------------------------------------------------

    /// Bytes to write to the transport, one buffer for everything pending.
    pub fn poll_transmit(&mut self) -> Option<Bytes> {
        (!self.transmit.is_empty()).then(|| self.transmit.split().freeze())
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] should be called next, if ever.
    pub fn poll_timeout(&self) -> Option<u64> {
        match self.link {
            Link::Connecting { deadline } => Some(deadline),
            Link::Up => match self.ping_sent {
                Some(sent) => Some(sent + self.options.response_timeout_ms),
                None => (self.keep_alive_ms > 0).then(|| self.last_sent + self.keep_alive_ms),
            },
            Link::Down => None,
        }
    }

    // ----- the protocol -------------------------------------------------------------------

    fn connect_packet(&self) -> Connect {
        let mut connect = Connect::new(
            self.options.version,
            ByteStr::try_from(self.options.client_id.as_str()).unwrap_or_default(),
        );
        // The first connection may start clean; later ones resume what we have.
        connect.clean_start = self.options.clean_start && !self.connected_once;
        connect.keep_alive = self.options.keep_alive;
        connect.username = self
            .options
            .username
            .as_deref()
            .and_then(|u| ByteStr::try_from(u).ok());
        connect.password.clone_from(&self.options.password);
        connect.will.clone_from(&self.options.will);
        connect.properties.clone_from(&self.options.properties);
        connect
    }

    fn handle_packet(&mut self, now: u64, packet: Packet) {
        match packet {
            Packet::ConnAck(ack) => self.on_connack(now, ack),
            Packet::Publish(publish) => self.on_publish(now, publish),
            Packet::PubAck(ack) => self.on_puback(now, &ack),
            Packet::PubRec(rec) => self.on_pubrec(now, &rec),
            Packet::PubRel(rel) => {
                let mut reason = ReasonCode::Success;
                let awaited = self.awaiting_pubrel.len();
                let id = rel.packet_id.get();
                self.awaiting_pubrel.retain(|&a| a != id);
                if self.awaiting_pubrel.len() == awaited && self.v5() {
                    reason = ReasonCode::PacketIdentifierNotFound;
                }
                self.send_ack(now, PacketType::PubComp, rel.packet_id, reason);
            }
            Packet::PubComp(comp) => {
                let found = self.in_flight(comp.packet_id);
                if let Some((_, Flight::Released(token))) = found.map(|i| self.inflight.remove(i)) {
                    self.events.push_back(Event::Published {
                        token,
                        result: Ok(()),
                    });
                }
                self.pump(now);
            }
            Packet::SubAck(ack) => self.on_suback(ack.packet_id, ack.reason_codes),
            Packet::UnsubAck(ack) => self.on_unsuback(ack),
            Packet::PingResp => self.ping_sent = None,
            Packet::Disconnect(d) => self.close(Closed::ByServer(d.reason_code)),
            Packet::Auth(_) => {
                self.violation(
                    now,
                    ReasonCode::ProtocolError,
                    "AUTH without an authentication method",
                );
            }
            Packet::Connect(_)
            | Packet::Subscribe(_)
            | Packet::Unsubscribe(_)
            | Packet::PingReq => {
                let what = cat(&["a server does not send ", packet.packet_type().name()]);
                self.violation(now, ReasonCode::ProtocolError, &what);
            }
        }
    }

    /// The CONNACK stays in the box it was decoded into, and goes out in the event so.
    fn on_connack(&mut self, now: u64, ack: Box<ConnAck>) {
        if !matches!(self.link, Link::Connecting { .. }) {
            return self.violation(now, ReasonCode::ProtocolError, "a second CONNACK");
        }
        if ack.reason_code.is_error() {
            return self.close(Closed::Refused(ack.reason_code));
        }
        self.link = Link::Up;
        let p = &ack.properties;
        self.send_quota = p
            .receive_maximum
            .map_or(usize::from(u16::MAX), |r| usize::from(r.get()));
        self.server_max_packet = p
            .maximum_packet_size
            .map_or(usize::MAX, |m| m.get() as usize);
        self.sent_alias_maximum = 0;
        if self.options.auto_assign_topic_alias {
            self.sent_alias_maximum = p.topic_alias_maximum.unwrap_or(0);
        }
        if let Some(keep_alive) = p.server_keep_alive {
            self.keep_alive_ms = u64::from(keep_alive) * 1000;
        }
        if let Some(id) = &p.assigned_client_identifier {
            // Reconnections must name the session the server made for us.
            self.options.client_id = id.as_str().to_owned();
        }
        self.connected_once = true;
        let session_present = ack.session_present;
        if session_present {
            self.resend_inflight(now);
        } else {
            self.restart_session(now);
        }
        self.events.push_back(Event::Connected {
            session_present,
            connack: ack,
        });
        self.pump(now);
    }

    /// The server kept our session: what it has not acknowledged goes again (§4.4).
    fn resend_inflight(&mut self, now: u64) {
        // Taken out while it is walked, as `send` borrows the session.
        let mut inflight = core::mem::take(&mut self.inflight);
        for (id, flight) in &mut inflight {
            let Some(id) = PacketId::new(*id) else {
                continue;
            };
            match flight {
                Flight::Sent(outgoing) => {
                    // DUP on this copy only: it is sent anew when the session is lost.
                    outgoing.publish.dup = true;
                    self.send_publish(now, &mut outgoing.publish);
                    outgoing.publish.dup = false;
                }
                Flight::Released(_) => {
                    self.send_ack(now, PacketType::PubRel, id, ReasonCode::Success)
                }
            }
        }
        self.inflight = inflight;
        self.resend_pending(now);
    }

    /// The server has no session for us: unacknowledged messages start again as new ones,
    /// a QoS 2 message already received by the server is complete, and every subscription
    /// is made again.
    fn restart_session(&mut self, now: u64) {
        let flights = core::mem::take(&mut self.inflight);
        for (_, flight) in flights.into_iter().rev() {
            match flight {
                Flight::Sent(mut outgoing) => {
                    outgoing.publish.packet_id = None;
                    outgoing.publish.dup = false;
                    self.queue.push_front(outgoing);
                }
                Flight::Released(token) => self.events.push_back(Event::Published {
                    token,
                    result: Ok(()),
                }),
            }
        }
        self.awaiting_pubrel.clear();
        // What the application is still waiting for goes first, then what it had.
        self.resend_pending(now);
        let mut pending: Vec<&str> = Vec::new();
        for (_, subscribe) in &self.pending_subscribe {
            for subscription in &subscribe.subscriptions {
                pending.push(subscription.filter.as_str());
            }
        }
        // One SUBSCRIBE per set of properties (a subscription identifier belongs to the
        // whole packet), at most 16 filters each.
        let mut groups: Vec<(SubscribeProperties, Vec<Subscription>)> = Vec::new();
        for (subscription, properties) in &self.subscriptions {
            if pending.contains(&subscription.filter.as_str()) {
                continue;
            }
            match groups
                .iter_mut()
                .find(|(p, list)| p == properties && list.len() < 16)
            {
                Some((_, list)) => list.push(subscription.clone()),
                None => groups.push((properties.clone(), vec![subscription.clone()])),
            }
        }
        for (properties, subscriptions) in groups {
            let packet_id = self.packet_id();
            let subscribe = Subscribe {
                packet_id,
                subscriptions,
                properties,
            };
            self.send(now, &subscribe);
            // Answered like any SUBSCRIBE, but nobody waits for it.
            self.pending_subscribe.push((RESUBSCRIBE, subscribe));
        }
    }

    /// SUBSCRIBE and UNSUBSCRIBE packets not yet answered, after a reconnect.
    fn resend_pending(&mut self, now: u64) {
        // Taken out while they are walked, as `send` borrows the session.
        let subscribes = core::mem::take(&mut self.pending_subscribe);
        for (_, subscribe) in &subscribes {
            self.send(now, subscribe);
        }
        self.pending_subscribe = subscribes;
        let unsubscribes = core::mem::take(&mut self.pending_unsubscribe);
        for (_, unsubscribe) in &unsubscribes {
            self.send(now, unsubscribe);
        }
        self.pending_unsubscribe = unsubscribes;
    }

    fn on_publish(&mut self, now: u64, mut publish: Publish) {
        // 5.0 topic aliases from the server (§3.3.2.3.4).
        if let Some(alias) = publish.properties().topic_alias {
            let known = self.aliases.iter_mut().find(|(a, _)| *a == alias.get());
            if publish.topic.is_empty() {
                match known {
                    Some((_, topic)) => publish.topic = topic.clone(),
                    None => {
                        return self.violation(
                            now,
                            ReasonCode::ProtocolError,
                            "unknown topic alias",
                        );
                    }
                }
            } else if let Some((_, topic)) = known {
                topic.clone_from(&publish.topic);
            } else {
                self.aliases.push((alias.get(), publish.topic.clone()));
            }
            publish.properties_mut().topic_alias = None;
        }
        match (publish.qos, publish.packet_id) {
            (QoS::AtLeastOnce, Some(id)) => {
                self.send_ack(now, PacketType::PubAck, id, ReasonCode::Success);
                self.events.push_back(Event::Message(publish));
            }
            (QoS::ExactlyOnce, Some(id)) => {
                // Delivered on the first PUBLISH; a resend before PUBREL is only acknowledged.
                if !self.awaiting_pubrel.contains(&id.get()) {
                    self.awaiting_pubrel.push(id.get());
                    self.events.push_back(Event::Message(publish));
                }
                self.send_ack(now, PacketType::PubRec, id, ReasonCode::Success);
            }
            _ => self.events.push_back(Event::Message(publish)),
        }
    }

    fn on_puback(&mut self, now: u64, ack: &PubAck) {
        if let Some((i, token)) = self.sent(ack.packet_id) {
            self.inflight.remove(i);
            self.events.push_back(Event::Published {
                token,
                result: result_of(ack.reason_code),
            });
        }
        self.pump(now);
    }

    fn on_pubrec(&mut self, now: u64, rec: &PubRec) {
        let id = rec.packet_id;
        match (self.sent(id), self.in_flight(id)) {
            (Some((i, token)), _) if rec.reason_code.is_error() => {
                // A failure PUBREC ends the flow (§4.3.3).
                self.inflight.remove(i);
                self.events.push_back(Event::Published {
                    token,
                    result: result_of(rec.reason_code),
                });
                self.pump(now);
            }
            (Some((i, token)), _) => {
                if let Some((_, flight)) = self.inflight.get_mut(i) {
                    *flight = Flight::Released(token);
                }
                self.send_ack(now, PacketType::PubRel, id, ReasonCode::Success);
            }
            // A duplicate PUBREC: the PUBREL may have been lost; send it again.
            (None, Some(_)) => self.send_ack(now, PacketType::PubRel, id, ReasonCode::Success),
            (None, None) => {
                let mut reason = ReasonCode::Success;
                if self.v5() {
                    reason = ReasonCode::PacketIdentifierNotFound;
                }
                self.send_ack(now, PacketType::PubRel, id, reason);
            }
        }
    }

    fn on_suback(&mut self, packet_id: PacketId, reason_codes: Vec<ReasonCode>) {
        let pending = &mut self.pending_subscribe;
        let Some(i) = pending.iter().position(|(_, s)| s.packet_id == packet_id) else {
            return;
        };
        let (token, subscribe) = pending.remove(i);
        for (subscription, code) in subscribe.subscriptions.iter().zip(&reason_codes) {
            if code.is_error() {
                continue;
            }
            let entry = (subscription.clone(), subscribe.properties.clone());
            match self
                .subscriptions
                .iter_mut()
                .find(|(s, _)| s.filter == subscription.filter)
            {
                Some(slot) => *slot = entry,
                None => self.subscriptions.push(entry),
            }
        }
        if token != RESUBSCRIBE {
            self.events.push_back(Event::Subscribed {
                token,
                reason_codes,
            });
        }
    }

    fn on_unsuback(&mut self, ack: UnsubAck) {
        let pending = &mut self.pending_unsubscribe;
        if let Some(i) = pending
            .iter()
            .position(|(_, u)| u.packet_id == ack.packet_id)
        {
            let (token, _) = pending.remove(i);
            self.events.push_back(Event::Unsubscribed {
                token,
                reason_codes: ack.reason_codes,
            });
        }
    }

    /// Moves queued messages out, as far as the connection and the window allow.
    fn pump(&mut self, now: u64) {
        while self.is_connected() {
            let Some(next) = self.queue.front() else {
                return;
            };
            let qos0 = next.publish.qos == QoS::AtMostOnce;
            if !qos0 && self.inflight.len() >= self.send_quota {
                return;
            }
            let Some(mut outgoing) = self.queue.pop_front() else {
                return;
            };
            if qos0 {
                self.send_publish(now, &mut outgoing.publish);
                let token = outgoing.token;
                self.events.push_back(Event::Published {
                    token,
                    result: Ok(()),
                });
                continue;
            }
            let id = self.packet_id();
            outgoing.publish.packet_id = Some(id);
            self.send_publish(now, &mut outgoing.publish);
            self.inflight.push((id.get(), Flight::Sent(outgoing)));
        }
    }

    /// Sends our `publish` through a topic alias when we assign them (§3.3.2.3.4): the
    /// first time a topic goes on this connection with its alias, later with the alias and an
    /// empty topic name; a DUP resend always with the topic, which sets the alias up again.
    /// Once every alias is taken, other topics go in full. What is kept for a resend stays
    /// without the alias, as the next connection has aliases of its own.
    fn send_publish(&mut self, now: u64, publish: &mut Publish) {
        if self.sent_alias_maximum == 0 {
            // No aliases on this connection (the usual case): the publish as it is.
            return self.send(now, publish);
        }
        let aliases = &mut self.sent_aliases;
        let topic = publish.topic.clone();
        let mut alias = aliases.iter().position(|t| *t == topic);
        if alias.is_some() && !publish.dup {
            publish.topic = TopicName::empty_for_alias();
        } else if alias.is_none() && aliases.len() < usize::from(self.sent_alias_maximum) {
            alias = Some(aliases.len());
            aliases.push(topic.clone());
        }
        let alias = alias.and_then(|i| NonZeroU16::new(i as u16 + 1));
        if alias.is_some() {
            publish.properties_mut().topic_alias = alias;
        }
        self.send(now, publish);
        if alias.is_some() {
            publish.properties_mut().topic_alias = None;
        }
        publish.topic = topic;
    }

    /// Whether `publish` (with no packet identifier yet) can be sent: it is measured and
    /// encoded with a stand-in identifier (and, when we assign topic aliases, a stand-in
    /// alias: it may go with its topic and an alias), removed again before returning.
    fn check_sendable(&self, publish: &mut Publish) -> Result<(), Failure> {
        if publish.qos != QoS::AtMostOnce {
            publish.packet_id = PacketId::new(1);
        }
        let alias = self.options.auto_assign_topic_alias && self.v5();
        if alias {
            publish.properties_mut().topic_alias = NonZeroU16::new(1);
        }
        let checked = self.check_encoding(publish);
        publish.packet_id = None;
        if alias {
            publish.properties_mut().topic_alias = None;
        }
        checked
    }

    fn check_encoding(&self, probe: &Publish) -> Result<(), Failure> {
        let len = probe.encoded_len(self.options.version);
        if len > self.server_max_packet {
            return Err(Failure::Invalid(cat(&[
                "the message is ",
                &decimal(len as u64),
                " bytes; the server accepts at most ",
                &decimal(self.server_max_packet as u64),
            ])));
        }
        let mut scratch = BytesMut::new();
        probe
            .encode(self.options.version, &mut scratch)
            .map_err(|e| Failure::Invalid(written(|out| e.write_text(out))))
    }

    /// Encodes by each packet's own type ([`Encode`]), not through [`Packet`]: then the
    /// encoders of the packets only a server sends stay out of the client's `.wasm`.
    /// Not inlined: a packet type sent from several places (PUBREL, SUBSCRIBE, PUBLISH) then
    /// has one copy of its encoder, not one per place (0.05 KB smaller gzipped).
    #[inline(never)]
    fn send(&mut self, now: u64, packet: &impl Encode) {
        // Commands are checked before they get here, so an encode error is a bug in the
        // session; the packet is dropped rather than half written.
        if packet
            .encode(self.options.version, &mut self.transmit)
            .is_ok()
        {
            self.last_sent = now;
        }
    }

    /// A PUBACK, PUBREC, PUBREL or PUBCOMP without properties: one encoder for the four
    /// (see [`midge_codec::encode_ack`]) instead of a copy of [`Session::send`] per type.
    fn send_ack(&mut self, now: u64, packet_type: PacketType, id: PacketId, reason: ReasonCode) {
        let version = self.options.version;
        if encode_ack(packet_type, id, reason, version, &mut self.transmit).is_ok() {
            self.last_sent = now;
        }
    }

    fn protocol_error(&mut self, now: u64, e: &DecodeError) {
        self.violation(now, e.reason_code(), &written(|out| e.write_text(out)));
    }

    fn violation(&mut self, now: u64, code: ReasonCode, why: &str) {
        if self.v5() {
            self.send(now, &Disconnect::new(code));
        }
        self.close(Closed::ProtocolError(why.to_owned()));
    }

    fn close(&mut self, why: Closed) {
        self.link = Link::Down;
        self.ping_sent = None;
        self.events.push_back(Event::Closed(why));
    }

    fn v5(&self) -> bool {
        self.options.version.is_v5()
    }

    fn token(&mut self) -> Token {
        self.next_token += 1;
        self.next_token
    }

    /// Where the flow of our publish `id` is in `inflight`.
    fn in_flight(&self, id: PacketId) -> Option<usize> {
        self.inflight.iter().position(|(i, _)| *i == id.get())
    }

    /// Where our publish `id` is in `inflight` and its token, if it is sent and not released.
    fn sent(&self, id: PacketId) -> Option<(usize, Token)> {
        let i = self.in_flight(id)?;
        match self.inflight.get(i) {
            Some((_, Flight::Sent(outgoing))) => Some((i, outgoing.token)),
            _ => None,
        }
    }

    /// A packet identifier not in use by any of our flows or requests.
    fn packet_id(&mut self) -> PacketId {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            let id = self.next_packet_id;
            let busy = self.inflight.iter().any(|(i, _)| *i == id)
                || self
                    .pending_subscribe
                    .iter()
                    .any(|(_, s)| s.packet_id.get() == id)
                || self
                    .pending_unsubscribe
                    .iter()
                    .any(|(_, u)| u.packet_id.get() == id);
            if let (Some(id), false) = (NonZeroU16::new(id), busy) {
                return id;
            }
        }
    }
}

fn result_of(code: ReasonCode) -> Result<(), Failure> {
    if code.is_error() {
        Err(Failure::Refused(code))
    } else {
        Ok(())
    }
}

/// PINGREQ: a fixed header and nothing else (§3.12).
struct PingReq;

impl Encode for PingReq {
    fn encode(&self, _: ProtocolVersion, dst: &mut BytesMut) -> Result<(), EncodeError> {
        dst.extend_from_slice(&[0xC0, 0x00]);
        Ok(())
    }

    fn encoded_len(&self, _: ProtocolVersion) -> usize {
        2
    }
}

/// A PUBLISH for [`Session::publish`].
pub fn message(topic: TopicName, payload: impl Into<Bytes>, qos: QoS, retain: bool) -> Publish {
    let mut publish = Publish::new(topic, payload);
    publish.qos = qos;
    publish.retain = retain;
    publish
}

#[cfg(test)]
mod tests;
