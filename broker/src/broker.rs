//! The state every connection shares: sessions, subscriptions, retained messages, and the
//! publish path that ties them together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use midge_codec::{Publish, QoS, TopicFilter};

use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::{Gauges, Metrics};
use crate::park::Parking;
use crate::router::Router;
use crate::session::{Inflight, Message, Outgoing, QueueLimits, Queued, Session};
use crate::store::{Op, Snapshot, Store, Ticket};

/// What all connection tasks share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) auth: Arc<dyn Auth>,
    pub(crate) metrics: Metrics,
    router: RwLock<Router>,
    sessions: Mutex<HashMap<Arc<str>, Arc<Session>>>,
    retained: RwLock<HashMap<Box<str>, Arc<Message>>>,
    /// The bytes queued for all clients together.
    pub(crate) queued_bytes: AtomicUsize,
    /// How many CONNECTs may be checked by `auth` at once (each on a blocking thread).
    pub(crate) auth_permits: Arc<tokio::sync::Semaphore>,
    /// Where persistent sessions and retained messages are kept.
    pub(crate) store: Arc<dyn Store>,
    /// Wakes publishers held back by a subscriber's queue when one drains (or its client
    /// goes); each checks whether its own are among them.
    pub(crate) drained: tokio::sync::Notify,
    /// Idle connections parked outside any task.
    pub(crate) parking: Arc<Parking>,
}

/// What became of a published message.
#[must_use]
pub(crate) struct Published {
    /// When it is durable for every persistent session it reaches.
    pub(crate) ticket: Ticket,
    /// The sessions whose queues it took past their high-water mark: the publisher waits
    /// for them before it sends more (see `Connection::wait_for_room`).
    pub(crate) congested: Vec<Arc<Session>>,
}

