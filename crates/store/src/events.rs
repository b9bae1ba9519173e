//! The change feed: events written by the triggers of `migrations/0007_events.sql` (machine
//! status, operations, rollouts, agents), read back in id order, and fanned out in-process.
//!
//! Ids are handed out in commit order (see the migration), so "every event after id N" read at
//! any time never skips one that commits later with a smaller id. One [`Feed`] per process reads
//! new events once per notification and broadcasts them; subscribers (SSE responses) hold no
//! database connection while they wait.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::{PgExecutor, PgPool};
use tokio::sync::{broadcast, watch, Notify};
use uuid::Uuid;

use crate::error::StoreError;

/// Channel of "events were written"; the payload is the largest new id (a hint only).
pub const EVENT_CHANNEL: &str = "hotpatch_events";

/// The event types, as stored and as sent.
pub const TYPES: [&str; 6] = [
    "machine.status_changed",
    "operation.finished",
    "rollout.progressed",
    "rollout.halted",
    "agent.connected",
    "agent.lost",
];

/// An agent not seen for this long is lost (and connected again when it is next seen).
pub const AGENT_SILENCE: TimeDelta = TimeDelta::minutes(2);

/// Events read per query.
const PAGE: i64 = 500;
/// Batches a slow subscriber may fall behind before it re-reads from the database.
const BROADCAST_CAPACITY: usize = 1024;

/// One stored event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Increasing in commit order; the SSE `id`.
    pub id: i64,
    /// One of [`TYPES`].
    pub kind: String,
    /// The machine it is about, if any.
    pub machine_id: Option<Uuid>,
    /// The operation it is about, if any.
    pub operation_id: Option<Uuid>,
    /// The rollout it is about, if any.
    pub rollout_id: Option<Uuid>,
    /// Its fields as clients see them (ids, `at`, …).
    pub data: serde_json::Value,
}

/// Events after `after` (exclusive) and up to `upto` (inclusive, if given), of `types` (all when
/// `None`), in id order, at most `limit`.
pub async fn after(
    db: impl PgExecutor<'_>,
    after: i64,
    upto: Option<i64>,
    types: Option<&[String]>,
    limit: i64,
) -> Result<Vec<Event>, StoreError> {
    let rows = sqlx::query_as!(
        Event,
        r#"select id, type as kind, machine_id, operation_id, rollout_id, data from event
           where id > $1 and ($2::bigint is null or id <= $2) and ($3::text[] is null or type = any($3))
           order by id limit $4"#,
        after,
        upto,
        types,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// The id of the newest event (0 when there is none): a new subscriber's starting point.
pub async fn last_id(db: impl PgExecutor<'_>) -> Result<i64, StoreError> {
    let id = sqlx::query_scalar!(r#"select coalesce(max(id), 0) as "id!" from event"#).fetch_one(db).await?;
    Ok(id)
}

/// How long events are kept for clients that resume.
pub const RETENTION: TimeDelta = TimeDelta::days(7);

/// Deletes up to `limit` events written more than `keep` ago (retention); returns how many. By
/// database time, like `created_at`: a service clock moved for a demo must not empty the feed.
pub async fn delete_older_than(
    db: impl PgExecutor<'_>,
    keep: TimeDelta,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "delete from event where id in (
             select id from event where created_at < now() - $1::interval order by created_at limit $2)",
        pg_interval(keep),
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// Marks agents silent for [`AGENT_SILENCE`] at `now` as lost, once per silence (the trigger on
/// `lost_reported_at` writes `agent.lost`); at most `limit`. Returns how many were marked.
pub async fn report_lost_agents(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "update machine_agent set lost_reported_at = $1, updated_at = $1
         where machine_id in (
             select machine_id from machine_agent
             where last_seen_at < $1::timestamptz - $2::interval
               and (lost_reported_at is null or lost_reported_at < last_seen_at)
             order by machine_id limit $3
             for update skip locked)",
        now,
        pg_interval(AGENT_SILENCE),
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}

/// How far back [`sweep_finished_operations`] looks (by operation start).
pub const SWEEP_WINDOW: TimeDelta = TimeDelta::days(1);

/// Writes the `operation.finished` events that the commit-time check missed (the last jobs of an
/// operation ending in concurrent transactions, each seeing the other still running), for
/// operations started within [`SWEEP_WINDOW`]; at most `limit`. Returns how many it finished.
pub async fn sweep_finished_operations(db: impl PgExecutor<'_>, limit: i32) -> Result<i64, StoreError> {
    let written = sqlx::query_scalar!(
        r#"with done as (
               select event_operation_finish(id) from event_unfinished_operations(now() - $1::interval, $2) as id)
           select count(*) as "n!" from done"#,
        pg_interval(SWEEP_WINDOW),
        limit,
    )
    .fetch_one(db)
    .await?;
    Ok(written)
}

fn pg_interval(d: TimeDelta) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: d.num_microseconds().unwrap_or(i64::MAX),
    }
}

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
