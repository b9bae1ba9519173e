//! Queries of "install now", rollbacks and update history: a disruptive job enqueued for an
//! operation, the job that blocks a machine, an operation's job (to answer a replayed request),
//! and a machine's history of jobs.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{JobKind, JobState};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::StoreError;
use crate::jobs::{self, parse, NewJob};

/// Enqueues `job` and links it to its operation (`job.operation_id`), in the caller's
/// transaction. A second active disruptive job for the machine is a [`StoreError::Conflict`] on
/// `job_one_active_disruptive`; the transaction is then aborted.
pub async fn enqueue_for_operation(conn: &mut PgConnection, job: &NewJob) -> Result<Uuid, StoreError> {
    let id = jobs::enqueue(&mut *conn, job).await?;
    if let Some(operation_id) = job.operation_id {
        sqlx::query!(
            "insert into operation_job (operation_id, machine_id, job_id, created_at) values ($1, $2, $3, $4)",
            operation_id,
            job.machine_id,
            id,
            job.now,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(id)
}

/// A job, briefly: what blocks a machine, or what an operation made.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRef {
    /// The job.
    pub id: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// Its payload.
    pub payload: serde_json::Value,
    /// The operation that created it.
    pub operation_id: Option<Uuid>,
    /// Its rollout.
    pub rollout_id: Option<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A `job` row as [`JobRef`] reads it.
struct JobRefRow {
    id: Uuid,
    kind: String,
    state: String,
    payload: serde_json::Value,
    operation_id: Option<Uuid>,
    rollout_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl TryFrom<JobRefRow> for JobRef {
    type Error = StoreError;

    fn try_from(r: JobRefRow) -> Result<Self, StoreError> {
        Ok(JobRef {
            id: r.id,
            kind: parse(&r.kind)?,
            state: parse(&r.state)?,
            payload: r.payload,
            operation_id: r.operation_id,
            rollout_id: r.rollout_id,
            created_at: r.created_at,
        })
    }
}

/// The machine's install, rollback or reboot that is queued or running, if any (at most one:
/// `job_one_active_disruptive`).
pub async fn active_disruptive(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
) -> Result<Option<JobRef>, StoreError> {
    let row = sqlx::query_as!(
        JobRefRow,
        "select id, kind, state, payload, operation_id, rollout_id, created_at from job
         where machine_id = $1 and kind in ('install', 'rollback', 'reboot') and state in ('queued', 'leased')",
        machine_id,
    )
    .fetch_optional(db)
    .await?;
    row.map(JobRef::try_from).transpose()
}

/// The job of a one-machine operation on `machine_id` (the first linked, when several).
pub async fn operation_job(
    db: impl PgExecutor<'_>,
    operation_id: Uuid,
    machine_id: Uuid,
) -> Result<Option<JobRef>, StoreError> {
    let row = sqlx::query_as!(
        JobRefRow,
        "select j.id, j.kind, j.state, j.payload, j.operation_id, j.rollout_id, j.created_at
         from operation_job oj join job j on j.id = oj.job_id
         where oj.operation_id = $1 and oj.machine_id = $2",
        operation_id,
        machine_id,
    )
    .fetch_optional(db)
    .await?;
    row.map(JobRef::try_from).transpose()
}

/// One job of a machine's update history.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryJob {
    /// The job.
    pub id: Uuid,
    /// What it did.
    pub kind: JobKind,
    /// Where it is.
    pub state: JobState,
    /// Claims so far.
    pub attempt: i32,
    /// What it was asked to do.
    pub payload: serde_json::Value,
    /// What the agent reported.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// The operation that created it.
    pub operation_id: Option<Uuid>,
    /// Its rollout.
    pub rollout_id: Option<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its last attempt was claimed (`None`: never claimed).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// The machine's jobs created since `since`, newest first, at most `limit`. Installs, rollbacks
/// and reboots come first in the budget: assessments (daily, and on every "assess now") fill
/// what is left, so a machine assessed in a loop never pushes its installs out of the list.
pub async fn history(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<HistoryJob>, StoreError> {
    let rows = sqlx::query!(
        r#"with disruptive as (
               select id, kind, state, attempt, payload, result, error, operation_id, rollout_id,
                      created_at, leased_at, finished_at
               from job where machine_id = $1 and created_at >= $2 and kind <> 'assess'
               order by created_at desc, id desc limit $3),
           assessments as (
               select id, kind, state, attempt, payload, result, error, operation_id, rollout_id,
                      created_at, leased_at, finished_at
               from job where machine_id = $1 and created_at >= $2 and kind = 'assess'
               order by created_at desc, id desc
               limit greatest($3 - (select count(*) from disruptive), 0))
           select id as "id!", kind as "kind!", state as "state!", attempt as "attempt!",
                  payload as "payload!", result, error, operation_id, rollout_id,
                  created_at as "created_at!", leased_at, finished_at
           from (select * from disruptive union all select * from assessments) as h
           order by created_at desc, id desc"#,
        machine_id,
        since,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(HistoryJob {
                id: r.id,
                kind: parse(&r.kind)?,
                state: parse(&r.state)?,
                attempt: r.attempt,
                payload: r.payload,
                result: r.result,
                error: r.error,
                operation_id: r.operation_id,
                rollout_id: r.rollout_id,
                created_at: r.created_at,
                started_at: r.leased_at,
                finished_at: r.finished_at,
            })
        })
        .collect()
}
