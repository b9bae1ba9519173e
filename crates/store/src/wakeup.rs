//! Wake-ups from PostgreSQL: one LISTEN connection per process turns `NOTIFY`s (sent by the
//! `job_notify` trigger on any replica) into in-process wake-ups of the requests waiting on a key
//! (a machine's claim).
//!
//! Notifications are hints, never the truth: a waiter re-checks the database after every wake-up
//! and on a timer, and when the LISTEN connection drops (notifications may have been missed) every
//! waiter is woken to re-check, then once a second until the connection is back.
//!
//! The same connection hears the change feed's channel: the process's [`Feed`] reads new events
//! after each notification (and on a timer) and hands them to its SSE subscribers; and the status
//! channel, whose machine ids go to the process's [`StatusSink`] (its cache of patch status answers).

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sqlx::postgres::PgListener;
use sqlx::PgPool;
use tokio::sync::futures::Notified;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::events::{Feed, EVENT_CHANNEL};

/// Channel of "a job became claimable"; the payload is the machine id.
pub const JOB_CHANNEL: &str = "hotpatch_job";
/// Channel of "a token was revoked or changed"; the payload is the token id.
pub const TOKEN_CHANNEL: &str = "hotpatch_token";
/// Channel of "these machines' status inputs changed" (migration 0009): machine ids,
/// comma-separated, or `*` for every machine.
pub const STATUS_CHANNEL: &str = "hotpatch_status";

/// Told which machines' status inputs changed, so that what was computed from them is dropped.
/// Called on the LISTEN loop: implementations must be quick and must not block.
pub trait StatusSink: Send + Sync {
    /// These machines' inputs changed.
    fn changed(&self, ids: &[Uuid]);
    /// Any machine's may have: a change of what every answer depends on, or notifications were
    /// (or may have been) missed while the connection was down or coming up.
    fn changed_all(&self);
}

/// How often the change feed looks for new events while notifications are received (a safety net).
const FEED_POLL: Duration = Duration::from_secs(5);
/// How often it looks while they are not.
const FEED_POLL_UNHEARD: Duration = Duration::from_millis(500);

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

    /// Sends this process's status changes to `sink` (instead of any earlier one).
    pub fn set_status_sink(&self, sink: Arc<dyn StatusSink>) {
        *self.status_sink.write().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    fn status_sink(&self) -> Option<Arc<dyn StatusSink>> {
        self.status_sink.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    fn set_listening(&self, up: bool) {
        // Order matters: a cache must never pair the new generation with the old state.
        self.token_generation.fetch_add(1, Ordering::AcqRel);
        self.listening.store(up, Ordering::Release);
        // Whichever way it went, status notifications may have been missed.
        if let Some(sink) = self.status_sink() {
            sink.changed_all();
        }
    }

    fn status_changed(&self, payload: &str) {
        let Some(sink) = self.status_sink() else { return };
        if payload == "*" {
            sink.changed_all();
            return;
        }
        let ids: Vec<Uuid> = payload.split(',').filter_map(|id| id.parse().ok()).collect();
        sink.changed(&ids);
    }

    /// Number of keys with waiters (for metrics).
    pub fn waiting(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Notify>>> {
        // The map stays consistent even if a holder panicked: every operation is one call.
        self.waiters.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Listens on PostgreSQL until `shutdown` completes, waking waiters on each notification.
    /// Reconnects on its own; while disconnected, wakes everyone each second (polling fallback).
    /// Meanwhile the change feed reads and broadcasts new events; at the end its subscribers are
    /// told the process stops.
    pub async fn run(self: Arc<Self>, pool: PgPool, shutdown: impl Future<Output = ()>) {
        let pump = {
            let (hub, pool) = (self.clone(), pool.clone());
            async move {
                // Notifications are hints: the feed also looks on its own, often while they are not
                // being received.
                let poll = || if hub.is_listening() { FEED_POLL } else { FEED_POLL_UNHEARD };
                hub.feed.pump(&pool, poll).await;
            }
        };
        tokio::select! {
            () = self.clone().listen(pool, shutdown) => {}
            () = pump => {}
        }
        self.feed.stop();
    }

    async fn listen(self: Arc<Self>, pool: PgPool, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let mut listener = tokio::select! {
                () = &mut shutdown => return,
                l = connect(&pool) => match l {
                    Ok(l) => l,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot LISTEN for wake-ups; polling each second until it works");
                        self.wake_all();
                        tokio::select! {
                            () = &mut shutdown => return,
                            () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                        }
                    }
                },
            };
            // Anything sent while we were not listening is lost: everyone re-checks.
            self.set_listening(true);
            self.wake_all();
            loop {
                let received = tokio::select! {
                    () = &mut shutdown => {
                        self.set_listening(false);
                        return;
                    }
                    r = listener.try_recv() => r,
                };
                match received {
                    Ok(Some(n)) => {
                        if n.channel() == TOKEN_CHANNEL {
                            self.token_generation.fetch_add(1, Ordering::AcqRel);
                            continue;
                        }
                        if n.channel() == EVENT_CHANNEL {
                            self.feed.hint();
                            continue;
                        }
                        if n.channel() == STATUS_CHANNEL {
                            self.status_changed(n.payload());
                            continue;
                        }
                        let Ok(id) = n.payload().parse::<Uuid>() else { continue };
                        if n.channel() == JOB_CHANNEL {
                            self.wake(Key::Machine(id));
                        }
                    }
                    // Reconnected by sqlx: notifications may have been missed.
                    Ok(None) => {
                        tracing::info!("LISTEN connection re-established; waking every waiter to re-check");
                        self.set_listening(true);
                        self.wake_all();
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "LISTEN connection failed; reconnecting");
                        self.set_listening(false);
                        self.wake_all();
                        break;
                    }
                }
            }
        }
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen_all([JOB_CHANNEL, TOKEN_CHANNEL, EVENT_CHANNEL, STATUS_CHANNEL]).await?;
    Ok(listener)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wake_up_between_the_check_and_the_wait_is_not_lost() {
        let hub = Wakeups::new();
        let id = Uuid::now_v7();
        let sub = hub.subscribe(Key::Machine(id));
        let changed = sub.changed();
        hub.wake(Key::Machine(id));
        tokio::time::timeout(Duration::from_secs(1), changed.wait()).await.expect("woken");
    }

    #[tokio::test]
    async fn waking_one_key_does_not_wake_another() {
        let hub = Wakeups::new();
        let a = hub.subscribe(Key::Machine(Uuid::now_v7()));
        let changed = a.changed();
        hub.wake(Key::Machine(Uuid::now_v7()));
        assert!(tokio::time::timeout(Duration::from_millis(50), changed.wait()).await.is_err());
    }

    #[tokio::test]
    async fn the_last_subscription_dropped_unregisters_its_key() {
        let hub = Wakeups::new();
        let key = Key::Machine(Uuid::now_v7());
        let a = hub.subscribe(key);
        let b = hub.subscribe(key);
        drop(a);
        assert_eq!(hub.waiting(), 1);
        drop(b);
        assert_eq!(hub.waiting(), 0);
    }

    #[tokio::test]
    async fn wake_all_wakes_every_key() {
        let hub = Wakeups::new();
        let a = hub.subscribe(Key::Machine(Uuid::now_v7()));
        let changed = a.changed();
        hub.wake_all();
        tokio::time::timeout(Duration::from_secs(1), changed.wait()).await.expect("woken");
    }
}
