//! The durable store: one redb file, written by one thread that commits whatever
//! connections have submitted since its last commit in one transaction (group commit).
//!
//! Tables, keyed so a session's rows are next to each other:
//! - `sessions`: client id → session record (expiry interval, subscriptions)
//! - `messages`: (client id, key) → message record; keys grow, so this is queue order
//! - `inflight`: (client id, key) → packet id, plus 0x1_0000 once PUBREC came
//! - `inbound`: (client id, packet id) → () for QoS 2 messages awaiting PUBREL
//! - `retained`: topic → retained record

use std::collections::{HashMap, HashSet};
use std::os::unix::fs::DirBuilderExt;
use std::path::Path;
#[cfg(test)]
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::watch;

use super::record::{self, StoreError};
use super::{Op, Progress, Snapshot, Store, StoredMessage, StoredSession, Ticket, Written};

const SESSIONS: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("sessions");
const MESSAGES: TableDefinition<'_, (&str, u64), &[u8]> = TableDefinition::new("messages");
const INFLIGHT: TableDefinition<'_, (&str, u64), u32> = TableDefinition::new("inflight");
const INBOUND: TableDefinition<'_, (&str, u16), ()> = TableDefinition::new("inbound");
const RETAINED: TableDefinition<'_, &str, &[u8]> = TableDefinition::new("retained");

const RELEASED: u32 = 0x1_0000;

/// The name of the store's file in the data directory.
pub(crate) const FILE: &str = "midge.redb";

/// Ops submitted and not yet taken by the writer.
#[derive(Default)]
struct Pending {
    ops: Vec<Op>,
    /// The ticket of the ops now pending: the number of the commit that will write them.
    batch: u64,
    closed: bool,
}

struct Queue {
    pending: Mutex<Pending>,
    wake: Condvar,
    commits: AtomicU64,
    ops: AtomicU64,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A redb file and the thread that writes it.
pub(crate) struct Disk {
    queue: Arc<Queue>,
    progress: watch::Receiver<Progress>,
    next_key: AtomicU64,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Disk {
    /// Opens (or creates) the store in `dir` and reads it back. Expired sessions and
    /// messages are left out of the snapshot and deleted. Any error names the file.
    pub(crate) fn open(dir: &Path) -> Result<(Disk, Snapshot), StoreError> {
        let path = dir.join(FILE);
        let named =
            |e: &dyn std::fmt::Display| StoreError(format!("store {}: {e}", path.display()));
        // Sessions and messages are the clients' business: the directory is the broker's own.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| StoreError(format!("data directory {}: {e}", dir.display())))?;
        let started = Instant::now();
        let db = Database::create(&path).map_err(|e| named(&e))?;
        let (snapshot, max_key, cleanup) = read(&db).map_err(|e| named(&e))?;
        let sessions = snapshot.sessions.len();
        let messages: usize = snapshot.sessions.iter().map(|s| s.messages.len()).sum();
        tracing::info!(
            "store {}: sessions {sessions}, messages {messages}, retained {}, read in {:?}",
            path.display(),
            snapshot.retained.len(),
            started.elapsed()
        );
        let (tx, progress) = watch::channel(Progress::default());
        let queue = Arc::new(Queue {
            pending: Mutex::new(Pending {
                ops: cleanup,
                batch: 1,
                closed: false,
            }),
            wake: Condvar::new(),
            commits: AtomicU64::new(0),
            ops: AtomicU64::new(0),
        });
        let writer = {
            let (queue, path) = (queue.clone(), path.clone());
            std::thread::Builder::new()
                .name("midge-store".into())
                .spawn(move || write_loop(&db, &queue, &tx, &path))
                .map_err(|e| StoreError(format!("cannot start the store's writer: {e}")))?
        };
        let disk = Disk {
            queue,
            progress,
            // Past every key in the file, and every key a session could still name (keys
            // of forgotten messages are not reused: they start from the clock).
            next_key: AtomicU64::new((max_key + 1).max(record::unix_secs() << 20)),
            writer: Mutex::new(Some(writer)),
        };
        Ok((disk, snapshot))
    }
}

impl Store for Disk {
    fn is_durable(&self) -> bool {
        true
    }

    fn new_key(&self) -> u64 {
        self.next_key.fetch_add(1, Ordering::Relaxed)
    }

    fn submit_all(&self, mut ops: Vec<Op>) -> Ticket {
        if ops.is_empty() {
            return Ticket::NONE;
        }
        let mut pending = self.queue.lock();
        if pending.ops.is_empty() {
            self.queue.wake.notify_one();
        }
        pending.ops.append(&mut ops);
        Ticket(pending.batch)
    }

    fn progress(&self) -> Option<watch::Receiver<Progress>> {
        Some(self.progress.clone())
    }

