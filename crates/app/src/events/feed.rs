//! The process's fan-out of new change-feed events: one [`Feed`] per process reads new events
//! once per notification (and on a timer) and broadcasts them; subscribers (SSE responses) hold
//! no database connection while they wait.
//!
//! Ids are handed out in commit order (see `migrations/0007_events.sql`), so "every event after
//! id N" read at any time never skips one that commits later with a smaller id.

use std::sync::Arc;
use std::time::Duration;

use hotpatch_store::events::{after, last_id, Event};
use hotpatch_store::{PgPool, StoreError};
use tokio::sync::{broadcast, watch, Notify};

/// Events read per query.
const PAGE: i64 = 500;
/// Batches a slow subscriber may fall behind before it re-reads from the database.
const BROADCAST_CAPACITY: usize = 1024;

/// New events as the feed read them: every event with an id in `(after, last]`, in id order.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The feed's position before this batch. A subscriber that has not seen everything up to it
    /// (it fell behind, or subscribed before the feed started) reads the difference from the table.
    pub after: i64,
    /// The events, in id order (never empty).
    pub events: Vec<Event>,
}

/// The process's fan-out of new events to its subscribers.
#[derive(Debug)]
pub struct Feed {
    sender: broadcast::Sender<Arc<Batch>>,
    /// Set when a notification (or a reconnection) says there may be new events.
    hint: Notify,
    /// True once the process stops: subscribers end their streams.
    stopped: watch::Sender<bool>,
}

impl Default for Feed {
    fn default() -> Self {
        Feed {
            sender: broadcast::channel(BROADCAST_CAPACITY).0,
            hint: Notify::new(),
            stopped: watch::channel(false).0,
        }
    }
}

impl Feed {
    /// Receives every batch read from now on. Subscribe *before* reading the backlog from the
    /// table: an event committed in between then arrives here (skip ids already sent).
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Batch>> {
        self.sender.subscribe()
    }

    /// Completes when the process is stopping.
    pub async fn stopped(&self) {
        let mut rx = self.stopped.subscribe();
        let _ = rx.wait_for(|stopped| *stopped).await;
    }

    /// There may be new events: the pump reads them.
    pub fn hint(&self) {
        self.hint.notify_one();
    }

    /// Number of subscribers (for metrics and tests).
    pub fn subscribers(&self) -> usize {
        self.sender.receiver_count()
    }

    pub(crate) fn stop(&self) {
        self.stopped.send_replace(true);
    }

    /// Reads new events after each hint, and every `poll` regardless (notifications are hints),
    /// and broadcasts them. Runs until dropped.
    pub(crate) async fn pump(&self, pool: &PgPool, poll: impl Fn() -> Duration) {
        let mut cursor: Option<i64> = None;
        loop {
            let result = match cursor.as_mut() {
                Some(at) => self.read_new(pool, at).await,
                None => match last_id(pool).await {
                    Ok(id) => {
                        cursor = Some(id);
                        Ok(())
                    }
                    Err(e) => Err(e),
                },
            };
            if let Err(e) = result {
                tracing::warn!(error = %e, "reading new events failed; retrying");
            }
            tokio::select! {
                () = self.hint.notified() => {}
                () = tokio::time::sleep(poll()) => {}
            }
        }
    }

    async fn read_new(&self, pool: &PgPool, cursor: &mut i64) -> Result<(), StoreError> {
        if self.sender.receiver_count() == 0 {
            // Nobody listens here: only keep the position.
            *cursor = last_id(pool).await?.max(*cursor);
            return Ok(());
        }
        loop {
            let events = after(pool, *cursor, None, None, PAGE).await?;
            let Some(last) = events.last().map(|e| e.id) else { return Ok(()) };
            let full = events.len() as i64 == PAGE;
            // No receiver left in the meantime is not an error.
            let _ = self.sender.send(Arc::new(Batch { after: *cursor, events }));
            *cursor = last;
            if !full {
                return Ok(());
            }
        }
    }
}