/// A poisoned lock means a task panicked mid-update; the maps are still consistent enough
/// to go on serving everyone else.
fn read<T>(lock: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|p| p.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    lock.write().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    pub(crate) fn new(config: Config, auth: Arc<dyn Auth>, store: Arc<dyn Store>) -> Self {
        Shared {
            config,
            auth,
            metrics: Metrics::default(),
            router: RwLock::default(),
            sessions: Mutex::default(),
            retained: RwLock::default(),
            queued_bytes: AtomicUsize::new(0),
            auth_permits: Arc::new(tokio::sync::Semaphore::new(
                std::thread::available_parallelism().map_or(2, |n| n.get()),
            )),
            store,
            drained: tokio::sync::Notify::new(),
            parking: Arc::default(),
        }
    }

    pub(crate) fn limits(&self) -> QueueLimits<'_> {
        QueueLimits {
            max_queued_messages: self.config.max_queued_messages,
            max_queued_bytes: self.config.max_queued_bytes,
            max_total_queued_bytes: self.config.max_total_queued_bytes,
            total_queued_bytes: &self.queued_bytes,
            dropped: &self.metrics.messages_dropped,
        }
    }

    pub(crate) fn sessions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn router(&self) -> RwLockWriteGuard<'_, Router> {
        write(&self.router)
    }

    /// Delivers a message to every matching subscription, and keeps it if it is retained.
    /// `publisher` is the client it came from (for No Local), if any; `ops` are its own
    /// changes to the store (inbound QoS 2 state), written in the same transaction as the
    /// message's.
    pub(crate) fn publish(
        &self,
        publish: Publish,
        publisher: Option<&str>,
        ops: Vec<Op>,
    ) -> Published {
        let message = Message::new(publish);
        let targets = self.route(&message, publisher);
        let (targets, mut ops) = self.prepare(targets, ops);
        let publish = &message.publish;
        let ticket = if publish.retain {
            // $SYS statistics are rewritten every few seconds and mean nothing after a restart.
            let keep = self.store.is_durable() && !publish.topic.as_str().starts_with("$SYS/");
            // The store's retained set changes in the order the map does: under its lock.
            let mut retained = write(&self.retained);
            if publish.payload.is_empty() {
                let existed = retained.remove(publish.topic.as_str()).is_some();
                if keep && existed {
                    let topic = publish.topic.as_str().into();
                    ops.push(Op::Unretain { topic });
                }
            } else {
                retained.insert(publish.topic.as_str().into(), message.clone());
                if keep {
                    ops.push(Op::retain(&message));
                }
            }
            self.store.submit_all(ops)
        } else {
            self.store.submit_all(ops)
        };
        let congested = self.enqueue(targets);
        Published { ticket, congested }
    }

    /// The sessions `message` goes to, each with its copy: one per client for overlapping
    /// plain subscriptions, at the highest granted QoS, with every matching subscription
    /// identifier (§3.3.4); shared ones each on their own.
    fn route(
        &self,
        message: &Arc<Message>,
        publisher: Option<&str>,
    ) -> Vec<(Arc<Session>, Outgoing)> {
        let publish = &message.publish;
        // One entry per matching subscription first; merged per session below. (A hash map
        // per message, keyed by session, was a tenth of the broker's time in broadcast.)
        let mut plain: Vec<(Arc<Session>, Outgoing)> = Vec::new();
        let mut shared: Vec<(Arc<Session>, Outgoing)> = Vec::new();
        let router = read(&self.router);
        router.route(&publish.topic, |target| {
            let options = target.subscription.options;
            if options.no_local && !target.shared && publisher == Some(&*target.session.client_id) {
                return;
            }
            let qos = options.qos.min(publish.qos);
            let retain = publish.retain && options.retain_as_published;
            let copy = Outgoing {
                message: message.clone(),
                qos,
                retain,
                subscription_ids: target.subscription.id.into_iter().collect(),
                key: None,
            };
            let list = if target.shared {
                &mut shared
            } else {
                &mut plain
            };
            list.push((target.session.clone(), copy));
        });
        drop(router);
        // Overlapping subscriptions of one client: one copy, at the highest QoS, with every
        // subscription identifier.
        plain.sort_by_key(|(session, _)| Arc::as_ptr(session));
        plain.dedup_by(|(session, later), (first_session, first)| {
            if !Arc::ptr_eq(session, first_session) {
                return false;
            }
            first.qos = first.qos.max(later.qos);
            first.retain |= later.retain;
            first.subscription_ids.append(&mut later.subscription_ids);
            true
        });
        plain.extend(shared);
        plain
    }

    /// Gives each QoS 1 and 2 message for a persisted session a store key and adds the op
    /// that writes it to `ops`. The messages are queued only after the ops are submitted,
    /// so no acknowledgement of one can reach the store before the message itself.
    fn prepare(
        &self,
        mut targets: Vec<(Arc<Session>, Outgoing)>,
        mut ops: Vec<Op>,
    ) -> (Vec<(Arc<Session>, Outgoing)>, Vec<Op>) {
        if self.store.is_durable() {
            for (session, outgoing) in &mut targets {
                if outgoing.qos != QoS::AtMostOnce && session.lock().persisted {
                    let key = self.store.new_key();
                    outgoing.key = Some(key);
                    ops.push(Op::message(&session.client_id, key, outgoing));
                }
            }
        }
        (targets, ops)
    }

    /// Queues prepared messages; one a full queue refuses leaves the store again. Returns
    /// the sessions whose queues are now past their high-water mark.
    fn enqueue(&self, targets: Vec<(Arc<Session>, Outgoing)>) -> Vec<Arc<Session>> {
        let limits = self.limits();
        let mut congested = Vec::new();
        for (session, message) in targets {
            let key = message.key;
            match session.enqueue(message, limits) {
                Queued::Yes => continue,
                Queued::Congested => {
                    congested.push(session);
                    continue;
                }
                Queued::Dropped => {}
            }
            if let Some(key) = key {
                let client_id = session.client_id.clone();
                self.store.submit(Op::Forget { client_id, key });
            }
        }
        congested
    }

    /// Queues retained messages for `session` on its subscription (written to the store
    /// first where it is persisted). Returns the ticket of the writes.
    pub(crate) fn deliver_retained(
        &self,
        session: &Arc<Session>,
        messages: Vec<Outgoing>,
    ) -> Ticket {
        let targets = messages.into_iter().map(|m| (session.clone(), m)).collect();
        let (targets, ops) = self.prepare(targets, Vec::new());
        let ticket = self.store.submit_all(ops);
        // The subscriber's own queue: its own connection drains it, nobody waits for it.
        let _ = self.enqueue(targets);
        ticket
    }

    /// The retained messages matching `filter`, to send on subscribe; expired ones go.
    pub(crate) fn retained_matching(&self, filter: &TopicFilter) -> Vec<Arc<Message>> {
        let now = Instant::now();
        let (live, expired): (Vec<_>, Vec<_>) = read(&self.retained)
            .values()
            .filter(|m| filter.matches(&m.publish.topic))
            .cloned()
            .partition(|m| !m.is_expired(now));
        if !expired.is_empty() {
            self.unretain(&expired);
        }
        live
    }

    /// Removes expired retained messages, from the store too.
    fn unretain(&self, expired: &[Arc<Message>]) {
        let mut retained = write(&self.retained);
        for m in expired {
            let topic = m.publish.topic.as_str();
            // Only if it is still the same message: a new one may have replaced it.
            if retained.get(topic).is_some_and(|r| Arc::ptr_eq(r, m)) {
                retained.remove(topic);
                if self.store.is_durable() {
                    self.store.submit(Op::Unretain {
                        topic: topic.into(),
                    });
                }
            }
        }
    }

    /// What the broker holds right now.
    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            retained: read(&self.retained).len(),
            subscriptions: read(&self.router).len(),
            sessions: self.sessions().len(),
            queued_bytes: self.queued_bytes.load(Ordering::Relaxed),
            store: self.store.written(),
        }
    }

    pub(crate) fn metrics_text(&self) -> String {
        self.metrics.render(self.gauges())
    }

    /// Empties a session: its subscriptions and queued messages go (a clean start), and it
    /// leaves the store.
    pub(crate) fn clear_session(&self, session: &Arc<Session>) {
        let filters: Vec<TopicFilter> = {
            let mut state = session.lock();
            if state.persisted {
                let client_id = session.client_id.clone();
                self.store.submit(Op::EndSession { client_id });
            }
            let subscriptions = std::mem::take(&mut state.subscriptions);
            let filters = subscriptions.into_values().map(|(f, _)| f).collect();
            state.clear(&self.queued_bytes);
            filters
        };
        // Publishers held back by its queue go on.
        self.drained.notify_waiters();
        let mut router = self.router();
        for filter in &filters {
            router.unsubscribe(&session.client_id, filter);
        }
    }

    /// Ends a session: it is emptied and forgotten.
    pub(crate) fn end_session(&self, session: &Arc<Session>) {
        self.clear_session(session);
        let mut sessions = self.sessions();
        if sessions
            .get(&session.client_id)
            .is_some_and(|s| Arc::ptr_eq(s, session))
        {
            sessions.remove(&session.client_id);
        }
    }
}