    fn written(&self) -> Written {
        Written {
            commits: self.queue.commits.load(Ordering::Relaxed),
            ops: self.queue.ops.load(Ordering::Relaxed),
        }
    }

    fn close(&self) {
        self.queue.lock().closed = true;
        self.queue.wake.notify_one();
        let writer = self.writer.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(writer) = writer {
            let _ = writer.join();
        }
    }
}

/// The writer: takes every pending op, writes them in one transaction, commits (fsync),
/// and moves the progress on, until closed.
fn write_loop(db: &Database, queue: &Queue, progress: &watch::Sender<Progress>, path: &Path) {
    loop {
        let (ops, batch) = {
            let mut pending = queue.lock();
            while pending.ops.is_empty() && !pending.closed {
                pending = queue.wake.wait(pending).unwrap_or_else(|p| p.into_inner());
            }
            if pending.ops.is_empty() {
                return;
            }
            let batch = pending.batch;
            pending.batch += 1;
            (std::mem::take(&mut pending.ops), batch)
        };
        let ops = coalesce(ops);
        let count = ops.len() as u64;
        if let Err(e) = write(db, ops) {
            tracing::error!(
                "store {}: cannot write: {e}; acknowledgements stop",
                path.display()
            );
            progress.send_modify(|p| p.failed = true);
            return;
        }
        // Counted before it is announced: whoever the announcement wakes sees the counts.
        queue.commits.fetch_add(1, Ordering::Relaxed);
        queue.ops.fetch_add(count, Ordering::Relaxed);
        progress.send_modify(|p| p.durable = batch);
    }
}

/// Leaves out the messages whose whole life is in this batch: queued, sent and
/// acknowledged since the last commit, they need never be on disk (each copy of a message
/// has its own key, so this is exact). Under load, when subscribers keep up, most are.
fn coalesce(ops: Vec<Op>) -> Vec<Op> {
    let key = |op: &Op| match op {
        Op::Message { client_id, key, .. }
        | Op::Inflight { client_id, key, .. }
        | Op::Forget { client_id, key } => Some((client_id.clone(), *key)),
        _ => None,
    };
    let written: HashSet<(Arc<str>, u64)> = ops
        .iter()
        .filter(|op| matches!(op, Op::Message { .. }))
        .filter_map(key)
        .collect();
    let done: HashSet<(Arc<str>, u64)> = ops
        .iter()
        .filter(|op| matches!(op, Op::Forget { .. }))
        .filter_map(key)
        .filter(|k| written.contains(k))
        .collect();
    if done.is_empty() {
        return ops;
    }
    ops.into_iter()
        .filter(|op| key(op).is_none_or(|k| !done.contains(&k)))
        .collect()
}

fn write(db: &Database, ops: Vec<Op>) -> Result<(), redb::Error> {
    let txn = db.begin_write()?;
    {
        let mut sessions = txn.open_table(SESSIONS)?;
        let mut messages = txn.open_table(MESSAGES)?;
        let mut inflight = txn.open_table(INFLIGHT)?;
        let mut inbound = txn.open_table(INBOUND)?;
        let mut retained = txn.open_table(RETAINED)?;
        for op in ops {
            match op {
                Op::Session { client_id, record } => {
                    sessions.insert(&*client_id, record.as_slice())?;
                }
                Op::EndSession { client_id } => {
                    let id = &*client_id;
                    sessions.remove(id)?;
                    messages.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                    inflight.retain_in((id, 0)..=(id, u64::MAX), |_, _| false)?;
                    inbound.retain_in((id, 0)..=(id, u16::MAX), |_, _| false)?;
                }
                Op::Message {
                    client_id,
                    key,
                    record,
                } => {
                    messages.insert((&*client_id, key), record.as_slice())?;
                }
                Op::Inflight {
                    client_id,
                    key,
                    packet_id,
                    released,
                } => {
                    let value = u32::from(packet_id) | if released { RELEASED } else { 0 };
                    inflight.insert((&*client_id, key), value)?;
                }
                Op::Forget { client_id, key } => {
                    messages.remove((&*client_id, key))?;
                    inflight.remove((&*client_id, key))?;
                }
                Op::AwaitPubRel {
                    client_id,
                    packet_id,
                } => {
                    inbound.insert((&*client_id, packet_id), ())?;
                }
                Op::PubRelReceived {
                    client_id,
                    packet_id,
                } => {
                    inbound.remove((&*client_id, packet_id))?;
                }
                Op::Retain { topic, record } => {
                    retained.insert(&*topic, record.as_slice())?;
                }
                Op::Unretain { topic } => {
                    retained.remove(&*topic)?;
                }
            }
        }
    }
    txn.commit()?;
    Ok(())
}

/// What the file holds: the live state, the highest message key, and the ops that delete
/// what has expired (and what no session owns any more).
fn read(db: &Database) -> Result<(Snapshot, u64, Vec<Op>), String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let mut cleanup = Vec::new();
    let mut snapshot = Snapshot::default();
    let now_secs = record::unix_secs();
    let now = Instant::now();
    let mut sessions: HashMap<Arc<str>, StoredSession> = HashMap::new();
    let mut order: Vec<Arc<str>> = Vec::new();
    let Ok(table) = txn.open_table(SESSIONS) else {
        // A new file: no tables yet.
        return Ok((snapshot, 0, cleanup));
    };
    for row in table.iter().map_err(|e| e.to_string())? {
        let (id, value) = row.map_err(|e| e.to_string())?;
        let client_id: Arc<str> = id.value().into();
        let (expiry_interval, disconnected_at, subscriptions) = record::read_session(value.value())
            .map_err(|e| format!("session {client_id:?}: {e}"))?;
        // A session whose client was connected when the broker stopped starts its expiry now.
        let since = disconnected_at.unwrap_or(now_secs);
        if expiry_interval != u32::MAX && since + u64::from(expiry_interval) <= now_secs {
            cleanup.push(Op::EndSession { client_id });
            continue;
        }
        order.push(client_id.clone());
        sessions.insert(
            client_id.clone(),
            StoredSession {
                client_id,
                expiry_interval,
                disconnected_at,
                subscriptions,
                messages: Vec::new(),
                awaiting_pubrel: Vec::new(),
            },
        );
    }
    let mut max_key = 0;
    let inflight = txn.open_table(INFLIGHT).map_err(|e| e.to_string())?;
    let messages = txn.open_table(MESSAGES).map_err(|e| e.to_string())?;
    for row in messages.iter().map_err(|e| e.to_string())? {
        let (k, value) = row.map_err(|e| e.to_string())?;
        let (id, key) = k.value();
        max_key = max_key.max(key);
        let client_id: Arc<str> = id.into();
        let Some(session) = sessions.get_mut(&client_id) else {
            cleanup.push(Op::Forget { client_id, key });
            continue;
        };
        let outgoing = record::read_message(value.value(), key)
            .map_err(|e| format!("message {key} of {client_id:?}: {e}"))?;
        let flight = inflight
            .get((id, key))
            .map_err(|e| e.to_string())?
            .map(|v| v.value());
        let flight = flight.map(|v| ((v & 0xffff) as u16, v & RELEASED != 0));
        // A message released (PUBREC received) is no longer delivered: it is not expired.
        if outgoing.message.is_expired(now) && !flight.is_some_and(|(_, released)| released) {
            cleanup.push(Op::Forget { client_id, key });
            continue;
        }
        session.messages.push(StoredMessage {
            outgoing,
            inflight: flight,
        });
    }
    // A send record whose message is gone (never expected; harmless) goes too.
    for row in inflight.iter().map_err(|e| e.to_string())? {
        let (k, _) = row.map_err(|e| e.to_string())?;
        let (id, key) = k.value();
        if messages
            .get((id, key))
            .map_err(|e| e.to_string())?
            .is_none()
        {
            let client_id = id.into();
            cleanup.push(Op::Forget { client_id, key });
        }
    }
    let inbound = txn.open_table(INBOUND).map_err(|e| e.to_string())?;
    for row in inbound.iter().map_err(|e| e.to_string())? {
        let (k, ()) = row
            .map_err(|e| e.to_string())
            .map(|(k, v)| (k, v.value()))?;
        let (id, packet_id) = k.value();
        match sessions.get_mut(id) {
            Some(session) => session.awaiting_pubrel.push(packet_id),
            None => cleanup.push(Op::PubRelReceived {
                client_id: id.into(),
                packet_id,
            }),
        }
    }
    let retained = txn.open_table(RETAINED).map_err(|e| e.to_string())?;
    for row in retained.iter().map_err(|e| e.to_string())? {
        let (topic, value) = row.map_err(|e| e.to_string())?;
        let message = record::read_retained(value.value())
            .map_err(|e| format!("retained message {:?}: {e}", topic.value()))?;
        if message.is_expired(now) {
            cleanup.push(Op::Unretain {
                topic: topic.value().into(),
            });
            continue;
        }
        snapshot.retained.push(message);
    }
    snapshot.sessions = order
        .into_iter()
        .filter_map(|id| sessions.remove(&id))
        .collect();
    Ok((snapshot, max_key, cleanup))
}

#[cfg(test)]
mod tests {
    use midge_codec::{Publish, QoS, TopicName};

