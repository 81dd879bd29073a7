//! Sessions (§4.1): what the broker keeps for a client between and across its connections:
//! subscriptions, messages waiting to be sent, QoS 1 and 2 flows in flight both ways.
//!
//! A [`Session`] is shared: publishers' tasks queue messages into it, and the task of the
//! connection currently attached to it sends them. Its lock is per session, never global.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use midge_codec::{PacketId, Publish, QoS, SubscriptionId, TopicFilter};
use tokio::sync::Notify;

use crate::connection::Parked;
use crate::router::Subscription;

/// A message as the broker holds it: the PUBLISH as received, and when it expires (5.0
/// Message Expiry Interval, §3.3.2.3.3).
#[derive(Debug)]
pub(crate) struct Message {
    pub(crate) publish: Publish,
    pub(crate) expires: Option<Instant>,
}

impl Message {
    /// Takes a received PUBLISH in, starting its expiry clock now.
    pub(crate) fn new(publish: Publish) -> Arc<Message> {
        let interval = publish.properties().message_expiry_interval;
        let expires = interval.map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
        Arc::new(Message { publish, expires })
    }

    pub(crate) fn is_expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|at| at <= now)
    }

    /// The Message Expiry Interval to forward: the seconds left, rounded up [MQTT-3.3.2-6].
    pub(crate) fn remaining_secs(&self, now: Instant) -> Option<u32> {
        self.expires.map(|at| {
            let left = at.saturating_duration_since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            u32::try_from(secs).unwrap_or(u32::MAX)
        })
    }
}

/// A message on its way to one session.
#[derive(Clone, Debug)]
pub(crate) struct Outgoing {
    /// The message as published; shared by every subscriber.
    pub(crate) message: Arc<Message>,
    /// The QoS it goes out at: the lower of the published and the granted one.
    pub(crate) qos: QoS,
    /// The RETAIN flag it goes out with.
    pub(crate) retain: bool,
    /// 5.0: the identifiers of the subscriptions it matched.
    pub(crate) subscription_ids: Vec<SubscriptionId>,
    /// Its key in the store, once it is kept there (QoS 1 and 2 for a persistent session).
    pub(crate) key: Option<u64>,
}

impl Outgoing {
    /// What it costs to keep queued: its payload and topic.
    pub(crate) fn size(&self) -> usize {
        let publish = &self.message.publish;
        publish.payload.len() + publish.topic.as_str().len()
    }
}

/// The messages waiting for one client, with their size accounted here and in the
/// broker-wide total (which every change updates, so it never drifts).
#[derive(Default)]
pub(crate) struct Queue {
    messages: VecDeque<Outgoing>,
    bytes: usize,
    /// Messages taken from the front so far: publishers held back by the queue tell a slow
    /// client (still taking) from a stuck one by it.
    taken: u64,
}

impl Queue {
    pub(crate) fn len(&self) -> usize {
        self.messages.len()
    }

    pub(crate) fn bytes(&self) -> usize {
        self.bytes
    }

