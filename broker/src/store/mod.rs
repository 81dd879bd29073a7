//! What the broker keeps across restarts (issue 3's storage seam, issue 7's durability):
//! persistent sessions, the QoS 1 and 2 messages queued and in flight for them, inbound
//! QoS 2 state, and retained messages.
//!
//! The broker's maps stay the working copy; a [`Store`] is told every change to the state
//! worth keeping as an [`Op`], in order, and says by a [`Ticket`] when that change is
//! durable. A connection sends nothing that depends on a change (a PUBACK, a PUBREC, a
//! PUBCOMP, a CONNACK with session present) before the change's ticket is durable.
//!
//! Two implementations: [`Memory`] keeps nothing (the broker's maps are the only copy)
//! and [`Disk`] writes a redb file, many connections' changes in one transaction (group
//! commit).

mod disk;
mod record;

use std::sync::Arc;

use tokio::sync::watch;

use crate::router::Subscription;
use crate::session::{Message, Outgoing};
use midge_codec::TopicFilter;

pub(crate) use disk::Disk;
pub use record::StoreError;
pub(crate) use record::unix_secs;

/// One change to the kept state.
#[derive(Debug)]
pub(crate) enum Op {
    /// A persistent session: its expiry interval and subscriptions (a [`record`] session).
    Session {
        client_id: Arc<str>,
        record: Vec<u8>,
    },
    /// A session ended: it goes with its messages and inbound QoS 2 state.
    EndSession { client_id: Arc<str> },
    /// A QoS 1 or 2 message queued for a session, under its key.
    Message {
        client_id: Arc<str>,
        key: u64,
        record: Vec<u8>,
    },
    /// A message was sent with `packet_id`; `released` once its PUBREC came (QoS 2).
    Inflight {
        client_id: Arc<str>,
        key: u64,
        packet_id: u16,
        released: bool,
    },
    /// A message is done with: acknowledged, expired or not allowed.
    Forget { client_id: Arc<str>, key: u64 },
    /// An inbound QoS 2 message was received and PUBREC is to be sent.
    AwaitPubRel { client_id: Arc<str>, packet_id: u16 },
    /// Its PUBREL came.
    PubRelReceived { client_id: Arc<str>, packet_id: u16 },
    /// A retained message (a [`record`] message with no subscription part).
    Retain { topic: Box<str>, record: Vec<u8> },
    /// A retained message was removed.
    Unretain { topic: Box<str> },
}

impl Op {
    pub(crate) fn session<'a>(
        client_id: &Arc<str>,
        expiry_interval: u32,
        disconnected_at: Option<u64>,
        subscriptions: impl Iterator<Item = (&'a TopicFilter, &'a Subscription)>,
    ) -> Op {
        Op::Session {
            client_id: client_id.clone(),
            record: record::session(expiry_interval, disconnected_at, subscriptions),
        }
    }

    pub(crate) fn message(client_id: &Arc<str>, key: u64, outgoing: &Outgoing) -> Op {
        Op::Message {
            client_id: client_id.clone(),
            key,
            record: record::message(outgoing),
        }
    }

    pub(crate) fn retain(message: &Message) -> Op {
        Op::Retain {
            topic: message.publish.topic.as_str().into(),
            record: record::retained(message),
        }
    }
}

/// Where an [`Op`] stands in the order of writes: durable once the store's progress
/// reaches it. Tickets of later ops are never smaller.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Ticket(u64);

impl Ticket {
    /// Nothing to wait for.
    pub(crate) const NONE: Ticket = Ticket(0);
}

/// How far a store has written.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Progress {
    /// Every op with a ticket up to this one is durable.
    pub(crate) durable: u64,
    /// A write failed: nothing more will become durable.
    pub(crate) failed: bool,
}

/// The storage seam. Ops are kept in the order they are submitted; callers submit the
/// ops of one session under that session's lock, so its changes cannot overtake each other.
pub(crate) trait Store: Send + Sync {
    /// Whether ops are kept at all; callers skip building them when not.
    fn is_durable(&self) -> bool;
    /// A key for a new message, never used before in this store.
    fn new_key(&self) -> u64;
    /// Queues `ops` for writing, all in the same transaction; no ops: [`Ticket::NONE`].
    fn submit_all(&self, ops: Vec<Op>) -> Ticket;
    /// Queues `op` for writing.
    fn submit(&self, op: Op) -> Ticket {
        self.submit_all(vec![op])
    }
    /// Watches the write progress, for [`durable`]; `None` when nothing is ever written.
    fn progress(&self) -> Option<watch::Receiver<Progress>>;
    /// Writes what is queued and stops writing (at shutdown).
    fn close(&self);
    /// What has been written so far.
    fn written(&self) -> Written {
        Written::default()
    }
}

/// Counts of a store's writes, for `/metrics`.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Written {
    pub(crate) commits: u64,
    pub(crate) ops: u64,
}

/// Waits until `ticket` is durable. Fails if the store cannot write any more.
pub(crate) async fn durable(
    progress: &mut watch::Receiver<Progress>,
    ticket: Ticket,
) -> Result<(), StoreError> {
    match progress
        .wait_for(|p| p.failed || p.durable >= ticket.0)
        .await
    {
        Ok(p) if !p.failed => Ok(()),
        _ => Err(StoreError("the store cannot write; see the log".into())),
    }
}

/// The store that keeps nothing: sessions and retained messages live as long as the
/// process (`--in-memory`).
pub(crate) struct Memory;

impl Store for Memory {
    fn is_durable(&self) -> bool {
        false
    }

    fn new_key(&self) -> u64 {
        0
    }

    fn submit_all(&self, _: Vec<Op>) -> Ticket {
        Ticket::NONE
    }

    fn progress(&self) -> Option<watch::Receiver<Progress>> {
        None
    }

    fn close(&self) {}
}

/// A message kept for a session, as read back.
pub(crate) struct StoredMessage {
    pub(crate) outgoing: Outgoing,
    /// The packet identifier it was sent with, and whether its PUBREC came.
    pub(crate) inflight: Option<(u16, bool)>,
}

/// A persistent session, as read back.
pub(crate) struct StoredSession {
    pub(crate) client_id: Arc<str>,
    pub(crate) expiry_interval: u32,
    /// When its client disconnected (seconds since the Unix epoch); `None` if it was
    /// connected when the broker stopped.
    pub(crate) disconnected_at: Option<u64>,
    pub(crate) subscriptions: Vec<(TopicFilter, Subscription)>,
    /// In the order they were queued.
    pub(crate) messages: Vec<StoredMessage>,
    pub(crate) awaiting_pubrel: Vec<u16>,
}

/// Everything a store held at start-up, expired sessions and messages already left out.
#[derive(Default)]
pub(crate) struct Snapshot {
    pub(crate) sessions: Vec<StoredSession>,
    pub(crate) retained: Vec<Arc<Message>>,
}