    use super::*;
    use crate::session::{Message, Outgoing};

    fn dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("midge-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn outgoing(payload: &'static [u8]) -> Outgoing {
        let mut publish = Publish::new(TopicName::from_static("t"), payload);
        publish.qos = QoS::ExactlyOnce;
        Outgoing {
            message: Message::new(publish),
            qos: QoS::ExactlyOnce,
            retain: false,
            subscription_ids: Vec::new(),
            key: None,
        }
    }

    #[tokio::test]
    async fn what_is_written_is_read_back_after_reopening() {
        let dir = dir("reopen");
        let (disk, snapshot) = Disk::open(&dir).unwrap();
        assert!(snapshot.sessions.is_empty() && snapshot.retained.is_empty());
        let id: Arc<str> = "c".into();
        let gone: Arc<str> = "gone".into();
        let mut last = Ticket::NONE;
        let ops = [
            Op::session(&id, 60, None, std::iter::empty()),
            Op::session(&gone, 60, None, std::iter::empty()),
            Op::message(&gone, 1, &outgoing(b"x")),
            Op::EndSession { client_id: gone },
            Op::message(&id, 10, &outgoing(b"queued")),
            Op::message(&id, 11, &outgoing(b"sent")),
            Op::message(&id, 12, &outgoing(b"acked")),
            Op::Inflight {
                client_id: id.clone(),
                key: 11,
                packet_id: 5,
                released: true,
            },
            Op::Inflight {
                client_id: id.clone(),
                key: 12,
                packet_id: 6,
                released: false,
            },
            Op::Forget {
                client_id: id.clone(),
                key: 12,
            },
            Op::AwaitPubRel {
                client_id: id.clone(),
                packet_id: 9,
            },
            Op::AwaitPubRel {
                client_id: id.clone(),
                packet_id: 10,
            },
            Op::PubRelReceived {
                client_id: id.clone(),
                packet_id: 10,
            },
            Op::retain(&outgoing(b"kept").message),
            // Rows nothing owns: cleaned up at the next start.
            Op::Inflight {
                client_id: id.clone(),
                key: 99,
                packet_id: 7,
                released: false,
            },
            Op::AwaitPubRel {
                client_id: "nobody".into(),
                packet_id: 1,
            },
        ];
        for op in ops {
            last = last.max(disk.submit(op));
        }
        let mut progress = disk.progress().unwrap();
        super::super::durable(&mut progress, last).await.unwrap();
        disk.close();
        drop(disk);

        let (disk, snapshot) = Disk::open(&dir).unwrap();
        assert_eq!(snapshot.sessions.len(), 1);
        let session = &snapshot.sessions[0];
        assert_eq!((&*session.client_id, session.expiry_interval), ("c", 60));
        let messages: Vec<_> = session
            .messages
            .iter()
            .map(|m| (&m.outgoing.message.publish.payload[..], m.inflight))
            .collect();
        assert_eq!(
            messages,
            [(&b"queued"[..], None), (&b"sent"[..], Some((5, true)))]
        );
        assert_eq!(session.awaiting_pubrel, [9]);
        assert_eq!(&snapshot.retained[0].publish.payload[..], b"kept");
        assert!(disk.new_key() > 12);
        let mut progress = disk.progress().unwrap();
        super::super::durable(&mut progress, Ticket(1))
            .await
            .unwrap();
        assert_eq!(
            disk.written().ops,
            2,
            "the two rows nothing owns are deleted"
        );
        disk.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn messages_acknowledged_within_a_batch_are_never_written() {
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let inflight = |client_id: &Arc<str>, key| Op::Inflight {
            client_id: client_id.clone(),
            key,
            packet_id: 1,
            released: false,
        };
        let forget = |client_id: &Arc<str>, key| Op::Forget {
            client_id: client_id.clone(),
            key,
        };
        let ops = vec![
            Op::message(&a, 1, &outgoing(b"done")),
            Op::message(&b, 1, &outgoing(b"same key, other session")),
            inflight(&a, 1),
            forget(&a, 1),
            // Written by an earlier batch: its forgetting must stay.
            forget(&a, 0),
            Op::message(&a, 2, &outgoing(b"still queued")),
        ];
        let kept: Vec<String> = coalesce(ops)
            .iter()
            .map(|op| match op {
                Op::Message { client_id, key, .. } => format!("message {client_id} {key}"),
                Op::Forget { client_id, key } => format!("forget {client_id} {key}"),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(kept, ["message b 1", "forget a 0", "message a 2"]);
    }

    #[test]
    fn a_damaged_file_is_an_error_naming_it() {
        let dir = dir("damaged");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(FILE), vec![0xa5; 8192]).unwrap();
        let Err(err) = Disk::open(&dir) else {
            panic!("a damaged file opened");
        };
        assert!(err.0.contains(&*dir.join(FILE).to_string_lossy()), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
