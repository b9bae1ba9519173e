//! This replica's wake-ups: the notifications its LISTEN connection hears (see
//! `hotpatch_store::wakeup`), fanned out in memory to the requests waiting on a key (a machine's
//! claim), to the kept patch status answers (a [`StatusSink`]) and to the change feed
//! ([`Feed`]).
//!
//! Notifications are hints, never the truth: a waiter re-checks the database after every wake-up
//! and on a timer, and when the LISTEN connection drops (notifications may have been missed) every
//! waiter is woken to re-check, then once a second until the connection is back. The loop that
//! listens is in `listen.rs` ([`Wakeups::run`]).

mod listen;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::events::feed::Feed;

/// Told which machines' status inputs changed, so that what was computed from them is dropped.
/// Called on the LISTEN loop: implementations must be quick and must not block.
pub trait StatusSink: Send + Sync {
    /// These machines' inputs changed.
    fn changed(&self, ids: &[Uuid]);
    /// Any machine's may have: a change of what every answer depends on, or notifications were
    /// (or may have been) missed while the connection was down or coming up.
    fn changed_all(&self);
}

/// Which wake-up a waiter waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    /// A job for this machine.
    Machine(Uuid),
}

/// The waiters of this process, by key.
#[derive(Debug, Default)]
pub struct Wakeups {
    waiters: Mutex<HashMap<Key, Arc<Notify>>>,
    /// Wakes everyone: the LISTEN connection dropped, or is down.
    all: Notify,
    /// Whether the LISTEN connection is up (caches that rely on notifications check it).
    listening: AtomicBool,
    /// Bumped on every token notification and every (re)connection: token caches drop entries
    /// read under an older generation.
    token_generation: AtomicU64,
    /// Woken with every bump of the token generation (streams of revoked tokens end on it).
    tokens: Notify,
    /// The change feed of this process (fed while [`Wakeups::run`] runs).
    feed: Feed,
    /// Where status changes go (see [`Wakeups::set_status_sink`]).
    status_sink: std::sync::RwLock<Option<Arc<dyn StatusSink>>>,
}

impl std::fmt::Debug for dyn StatusSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StatusSink")
    }
}

/// A registration for one key; dropping it unregisters.
#[derive(Debug)]
pub struct Subscription {
    hub: Arc<Wakeups>,
    key: Key,
    notify: Arc<Notify>,
}

impl Wakeups {
    /// A hub with no waiters; call [`Wakeups::run`] to feed it.
    pub fn new() -> Arc<Wakeups> {
        Arc::new(Wakeups::default())
    }

    /// Registers interest in `key`. Register *before* checking the database, then wait on
    /// [`Subscription::changed`]: a notification between the check and the wait is not lost.
    pub fn subscribe(self: &Arc<Self>, key: Key) -> Subscription {
        let notify = self.lock().entry(key).or_default().clone();
        Subscription { hub: self.clone(), key, notify }
    }

    /// Wakes the waiters of `key` in this process.
    pub fn wake(&self, key: Key) {
        if let Some(n) = self.lock().get(&key) {
            n.notify_waiters();
        }
    }

    /// Wakes every waiter of this process (and has the change feed look for new events).
    pub fn wake_all(&self) {
        self.all.notify_waiters();
        self.feed.hint();
    }

    /// The change feed of this process.
    pub fn feed(&self) -> &Feed {
        &self.feed
    }

    /// Whether notifications are being received right now.
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::Acquire)
    }

    /// The current token generation: it changes whenever a token was revoked or changed, or
    /// notifications may have been missed; a cached credential is good only within one generation.
    pub fn token_generation(&self) -> u64 {
        self.token_generation.load(Ordering::Acquire)
    }

    /// Wakes when a token was revoked or changed, here or (through notifications) on another
    /// replica, or notifications may have been missed. Enable it before checking a token, as a
    /// [`Subscription`] is registered before checking the queue.
    pub fn tokens_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.tokens.notified()
    }

    /// A token changed (revoked here, or a notification of it, or notifications may have been
    /// missed): cached credentials are void, and streams waiting on [`Wakeups::tokens_changed`]
    /// re-check. Revoking calls it before answering, not only once its notification comes back.
    pub fn bump_token_generation(&self) {
        self.token_generation.fetch_add(1, Ordering::AcqRel);
        self.tokens.notify_waiters();
    }

    /// Sends this process's status changes to `sink` (instead of any earlier one).
    pub fn set_status_sink(&self, sink: Arc<dyn StatusSink>) {
        *self.status_sink.write().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    fn status_sink(&self) -> Option<Arc<dyn StatusSink>> {
        self.status_sink.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Number of keys with waiters (for metrics).
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Notify>>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Subscription {
    /// A future that completes at the next wake-up of this key (or of everyone). Create it before
    /// checking the database and await it after, so a wake-up in between is kept.
    pub fn changed(&self) -> Changed<'_> {
        let mut own = Box::pin(self.notify.notified());
        let mut all = Box::pin(self.hub.all.notified());
        own.as_mut().enable();
        all.as_mut().enable();
        Changed { own, all }
    }
}

/// See [`Subscription::changed`].
#[derive(Debug)]
pub struct Changed<'a> {
    own: std::pin::Pin<Box<Notified<'a>>>,
    all: std::pin::Pin<Box<Notified<'a>>>,
}

impl Changed<'_> {
    /// Waits for the wake-up.
    pub async fn wait(self) {
        let Changed { own, all } = self;
        tokio::select! {
            () = own => {}
            () = all => {}
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut waiters = self.hub.lock();
        // Two references left: ours and the map's. Then nobody else waits on this key.
        if Arc::strong_count(&self.notify) <= 2 {
            waiters.remove(&self.key);
        }
    }
}
