//! Sessions (§4.1): what the broker keeps for a client between and across its connections:
//! subscriptions, messages waiting to be sent, QoS 1 and 2 flows in flight both ways.
//!
//! A [`Session`] is shared: publishers' tasks queue messages into it, and the task of the
//! connection currently attached to it sends them. Its lock is per session, never global.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use midge_codec::{PacketId, Publish, QoS, SubscriptionId, TopicFilter};
use tokio::sync::Notify;

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
    /// Subscriptions by filter string, for resubscribe-on-takeover and unsubscribe.
    pub(crate) subscriptions: HashMap<Box<str>, (TopicFilter, Subscription)>,
    /// Messages waiting to be sent.
    pub(crate) queue: Queue,
    /// Sent QoS 1 and 2 messages by packet identifier, in the order they were sent.
    pub(crate) inflight: BTreeMap<u16, Inflight>,
    /// Inbound QoS 2 packet identifiers whose PUBREC was sent and PUBREL not yet received.
    pub(crate) awaiting_pubrel: HashSet<u16>,
    next_packet_id: u16,
    /// Messages dropped because the queue was full.
    pub(crate) dropped: u64,
    /// Wakes the task of the connection attached to this session, if any.
    pub(crate) waker: Option<Arc<Notify>>,
    /// Counts attachments: a connection whose number is no longer current was taken over.
    pub(crate) generation: u64,
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

/// Limits on what a session may hold for a slow or absent client, and the broker-wide
/// count of queued bytes they are checked against.
#[derive(Clone, Copy, Debug)]
pub(crate) struct QueueLimits<'a> {
    pub(crate) max_queued_messages: usize,
    pub(crate) max_queued_bytes: usize,
    pub(crate) max_total_queued_bytes: usize,
    pub(crate) total_queued_bytes: &'a AtomicUsize,
}

impl QueueLimits<'_> {
    /// Whether `queue` may take `size` more bytes as one more message.
    fn has_room(&self, queue: &Queue, size: usize) -> bool {
        queue.len() < self.max_queued_messages
            && queue.bytes() + size <= self.max_queued_bytes
            && self.total_queued_bytes.load(Ordering::Relaxed) + size <= self.max_total_queued_bytes
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
    /// in the session. Returns whether it was queued.
    pub(crate) fn enqueue(&self, message: Outgoing, limits: QueueLimits<'_>) -> bool {
        let mut state = self.lock();
        if message.qos == QoS::AtMostOnce && !self.is_connected() {
            return false;
        }
        let size = message.size();
        let total = limits.total_queued_bytes;
        while !limits.has_room(&state.queue, size) {
            let qos0 = state.queue.iter().position(|m| m.qos == QoS::AtMostOnce);
            let fits_at_all = size <= limits.max_queued_bytes;
            match qos0 {
                Some(i) if fits_at_all => state.queue.remove(i, total),
                _ => {
                    state.dropped += 1;
                    return false;
                }
            }
            state.dropped += 1;
        }
        state.queue.push_back(message, total);
        if let Some(waker) = &state.waker {
            waker.notify_one();
        }
        true
    }
}

impl SessionState {
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

    /// Forgets everything but the attachment bookkeeping: a clean start, or an expired session.
    pub(crate) fn clear(&mut self, total_queued_bytes: &AtomicUsize) {
        self.queue.clear(total_queued_bytes);
        let waker = self.waker.take();
        let generation = self.generation;
        *self = SessionState {
            waker,
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

    fn limits(messages: usize, bytes: usize, total: &AtomicUsize) -> QueueLimits<'_> {
        QueueLimits {
            max_queued_messages: messages,
            max_queued_bytes: bytes,
            max_total_queued_bytes: 2 * bytes.min(1 << 40),
            total_queued_bytes: total,
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
        assert!(session.enqueue(message(QoS::AtLeastOnce, 1), limits));
        assert!(session.enqueue(message(QoS::AtMostOnce, 2), limits));
        assert!(session.enqueue(message(QoS::AtLeastOnce, 3), limits));
        // Full: the QoS 0 message makes room.
        assert!(session.enqueue(message(QoS::AtLeastOnce, 4), limits));
        assert_eq!(payloads(&session), [1, 3, 4]);
        // Full of QoS 1: the new one is refused, never an accepted one.
        assert!(!session.enqueue(message(QoS::AtLeastOnce, 5), limits));
        assert_eq!(payloads(&session), [1, 3, 4]);
        assert_eq!(session.lock().dropped, 2);
    }

    #[test]
    fn qos0_is_not_kept_for_a_disconnected_client() {
        let session = Session::new("s".into());
        let total = AtomicUsize::new(0);
        let limits = limits(10, usize::MAX, &total);
        assert!(!session.enqueue(message(QoS::AtMostOnce, 1), limits));
        assert!(session.enqueue(message(QoS::AtLeastOnce, 2), limits));
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
        assert!(a.enqueue(message(QoS::AtLeastOnce, 1), per_client));
        assert!(a.enqueue(message(QoS::AtLeastOnce, 2), per_client));
        assert!(
            !a.enqueue(message(QoS::AtLeastOnce, 3), per_client),
            "a holds its 4 bytes"
        );
        assert!(b.enqueue(message(QoS::AtLeastOnce, 4), per_client));
        assert!(b.enqueue(message(QoS::AtLeastOnce, 5), per_client));
        // The broker-wide limit (8 bytes here) is reached: c gets nothing more.
        assert_eq!(total.load(Ordering::Relaxed), 8);
        assert!(!c.enqueue(message(QoS::AtLeastOnce, 6), per_client));
        // Sending and clearing give the bytes back.
        assert!(a.lock().queue.pop_front(&total).is_some());
        assert!(c.enqueue(message(QoS::AtLeastOnce, 7), per_client));
        for s in [&a, &b, &c] {
            s.lock().clear(&total);
        }
        assert_eq!(total.load(Ordering::Relaxed), 0);
    }
}