    pub(crate) fn front(&self) -> Option<&Outgoing> {
        self.messages.front()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = &Outgoing> {
        self.messages.iter()
    }

    /// Appends a message (read back from the store, or queued by [`Session::enqueue`]).
    pub(crate) fn push_back(&mut self, message: Outgoing, total: &AtomicUsize) {
        self.bytes += message.size();
        total.fetch_add(message.size(), Ordering::Relaxed);
        self.messages.push_back(message);
    }

    pub(crate) fn pop_front(&mut self, total: &AtomicUsize) -> Option<Outgoing> {
        let message = self.messages.pop_front()?;
        self.taken += 1;
        self.forget(&message, total);
        Some(message)
    }

    fn remove(&mut self, index: usize, total: &AtomicUsize) {
        if let Some(message) = self.messages.remove(index) {
            self.forget(&message, total);
        }
    }

    /// Removes the expired messages; returns the store keys of those that had one.
    pub(crate) fn remove_expired(&mut self, now: Instant, total: &AtomicUsize) -> Vec<u64> {
        let mut keys = Vec::new();
        for message in std::mem::take(&mut self.messages) {
            if message.message.is_expired(now) {
                self.bytes -= message.size();
                total.fetch_sub(message.size(), Ordering::Relaxed);
                keys.extend(message.key);
            } else {
                self.messages.push_back(message);
            }
        }
        keys
    }

    pub(crate) fn clear(&mut self, total: &AtomicUsize) {
        total.fetch_sub(self.bytes, Ordering::Relaxed);
        self.messages.clear();
        self.bytes = 0;
    }

    fn forget(&mut self, message: &Outgoing, total: &AtomicUsize) {
        self.bytes -= message.size();
        total.fetch_sub(message.size(), Ordering::Relaxed);
    }
}

/// A QoS 1 or 2 message sent and not yet completely acknowledged.
#[derive(Clone, Debug)]
pub(crate) enum Inflight {
    /// Sent; waiting for PUBACK (QoS 1) or PUBREC (QoS 2).
    Sent(Outgoing),
    /// QoS 2: PUBREL sent, waiting for PUBCOMP; the message's key in the store.
    Released(Option<u64>),
}

/// The mutable part of a session.
#[derive(Default)]
pub(crate) struct SessionState {
    /// Subscriptions by filter string, for resubscribe-on-takeover and unsubscribe (a
    /// B-tree: an empty one is half the size of an empty hash map, in every session).
    pub(crate) subscriptions: BTreeMap<Box<str>, (TopicFilter, Subscription)>,
    /// Messages waiting to be sent.
    pub(crate) queue: Queue,
    /// Sent QoS 1 and 2 messages by packet identifier, in the order they were sent.
    pub(crate) inflight: BTreeMap<u16, Inflight>,
    /// Inbound QoS 2 packet identifiers whose PUBREC was sent and PUBREL not yet received.
    /// Boxed: most clients never send QoS 2, and every session would pay for an empty set
    /// (48 bytes, against 8).
    #[allow(clippy::box_collection)]
    pub(crate) awaiting_pubrel: Option<Box<HashSet<u16>>>,
    next_packet_id: u16,
    /// Messages dropped because the queue was full.
    pub(crate) dropped: u64,
    /// The queue passed its high-water mark: publishers that fed it wait until it drains
    /// to its low-water mark (see [`QueueLimits::is_high`]).
    pub(crate) backpressure: bool,
    /// The client did not drain its queue while publishers waited for it: they no longer
    /// wait for it until it has caught up.
    pub(crate) stalled: bool,
    /// Wakes the task of the connection attached to this session, if any.
    pub(crate) waker: Option<Arc<Notify>>,
    /// The attached connection while it is parked (see `crate::park`): it has no task to
    /// wake. Whoever takes it out revives it, after letting the lock go.
    pub(crate) parked: Option<Box<Parked>>,
    /// Counts attachments: a connection whose number is no longer current was taken over
    /// (wrapping: only equality matters).
    pub(crate) generation: u32,
    /// Seconds the session outlives its connection (0: it ends with it).
    pub(crate) expiry_interval: u32,
    /// Whether the store keeps this session (it outlives its connection and the store is
    /// durable): its changes are then submitted to the store.
    pub(crate) persisted: bool,
}

/// One client's session.
pub(crate) struct Session {
    pub(crate) client_id: Arc<str>,
    state: Mutex<SessionState>,
    connected: AtomicBool,
}

/// Limits on what a session may hold for a slow or absent client, the broker-wide count of
/// queued bytes they are checked against, and the count of messages dropped at them.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits<'a> {
    pub(crate) max_queued_messages: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) max_total_queued_bytes: usize,
    pub(crate) total_queued_bytes: &'a AtomicUsize,
    pub(crate) dropped: &'a AtomicU64,
}

impl QueueLimits<'_> {
    /// Whether `queue` may take `size` more bytes as one more message.
    fn has_room(&self, queue: &Queue, size: usize) -> bool {
        queue.len() < self.max_queued_messages
            && queue.bytes() + size <= self.max_queued_bytes
            && self.total_queued_bytes.load(Ordering::Relaxed) + size <= self.max_total_queued_bytes
    }

    /// The high-water mark: half the per-client limit, in messages or in bytes. Publishers
    /// stop there, so that those already under way still find room.
    fn is_high(&self, queue: &Queue) -> bool {
        queue.len() * 2 >= self.max_queued_messages || queue.bytes() * 2 >= self.max_queued_bytes
    }

    /// The low-water mark, where waiting publishers go on: a quarter of the limits.
    fn is_low(&self, queue: &Queue) -> bool {
        queue.len() * 4 <= self.max_queued_messages && queue.bytes() * 4 <= self.max_queued_bytes
    }
}

