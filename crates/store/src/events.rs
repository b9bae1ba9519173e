//! The change feed's queries: events written by the triggers of `migrations/0007_events.sql`
//! (machine status, operations, rollouts, agents), read back in id order; retention, lost agents
//! and the sweep of missed `operation.finished` events.
//!
//! Ids are handed out in commit order (see the migration), so "every event after id N" read at
//! any time never skips one that commits later with a smaller id. The in-process fan-out of new
//! events to their subscribers is `hotpatch_app`'s (`events::feed`).

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgExecutor;
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

/// Marks agents silent for `silence` (by default [`AGENT_SILENCE`]) at `now` as lost, once per silence (the trigger on
/// `lost_reported_at` writes `agent.lost`); at most `limit`. Returns how many were marked.
pub async fn report_lost_agents(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    silence: TimeDelta,
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
        pg_interval(silence),
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

pub(crate) fn pg_interval(d: TimeDelta) -> sqlx::postgres::types::PgInterval {
    sqlx::postgres::types::PgInterval {
        months: 0,
        days: 0,
        microseconds: d.num_microseconds().unwrap_or(i64::MAX),
    }
}
