//! The job queue (DESIGN §2 "Job queue"): enqueue, the one-statement claim, heartbeats and results
//! fenced by the lease id, the reaper of expired leases, and a machine's job history.
//!
//! Every function takes `now` from the caller (the service's clock), so leases and backoff are
//! testable at any instant. Wake-ups are sent by the `job_notify` trigger (see migrations).

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{JobKind, JobState, Lease};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

mod complete;
mod lease;
mod reap;

pub use complete::{complete, complete_many, Completion, Recorded, ResultRequest};
pub use lease::{claim, claim_many, heartbeat, held_leases, lease_is_fresh, ClaimRequest, Fence, LeaseRef};
pub use reap::{expire_unclaimed, notify_due, reap_expired, Reaped};

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    /// What the agent should do.
    pub kind: JobKind,
    /// Whose agent.
    pub machine_id: Uuid,
    /// Kind-specific details.
    pub payload: serde_json::Value,
    /// Higher is claimed first.
    pub priority: i16,
    /// Not claimable before.
    pub run_after: DateTime<Utc>,
    /// Claims allowed before the job fails.
    pub max_attempts: i32,
    /// The operation that asked for it.
    pub operation_id: Option<Uuid>,
    /// The rollout it belongs to.
    pub rollout_id: Option<Uuid>,
    /// When it is enqueued (the service's clock; history windows are measured on it).
    pub now: DateTime<Utc>,
}

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// The job.
    pub id: Uuid,
    /// What it does.
    pub kind: JobKind,
    /// Its machine.
    pub machine_id: Uuid,
    /// Kind-specific details.
    pub payload: serde_json::Value,
    /// Where it is.
    pub state: JobState,
    /// Claims so far.
    pub attempt: i32,
    /// Claims allowed.
    pub max_attempts: i32,
    /// Not claimable before.
    pub run_after: DateTime<Utc>,
    /// The current lease.
    pub lease: Option<Lease>,
    /// The operation that created it.
    pub operation_id: Option<Uuid>,
    /// Its rollout.
    pub rollout_id: Option<Uuid>,
    /// What the agent reported.
    pub result: Option<serde_json::Value>,
    /// Why it failed.
    pub error: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

struct JobRow {
    id: Uuid,
    kind: String,
    machine_id: Uuid,
    payload: serde_json::Value,
    state: String,
    attempt: i32,
    max_attempts: i32,
    run_after: DateTime<Utc>,
    lease_id: Option<Uuid>,
    lease_expires_at: Option<DateTime<Utc>>,
    operation_id: Option<Uuid>,
    rollout_id: Option<Uuid>,
    result: Option<serde_json::Value>,
    error: Option<String>,
    created_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
}

impl TryFrom<JobRow> for Job {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Job, StoreError> {
        Ok(Job {
            id: r.id,
            kind: parse(&r.kind)?,
            machine_id: r.machine_id,
            payload: r.payload,
            state: parse(&r.state)?,
            attempt: r.attempt,
            max_attempts: r.max_attempts,
            run_after: r.run_after,
            lease: r.lease_id.zip(r.lease_expires_at).map(|(id, expires_at)| Lease { id, expires_at }),
            operation_id: r.operation_id,
            rollout_id: r.rollout_id,
            result: r.result,
            error: r.error,
            created_at: r.created_at,
            finished_at: r.finished_at,
        })
    }
}

pub(crate) fn parse<T: std::str::FromStr>(s: &str) -> Result<T, StoreError> {
    s.parse().map_err(|_| StoreError::Decode(format!("unexpected value {s:?}")))
}

/// Enqueues one job. A second active disruptive job for the machine is a
/// [`StoreError::Conflict`] on `job_one_active_disruptive`.
pub async fn enqueue(db: impl PgExecutor<'_>, job: &NewJob) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    let kind: &str = job.kind.into();
    sqlx::query!(
        "insert into job (id, kind, machine_id, payload, priority, run_after, max_attempts, operation_id, rollout_id,
                          created_at, updated_at)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10)",
        id,
        kind,
        job.machine_id,
        job.payload,
        job.priority,
        job.run_after,
        job.max_attempts,
        job.operation_id,
        job.rollout_id,
        job.now,
    )
    .execute(db)
    .await
    .map_err(unique_violation)?;
    Ok(id)
}

