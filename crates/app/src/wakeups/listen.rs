//! The LISTEN loop that feeds a [`Wakeups`]: each notification wakes the waiters of its key,
//! bumps the token generation, drops kept status answers or hints the change feed; a lost
//! connection wakes everyone and is retried each second.

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use hotpatch_store::wakeup::{Listener, Notice, Received, StatusChange};
use hotpatch_store::PgPool;

use super::{Key, Wakeups};

/// How often the change feed looks for new events while notifications are received (a safety net).
const FEED_POLL: Duration = Duration::from_secs(5);
/// How often it looks while they are not.
const FEED_POLL_UNHEARD: Duration = Duration::from_millis(500);

impl Wakeups {
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
                l = Listener::connect(&pool) => match l {
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
                    r = listener.recv() => r,
                };
                match received {
                    Ok(Received::Notice(notice)) => self.notice(notice),
                    // Reconnected by sqlx: notifications may have been missed.
                    Ok(Received::Reconnected) => {
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

    /// Acts on one notification.
    fn notice(&self, notice: Notice) {
        match notice {
            Notice::Token => self.bump_token_generation(),
            Notice::Events => self.feed.hint(),
            Notice::Status(change) => self.status_changed(change),
            Notice::Job(machine) => self.wake(Key::Machine(machine)),
        }
    }

    fn set_listening(&self, up: bool) {
        // Order matters: a cache must never pair the new generation with the old state.
        self.bump_token_generation();
        self.listening.store(up, Ordering::Release);
        // Whichever way it went, status notifications may have been missed.
        if let Some(sink) = self.status_sink() {
            sink.changed_all();
        }
    }

    fn status_changed(&self, change: StatusChange) {
        let Some(sink) = self.status_sink() else { return };
        match change {
            StatusChange::All => sink.changed_all(),
            StatusChange::Machines(ids) => sink.changed(&ids),
        }
    }
}
