//! Parked connections: what lets an idle client cost less than its task.
//!
//! A plain TCP connection that has had nothing to do for `park_after_idle_ms` gives up its
//! task and tokio's registration of its socket (together about 2 KiB), and waits in its
//! session as a closure holding what it needs to go on (see `connection::park`). One thread
//! for the whole broker watches the sockets of all parked connections, in an epoll set of
//! its own (through mio), and checks their keep alive once a second. A parked connection
//! is revived into a new task when:
//!
//! - its socket has something: data, the client closing, an error (this thread);
//! - its session gets a message, or a new connection takes the session over
//!   ([`crate::session::SessionState::parked`]);
//! - its keep alive runs out (this thread, within a second);
//! - the broker shuts down ([`Parking::close`]).
//!
//! Whoever takes the connection out of the session, under the session's lock, revives it;
//! everyone else finds nothing there. The watcher knows a parked connection by its socket's
//! file descriptor; each parking registers it under a token of its own (descriptor and
//! generation), so an event that arrives for an earlier one is ignored.

use std::io;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};

use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Registry, Token};
use tokio::runtime::{EnterGuard, Handle};
use tokio_util::task::TaskTracker;

use crate::session::Session;

/// How often the watching thread checks parked connections' keep alive.
const SWEEP: Duration = Duration::from_secs(1);

/// The parked connections of one broker, the thread that watches them, and the tasks of
/// all connections past their handshake.
pub(crate) struct Parking {
    /// Started with the first parking: a broker that never parks has no thread.
    watcher: OnceLock<Watcher>,
    slots: Mutex<Slots>,
    /// The tasks of connections past their handshake, for shutdown to wait for. A tracker
    /// keeps no handle: a finished task's memory goes at once (a parked connection's task
    /// has finished).
    tasks: TaskTracker,
    /// Keep alive deadlines are counted in seconds since this.
    epoch: Instant,
}

struct Watcher {
    registry: Registry,
    runtime: Handle,
}

#[derive(Default)]
struct Slots {
    /// By file descriptor (the kernel hands out the lowest free one: they stay dense).
    slots: Vec<Slot>,
    /// Shutting down: nothing parks any more.
    closed: bool,
}

/// One parked connection, as the watching thread knows it: its session, where the
/// connection waits, and when its keep alive runs out.
#[derive(Default)]
struct Slot {
    session: Option<Arc<Session>>,
    generation: u32,
    /// Seconds since `epoch` after which it is revived to time out; 0 for never.
    deadline: u32,
}