/// What [`Session::enqueue`] did with a message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Queued {
    /// It is queued.
    Yes,
    /// It is queued, and the queue is past its high-water mark: the publisher should wait
    /// (see [`Session::holds_back`]).
    Congested,
    /// It was dropped: the queue was full, or it is QoS 0 for an absent client.
    Dropped,
}

#[cfg(test)]
impl Queued {
    pub(crate) fn is_queued(self) -> bool {
        self != Queued::Dropped
    }
}

impl Session {
    pub(crate) fn new(client_id: Arc<str>) -> Arc<Self> {
        Arc::new(Session {
            client_id,
            state: Mutex::default(),
            connected: AtomicBool::new(false),
        })
    }

    /// Locks the state. A panic while holding the lock is a bug; the state is still usable.
    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn is_connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }

    pub(crate) fn set_connected(&self, connected: bool) {
        self.connected.store(connected, Ordering::Relaxed);
    }

    /// Queues a message for the client and wakes its connection. QoS 0 messages are not
    /// kept for a disconnected client (as Mosquitto does by default). Over a limit, queued
    /// QoS 0 messages are dropped to make room, else the new message is; drops are counted
    /// in the session.
    pub(crate) fn enqueue(&self, message: Outgoing, limits: QueueLimits<'_>) -> Queued {
        let mut state = self.lock();
        let connected = self.is_connected();
        if message.qos == QoS::AtMostOnce && !connected {
            return Queued::Dropped;
        }
        let size = message.size();
        let total = limits.total_queued_bytes;
        while !limits.has_room(&state.queue, size) {
            let qos0 = state.queue.iter().position(|m| m.qos == QoS::AtMostOnce);
            let fits_at_all = size <= limits.max_queued_bytes;
            self.count_drop(&mut state, limits);
            match qos0 {
                Some(i) if fits_at_all => state.queue.remove(i, total),
                _ => return Queued::Dropped,
            }
        }
        state.queue.push_back(message, total);
        if let Some(waker) = &state.waker {
            waker.notify_one();
        }
        let parked = state.parked.take();
        // Only a connected client's queue drains; publishers never wait for an absent one.
        let queued = if connected && !state.stalled && limits.is_high(&state.queue) {
            state.backpressure = true;
            Queued::Congested
        } else {
            Queued::Yes
        };
        drop(state);
        if let Some(parked) = parked {
            parked.revive();
        }
        queued
    }

    /// Revives the session's connection if it is parked.
    pub(crate) fn revive(&self) {
        let parked = self.lock().parked.take();
        if let Some(parked) = parked {
            parked.revive();
        }
    }

    /// Counts a message dropped at a limit, in the session and the broker's metric. A line per
    /// drop was a quarter of the broker's CPU under overload: the log says it at the 1st,
    /// 2nd, 4th, 8th ... drop.
    fn count_drop(&self, state: &mut SessionState, limits: QueueLimits<'_>) {
        state.dropped += 1;
        limits.dropped.fetch_add(1, Ordering::Relaxed);
        let dropped = state.dropped;
        if dropped.is_power_of_two() {
            tracing::warn!(client = %self.client_id, dropped, "queue full: messages dropped");
        }
    }

    /// Whether publishers that fed this session should still wait for it.
    pub(crate) fn holds_back(&self) -> bool {
        let state = self.lock();
        state.backpressure && !state.stalled && self.is_connected()
    }

    /// How many messages the client's connection has taken from the queue so far.
    pub(crate) fn taken(&self) -> u64 {
        self.lock().queue.taken
    }

    /// The client took no message while publishers waited for as long as they may: they
    /// stop waiting for it until its queue has drained.
    pub(crate) fn stall(&self) {
        let mut state = self.lock();
        if state.backpressure {
            state.stalled = true;
            tracing::warn!(client = %self.client_id, "stalled subscriber: it took no message while publishers waited; they no longer wait for it");
        }
    }
}

impl SessionState {
    /// Called when messages have left the queue: whether it just drained to its low-water
    /// mark after publishers were held back for it (they are then to be woken).
    pub(crate) fn drained(&mut self, limits: QueueLimits<'_>) -> bool {
        if !(self.backpressure || self.stalled) || !limits.is_low(&self.queue) {
            return false;
        }
        self.backpressure = false;
        self.stalled = false;
        true
    }

