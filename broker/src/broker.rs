//! The state every connection shares: sessions, subscriptions, retained messages, and the
//! publish path that ties them together.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Instant;

use midge_codec::{Publish, TopicFilter};

use crate::auth::Auth;
use crate::config::Config;
use crate::metrics::{self, Gauges, Metrics};
use crate::router::Router;
use crate::session::{Message, Outgoing, QueueLimits, Session};

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
    pub(crate) fn new(config: Config, auth: Arc<dyn Auth>) -> Self {
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
        }
    }

    pub(crate) fn limits(&self) -> QueueLimits<'_> {
        QueueLimits {
            max_queued_messages: self.config.max_queued_messages,
            max_queued_bytes: self.config.max_queued_bytes,
            max_total_queued_bytes: self.config.max_total_queued_bytes,
            total_queued_bytes: &self.queued_bytes,
        }
    }

    pub(crate) fn sessions(&self) -> MutexGuard<'_, HashMap<Arc<str>, Arc<Session>>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn router(&self) -> RwLockWriteGuard<'_, Router> {
        write(&self.router)
    }

    /// Delivers a message to every matching subscription, and keeps it if it is retained.
    /// `publisher` is the client it came from (for No Local), if any.
    pub(crate) fn publish(&self, publish: Publish, publisher: Option<&str>) {
        let message = Message::new(publish);
        let publish = &message.publish;
        if publish.retain {
            let mut retained = write(&self.retained);
            if publish.payload.is_empty() {
                retained.remove(publish.topic.as_str());
            } else {
                retained.insert(publish.topic.as_str().into(), message.clone());
            }
        }
        // One copy per client for overlapping plain subscriptions, at the highest granted
        // QoS, with every matching subscription identifier (§3.3.4); shared ones each on
        // their own.
        let mut plain: HashMap<*const Session, (Arc<Session>, Outgoing)> = HashMap::new();
        let mut shared: Vec<(Arc<Session>, Outgoing)> = Vec::new();
        let router = read(&self.router);
        router.route(&publish.topic, |target| {
            let options = target.subscription.options;
            if options.no_local && !target.shared && publisher == Some(&*target.session.client_id) {
                return;
            }
            let qos = options.qos.min(publish.qos);
            let retain = publish.retain && options.retain_as_published;
            let ids = target.subscription.id.into_iter();
            if target.shared {
                let message = Outgoing {
                    message: message.clone(),
                    qos,
                    retain,
                    subscription_ids: ids.collect(),
                };
                shared.push((target.session.clone(), message));
                return;
            }
            let entry = plain.entry(Arc::as_ptr(target.session)).or_insert_with(|| {
                let message = Outgoing {
                    message: message.clone(),
                    qos,
                    retain,
                    subscription_ids: Vec::new(),
                };
                (target.session.clone(), message)
            });
            entry.1.qos = entry.1.qos.max(qos);
            entry.1.retain |= retain;
            entry.1.subscription_ids.extend(ids);
        });
        drop(router);
        let limits = self.limits();
        for (session, message) in plain.into_values().chain(shared) {
            if !session.enqueue(message, limits) && session.is_connected() {
                metrics::add(&self.metrics.messages_dropped, 1);
                tracing::warn!(client = %session.client_id, "queue full: message dropped");
            }
        }
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
            let mut retained = write(&self.retained);
            for m in expired {
                retained.remove(m.publish.topic.as_str());
            }
        }
        live
    }

    /// What the broker holds right now.
    pub(crate) fn gauges(&self) -> Gauges {
        Gauges {
            retained: read(&self.retained).len(),
            subscriptions: read(&self.router).len(),
            sessions: self.sessions().len(),
            queued_bytes: self.queued_bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn metrics_text(&self) -> String {
        self.metrics.render(self.gauges())
    }

    /// Empties a session: its subscriptions and queued messages go (a clean start).
    pub(crate) fn clear_session(&self, session: &Arc<Session>) {
        let filters: Vec<TopicFilter> = {
            let mut state = session.lock();
            let filters = state.subscriptions.drain().map(|(_, (f, _))| f).collect();
            state.clear(&self.queued_bytes);
            filters
        };
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