impl Default for Parking {
    fn default() -> Self {
        Parking {
            watcher: OnceLock::new(),
            slots: Mutex::default(),
            tasks: TaskTracker::new(),
            epoch: Instant::now(),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Parking {
    /// Registers the socket `fd` of a connection of `session` that is parking, to be
    /// revived by the watching thread when it is readable or at `deadline`. To be called
    /// under the session's lock, before the connection is put there: an event that comes
    /// meanwhile then waits for the lock and finds it. Refused while shutting down, and
    /// when the thread or the registration cannot be had (the connection then stays as
    /// it is).
    pub(crate) fn park(
        self: &Arc<Self>,
        session: &Arc<Session>,
        fd: RawFd,
        deadline: Option<Instant>,
    ) -> io::Result<()> {
        let watcher = self.watcher()?;
        let index = usize::try_from(fd).map_err(io::Error::other)?;
        let mut slots = lock(&self.slots);
        if slots.closed {
            return Err(io::Error::other("shutting down"));
        }
        if slots.slots.len() <= index {
            slots.slots.resize_with(index + 1, Slot::default);
        }
        let deadline = deadline.map_or(0, |at| self.seconds(at));
        let Some(slot) = slots.slots.get_mut(index) else {
            return Err(io::Error::other("no slot"));
        };
        slot.generation = slot.generation.wrapping_add(1);
        let token = (u64::from(slot.generation) << 32) | index as u64;
        watcher.registry.register(
            &mut SourceFd(&fd),
            Token(token as usize),
            Interest::READABLE,
        )?;
        slot.session = Some(session.clone());
        slot.deadline = deadline;
        Ok(())
    }

    /// Takes a connection's socket `fd` back from the watching thread (by whoever revives
    /// it).
    pub(crate) fn unpark(&self, fd: RawFd) {
        if let Some(watcher) = self.watcher.get() {
            // Fails only for a socket no longer registered, which is then no longer watched.
            let _ = watcher.registry.deregister(&mut SourceFd(&fd));
        }
        let mut slots = lock(&self.slots);
        let slot = usize::try_from(fd)
            .ok()
            .and_then(|i| slots.slots.get_mut(i));
        if let Some(slot) = slot {
            slot.session = None;
            slot.deadline = 0;
        }
    }

    /// Runs a connection's task. Every connection past its handshake runs here, wherever
    /// it was started from (the watcher has no runtime of its own), so that shutdown can
    /// wait for all of them.
    pub(crate) fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        match self.watcher.get() {
            Some(watcher) => self.tasks.spawn_on(task, &watcher.runtime),
            None => self.tasks.spawn(task),
        };
    }

    /// Enters the broker's runtime on this thread, if a connection has ever been parked
    /// (only then can this be the watcher's thread): what giving a socket back to tokio
    /// needs.
    pub(crate) fn enter(&self) -> Option<EnterGuard<'_>> {
        self.watcher.get().map(|w| w.runtime.enter())
    }

    /// Shutting down: nothing parks any more, and every parked connection is revived (to
    /// say goodbye as the others do).
    pub(crate) fn close(&self) {
        let sessions: Vec<Arc<Session>> = {
            let mut slots = lock(&self.slots);
            slots.closed = true;
            slots
                .slots
                .iter()
                .filter_map(|s| s.session.clone())
                .collect()
        };
        for session in sessions {
            session.revive();
        }
    }

    /// Waits until every connection's task has ended; call after [`Parking::close`], once
    /// nothing accepts connections any more.
    pub(crate) async fn closed(&self) {
        self.tasks.close();
        self.tasks.wait().await;
    }

    /// Seconds from `epoch` to `at`, rounded up; at least 1 (0 means no deadline).
    fn seconds(&self, at: Instant) -> u32 {
        let since = at.saturating_duration_since(self.epoch);
        let secs = since.as_secs() + u64::from(since.subsec_nanos() > 0);
        u32::try_from(secs).unwrap_or(u32::MAX).max(1)
    }

    fn watcher(self: &Arc<Self>) -> io::Result<&Watcher> {
        if let Some(watcher) = self.watcher.get() {
            return Ok(watcher);
        }
        let poll = Poll::new()?;
        let watcher = Watcher {
            registry: poll.registry().try_clone()?,
            runtime: Handle::try_current().map_err(io::Error::other)?,
        };
        // Two parkings at once may both get here; the one whose watcher is kept starts
        // the thread, the other's poll is dropped unused.
        let mut ours = false;
        let kept = self.watcher.get_or_init(|| {
            ours = true;
            watcher
        });
        if ours {
            let parking = Arc::downgrade(self);
            std::thread::Builder::new()
                .name("midge-parked".into())
                .spawn(move || watch(poll, parking))?;
        }
        Ok(kept)
    }

    /// Revives the connection registered under `token`, if it is still parked there.
    fn ready(&self, token: u64) {
        let index = (token & u64::from(u32::MAX)) as usize;
        let session = {
            let slots = lock(&self.slots);
            match slots.slots.get(index) {
                Some(slot) if u64::from(slot.generation) == token >> 32 => slot.session.clone(),
                _ => None,
            }
        };
        if let Some(session) = session {
            session.revive();
        }
    }

    /// Revives every connection whose keep alive has run out.
    fn sweep(&self, now: Instant) {
        let now = self.seconds(now);
        let expired: Vec<Arc<Session>> = {
            let slots = lock(&self.slots);
            (slots.slots.iter())
                .filter(|s| s.deadline != 0 && s.deadline <= now)
                .filter_map(|s| s.session.clone())
                .collect()
        };
        for session in expired {
            session.revive();
        }
    }
}

/// The watching thread: waits for parked sockets, revives what is ready, sweeps keep alive
/// deadlines; until the broker is gone or closed.
fn watch(mut poll: Poll, parking: Weak<Parking>) {
    let mut events = Events::with_capacity(256);
    let mut swept = Instant::now();
    loop {
        if let Err(e) = poll.poll(&mut events, Some(SWEEP))
            && e.kind() != io::ErrorKind::Interrupted
        {
            tracing::error!("watching parked connections failed: {e}");
            return;
        }
        let Some(parking) = parking.upgrade() else {
            return;
        };
        for event in &events {
            parking.ready(event.token().0 as u64);
        }
        let now = Instant::now();
        if now.duration_since(swept) >= SWEEP {
            swept = now;
            parking.sweep(now);
        }
        if lock(&parking.slots).closed {
            return;
        }
    }
}