/// Enqueues an assessment for each machine, collapsing into an assessment already queued for it;
/// links every machine's job (new or joined) to `operation_id`. Returns `(machine_id, job_id)`
/// for every machine.
///
/// Runs in the caller's transaction so the operation and its jobs appear together.
pub async fn enqueue_assessments(
    conn: &mut PgConnection,
    operation_id: Option<Uuid>,
    machine_ids: &[Uuid],
    priority: i16,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Uuid)>, StoreError> {
    let mut pairs = Vec::with_capacity(machine_ids.len());
    let mut missing: Vec<Uuid> = machine_ids.to_vec();
    // One statement inserts where none is queued (`on conflict` targets the partial unique index,
    // so concurrent requests cannot queue two) and reads the queued ones it joins, from the same
    // snapshot. A job queued by a concurrent request that committed after that snapshot is
    // invisible to it: a second round, with a new snapshot, picks those up.
    for _round in 0..3 {
        if missing.is_empty() {
            break;
        }
        let ids: Vec<Uuid> = missing.iter().map(|_| Uuid::now_v7()).collect();
        let rows = sqlx::query!(
            r#"with inserted as (
                   insert into job (id, kind, machine_id, priority, run_after, max_attempts, operation_id,
                                    created_at, updated_at)
                   select t.id, 'assess', t.machine_id, $3, $4, 3, $5, $4, $4
                   from unnest($1::uuid[], $2::uuid[]) as t(machine_id, id)
                   on conflict (machine_id) where kind = 'assess' and state = 'queued' do nothing
                   returning machine_id, id),
               joined as (
                   select machine_id, id, priority from job
                   where kind = 'assess' and state = 'queued' and machine_id = any($1::uuid[])),
               -- Raise a joined job to this request's priority. Only rows that need it are
               -- touched: an update locks the row until commit, and a claim skips locked rows.
               -- `run_after` is set (to itself) so the wake-up trigger fires after the commit,
               -- for a claim that skipped the row meanwhile.
               raised as (
                   update job set priority = $3, run_after = job.run_after, updated_at = $4
                   from joined where job.id = joined.id and joined.priority < $3 and job.state = 'queued')
               select machine_id as "machine_id!", id as "id!" from inserted
               union all
               select machine_id, id from joined"#,
            &missing,
            &ids,
            priority,
            now,
            operation_id,
        )
        .fetch_all(&mut *conn)
        .await?;
        let found: std::collections::HashSet<Uuid> = rows.iter().map(|r| r.machine_id).collect();
        pairs.extend(rows.into_iter().map(|r| (r.machine_id, r.id)));
        missing.retain(|m| !found.contains(m));
    }
    if !missing.is_empty() {
        // Each round either inserts or joins; three rounds without either means the machines
        // vanished (deleted meanwhile) — their foreign key would have failed the insert.
        tracing::warn!(machines = missing.len(), "machines without an assessment after three rounds");
    }
    if let Some(op) = operation_id {
        let (machines, jobs): (Vec<Uuid>, Vec<Uuid>) = pairs.iter().copied().unzip();
        sqlx::query!(
            "insert into operation_job (operation_id, machine_id, job_id)
             select $1, m, j from unnest($2::uuid[], $3::uuid[]) as t(m, j)
             on conflict do nothing",
            op,
            &machines,
            &jobs,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(pairs)
}

/// The machine's job `job_id`, if it is the machine's.
pub async fn get(db: impl PgExecutor<'_>, job_id: Uuid, machine_id: Uuid) -> Result<Option<Job>, StoreError> {
    let row = sqlx::query_as!(
        JobRow,
        "select id, kind, machine_id, payload, state, attempt, max_attempts, run_after, lease_id,
                lease_expires_at, operation_id, rollout_id, result, error, created_at, finished_at
         from job where id = $1 and machine_id = $2",
        job_id,
        machine_id,
    )
    .fetch_optional(db)
    .await?;
    row.map(Job::try_from).transpose()
}

/// The machine's jobs created since `since`, newest first (update history).
pub async fn history(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    since: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<Job>, StoreError> {
    let rows = sqlx::query_as!(
        JobRow,
        "select id, kind, machine_id, payload, state, attempt, max_attempts, run_after, lease_id,
                lease_expires_at, operation_id, rollout_id, result, error, created_at, finished_at
         from job where machine_id = $1 and created_at >= $2
         order by created_at desc, id desc limit $3",
        machine_id,
        since,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Job::try_from).collect()
}

/// What canceling an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Canceled {
    /// Queued jobs canceled.
    pub canceled: u64,
    /// Jobs already running (leased), left to finish: an agent may be halfway through an
    /// install, and a result it reports must not be refused.
    pub running: u64,
    /// Queued jobs left queued because another unfinished operation also waits on them
    /// (collapsed "assess now" requests).
    pub shared: u64,
}

/// Cancels an operation: marks it canceled and cancels its queued jobs, except those another
/// operation also waits on. Running jobs are left to finish. Run it with the operation's row
/// locked (`operations::lock`).
pub async fn cancel_operation(
    conn: &mut PgConnection,
    operation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Canceled, StoreError> {
    sqlx::query!(
        "update operation set canceled_at = coalesce(canceled_at, $2), updated_at = $2 where id = $1",
        operation_id,
        now,
    )
    .execute(&mut *conn)
    .await?;
    let canceled = sqlx::query!(
        "update job set state = 'canceled', finished_at = $2, error = 'canceled', updated_at = $2
         where state = 'queued'
           and id in (select job_id from operation_job where operation_id = $1)
           and not exists (select 1 from operation_job o where o.job_id = job.id and o.operation_id <> $1)",
        operation_id,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let left = sqlx::query!(
        r#"select count(*) filter (where j.state = 'leased') as "running!",
                  count(*) filter (where j.state = 'queued') as "shared!"
           from operation_job oj join job j on j.id = oj.job_id
           where oj.operation_id = $1"#,
        operation_id,
    )
    .fetch_one(&mut *conn)
    .await?;
    Ok(Canceled { canceled, running: left.running as u64, shared: left.shared as u64 })
}