impl Shared {
    /// Writes a persisted session's record: its expiry interval, subscriptions and whether
    /// its client is connected. Returns the write's ticket.
    pub(crate) fn save_session(&self, session: &Session, disconnected: bool) -> Ticket {
        let state = session.lock();
        if !state.persisted {
            return Ticket::NONE;
        }
        let at = disconnected.then(crate::store::unix_secs);
        let subscriptions = state.subscriptions.values().map(|(f, s)| (f, s));
        let op = Op::session(&session.client_id, state.expiry_interval, at, subscriptions);
        self.store.submit(op)
    }

    /// Takes in what the store kept: sessions (disconnected, with their subscriptions,
    /// queues, messages in flight and inbound QoS 2 state) and retained messages. Each
    /// session's expiry starts again from when its client disconnected, or from now.
    pub(crate) fn restore(self: &Arc<Self>, snapshot: Snapshot) {
        for stored in snapshot.sessions {
            let session = Session::new(stored.client_id);
            {
                let mut state = session.lock();
                state.expiry_interval = stored.expiry_interval;
                state.persisted = true;
                for (filter, subscription) in stored.subscriptions {
                    self.router()
                        .subscribe(&session, &filter, subscription.clone());
                    state
                        .subscriptions
                        .insert(filter.as_str().into(), (filter, subscription));
                }
                for message in stored.messages {
                    match message.inflight {
                        Some((id, false)) => {
                            state.inflight.insert(id, Inflight::Sent(message.outgoing));
                        }
                        Some((id, true)) => {
                            let key = message.outgoing.key;
                            state.inflight.insert(id, Inflight::Released(key));
                        }
                        None => state.queue.push_back(message.outgoing, &self.queued_bytes),
                    }
                }
                if !stored.awaiting_pubrel.is_empty() {
                    let ids = state.awaiting_pubrel.get_or_insert_default();
                    ids.extend(stored.awaiting_pubrel);
                }
            }
            if stored.expiry_interval != u32::MAX {
                let since = stored
                    .disconnected_at
                    .unwrap_or_else(crate::store::unix_secs);
                let ends = since + u64::from(stored.expiry_interval);
                let left = ends.saturating_sub(crate::store::unix_secs());
                self.expire_later(&session, 0, std::time::Duration::from_secs(left));
            }
            self.sessions().insert(session.client_id.clone(), session);
        }
        let mut retained = write(&self.retained);
        for message in snapshot.retained {
            retained.insert(message.publish.topic.as_str().into(), message);
        }
    }

    /// Ends `session` after `wait` unless a client has attached to it since `generation`.
    pub(crate) fn expire_later(
        self: &Arc<Self>,
        session: &Arc<Session>,
        generation: u32,
        wait: std::time::Duration,
    ) {
        let (shared, session) = (self.clone(), session.clone());
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            if session.lock().generation == generation && !session.is_connected() {
                shared.end_session(&session);
            }
        });
    }

    /// Drops expired messages: retained ones, and those queued for absent clients (which
    /// no connection would look at before they reconnect), from the store too.
    pub(crate) fn sweep_expired(&self) {
        let now = Instant::now();
        let expired: Vec<Arc<Message>> = read(&self.retained)
            .values()
            .filter(|m| m.is_expired(now))
            .cloned()
            .collect();
        if !expired.is_empty() {
            self.unretain(&expired);
        }
        let sessions: Vec<Arc<Session>> = self.sessions().values().cloned().collect();
        for session in sessions.iter().filter(|s| !s.is_connected()) {
            let mut state = session.lock();
            let keys = state.queue.remove_expired(now, &self.queued_bytes);
            if state.persisted {
                for key in keys {
                    let client_id = session.client_id.clone();
                    self.store.submit(Op::Forget { client_id, key });
                }
            }
        }
    }
}