    /// A packet identifier not in use by an outbound flow.
    pub(crate) fn next_packet_id(&mut self) -> PacketId {
        loop {
            self.next_packet_id = self.next_packet_id.wrapping_add(1);
            match PacketId::new(self.next_packet_id) {
                Some(id) if !self.inflight.contains_key(&id.get()) => return id,
                _ => {}
            }
        }
    }

    /// The store no longer keeps this session: its messages lose their store keys.
    pub(crate) fn forget_keys(&mut self) {
        self.persisted = false;
        self.queue.messages.iter_mut().for_each(|m| m.key = None);
        for flight in self.inflight.values_mut() {
            match flight {
                Inflight::Sent(message) => message.key = None,
                Inflight::Released(key) => *key = None,
            }
        }
    }

    /// Forgets everything but the attachment bookkeeping (the connection attached, parked or
    /// not, and the generation): a clean start, or an expired session.
    pub(crate) fn clear(&mut self, total_queued_bytes: &AtomicUsize) {
        self.queue.clear(total_queued_bytes);
        let waker = self.waker.take();
        let parked = self.parked.take();
        let generation = self.generation;
        *self = SessionState {
            waker,
            parked,
            generation,
            ..SessionState::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use midge_codec::TopicName;

    use super::*;

    fn message(qos: QoS, n: u8) -> Outgoing {
        let publish = Publish::new(TopicName::from_static("t"), vec![n]);
        Outgoing {
            message: Message::new(publish),
            qos,
            retain: false,
            subscription_ids: Vec::new(),
            key: None,
        }
    }

    static DROPPED: AtomicU64 = AtomicU64::new(0);

    fn limits(messages: usize, bytes: usize, total: &AtomicUsize) -> QueueLimits<'_> {
        QueueLimits {
            max_queued_messages: messages,
            max_queued_bytes: bytes,
            max_total_queued_bytes: 2 * bytes.min(1 << 40),
            total_queued_bytes: total,
            dropped: &DROPPED,
        }
    }

    fn payloads(session: &Session) -> Vec<u8> {
        session
            .lock()
            .queue
            .iter()
            .map(|m| m.message.publish.payload[0])
            .collect()
    }

    #[test]
    fn a_full_queue_drops_qos0_first_then_new_messages() {
        let session = Session::new("s".into());
        session.set_connected(true);
        let total = AtomicUsize::new(0);
        let limits = limits(3, usize::MAX, &total);
        assert!(
            session
                .enqueue(message(QoS::AtLeastOnce, 1), limits)
                .is_queued()
        );
        assert!(
            session
                .enqueue(message(QoS::AtMostOnce, 2), limits)
                .is_queued()
        );
        assert!(
            session
                .enqueue(message(QoS::AtLeastOnce, 3), limits)
                .is_queued()
        );
        // Full: the QoS 0 message makes room.
        assert!(
            session
                .enqueue(message(QoS::AtLeastOnce, 4), limits)
                .is_queued()
        );
        assert_eq!(payloads(&session), [1, 3, 4]);
        // Full of QoS 1: the new one is refused, never an accepted one.
        assert!(
            !session
                .enqueue(message(QoS::AtLeastOnce, 5), limits)
                .is_queued()
        );
        assert_eq!(payloads(&session), [1, 3, 4]);
        assert_eq!(session.lock().dropped, 2);
    }

    #[test]
    fn publishers_are_held_back_from_high_to_low_water() {
        let session = Session::new("s".into());
        session.set_connected(true);
        let total = AtomicUsize::new(0);
        let limits = limits(8, usize::MAX, &total);
        for n in 1..=3 {
            assert_eq!(
                session.enqueue(message(QoS::AtMostOnce, n), limits),
                Queued::Yes
            );
        }
        // Half full: queued, and the publisher is told to wait.
        assert_eq!(
            session.enqueue(message(QoS::AtMostOnce, 4), limits),
            Queued::Congested
        );
        assert!(session.holds_back());
        let mut state = session.lock();
        state.queue.pop_front(&total);
        assert!(!state.drained(limits), "3 of 8 is above the low-water mark");
        state.queue.pop_front(&total);
        assert!(state.drained(limits), "2 of 8 is the low-water mark");
        assert!(!state.drained(limits), "publishers are woken once");
        drop(state);
        assert!(!session.holds_back());
    }

    #[test]
    fn a_stalled_client_holds_no_one_back_until_it_drains() {
        let session = Session::new("s".into());
        session.set_connected(true);
        let total = AtomicUsize::new(0);
        let limits = limits(4, usize::MAX, &total);
        session.enqueue(message(QoS::AtMostOnce, 1), limits);
        assert_eq!(
            session.enqueue(message(QoS::AtMostOnce, 2), limits),
            Queued::Congested
        );
        session.stall();
        assert!(!session.holds_back());
        assert_eq!(
            session.enqueue(message(QoS::AtMostOnce, 3), limits),
            Queued::Yes
        );
        // Full: dropped as without waiting.
        session.enqueue(message(QoS::AtMostOnce, 4), limits);
        assert_eq!(
            session.enqueue(message(QoS::AtLeastOnce, 5), limits),
            Queued::Yes
        );
        assert_eq!(payloads(&session), [2, 3, 4, 5]);
        let mut state = session.lock();
        while state.queue.len() > 1 {
            state.queue.pop_front(&total);
        }
        assert!(state.drained(limits));
        drop(state);
        assert_eq!(
            session.enqueue(message(QoS::AtMostOnce, 6), limits),
            Queued::Congested
        );
    }

    #[test]
    fn an_absent_client_holds_no_one_back() {
        let session = Session::new("s".into());
        let total = AtomicUsize::new(0);
        let limits = limits(2, usize::MAX, &total);
        assert_eq!(
            session.enqueue(message(QoS::AtLeastOnce, 1), limits),
            Queued::Yes
        );
        assert_eq!(
            session.enqueue(message(QoS::AtLeastOnce, 2), limits),
            Queued::Yes
        );
        assert_eq!(
            session.enqueue(message(QoS::AtLeastOnce, 3), limits),
            Queued::Dropped
        );
    }

    #[test]
    fn qos0_is_not_kept_for_a_disconnected_client() {
        let session = Session::new("s".into());
        let total = AtomicUsize::new(0);
        let limits = limits(10, usize::MAX, &total);
        assert!(
            !session
                .enqueue(message(QoS::AtMostOnce, 1), limits)
                .is_queued()
        );
        assert!(
            session
                .enqueue(message(QoS::AtLeastOnce, 2), limits)
                .is_queued()
        );
        assert_eq!(payloads(&session), [2]);
    }

    #[test]
    fn packet_ids_skip_zero_and_those_in_flight() {
        let mut state = SessionState::default();
        state.inflight.insert(2, Inflight::Released(None));
        assert_eq!(state.next_packet_id().get(), 1);
        assert_eq!(state.next_packet_id().get(), 3);
        state.next_packet_id = u16::MAX;
        assert_eq!(state.next_packet_id().get(), 1);
    }

    #[test]
    fn byte_limits_per_client_and_in_total() {
        let total = AtomicUsize::new(0);
        // Each test message is 2 bytes (topic "t", one payload byte).
        let per_client = limits(100, 4, &total);
        let (a, b, c) = (
            Session::new("a".into()),
            Session::new("b".into()),
            Session::new("c".into()),
        );
        for s in [&a, &b, &c] {
            s.set_connected(true);
        }
        assert!(
            a.enqueue(message(QoS::AtLeastOnce, 1), per_client)
                .is_queued()
        );
        assert!(
            a.enqueue(message(QoS::AtLeastOnce, 2), per_client)
                .is_queued()
        );
        assert!(
            !a.enqueue(message(QoS::AtLeastOnce, 3), per_client)
                .is_queued(),
            "a holds its 4 bytes"
        );
        assert!(
            b.enqueue(message(QoS::AtLeastOnce, 4), per_client)
                .is_queued()
        );
        assert!(
            b.enqueue(message(QoS::AtLeastOnce, 5), per_client)
                .is_queued()
        );
        // The broker-wide limit (8 bytes here) is reached: c gets nothing more.
        assert_eq!(total.load(Ordering::Relaxed), 8);
        assert!(
            !c.enqueue(message(QoS::AtLeastOnce, 6), per_client)
                .is_queued()
        );
        // Sending and clearing give the bytes back.
        assert!(a.lock().queue.pop_front(&total).is_some());
        assert!(
            c.enqueue(message(QoS::AtLeastOnce, 7), per_client)
                .is_queued()
        );
        for s in [&a, &b, &c] {
            s.lock().clear(&total);
        }
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }
}
