//! The job queue (DESIGN §2 "Job queue"): enqueue, the one-statement claim, heartbeats and results
//! fenced by the lease id, the reaper of expired leases, and a machine's job history.
//!
//! Every function takes `now` from the caller (the service's clock), so leases and backoff are
//! testable at any instant. Wake-ups are sent by the `job_notify` trigger (see migrations).

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::job::{ClaimedJob, JobKind, JobResult, JobState, Lease, RetryPolicy};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::{unique_violation, StoreError};

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

/// Claims the machine's next claimable job under a new lease of `ttl`, in one statement; `None`
/// when nothing is claimable. Concurrent claimers never get the same job (`skip locked`).
///
/// The agent's `last_seen_at` is not written here: replicas batch those marks
/// ([`crate::agents::mark_seen`]), so a claim costs one row write, not two.
pub async fn claim(
    db: impl PgExecutor<'_>,
    machine_id: Uuid,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<Option<ClaimedJob>, StoreError> {
    let request = ClaimRequest { machine_id, lease_id: Uuid::new_v4() };
    Ok(claim_many(db, &[request], now, ttl).await?.pop())
}

/// One agent's claim in a [`claim_many`] batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The agent's machine: only its jobs are claimable.
    pub machine_id: Uuid,
    /// The id the new lease gets.
    pub lease_id: Uuid,
}

/// [`claim`] for many machines in one statement (one round trip, one commit): each machine gets
/// its next claimable job under its request's lease, or nothing. The machines must be distinct
/// (two claims of one machine in one statement would pick the same job); the caller sends a
/// repeated machine on its own. Returns the claimed jobs, in no particular order.
///
/// Agents of many machines claiming at once (a fleet's "assess now", a rollout wave) cost the
/// database one statement per batch instead of one per agent.
pub async fn claim_many(
    db: impl PgExecutor<'_>,
    requests: &[ClaimRequest],
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<Vec<ClaimedJob>, StoreError> {
    debug_assert!(
        requests.iter().map(|r| r.machine_id).collect::<std::collections::HashSet<_>>().len()
            == requests.len(),
        "claim_many takes distinct machines"
    );
    let machines: Vec<Uuid> = requests.iter().map(|r| r.machine_id).collect();
    let leases: Vec<Uuid> = requests.iter().map(|r| r.lease_id).collect();
    let rows = sqlx::query!(
        "with pick as (
             select r.lease_id, c.id
             from unnest($1::uuid[], $2::uuid[]) as r(machine_id, lease_id)
             cross join lateral (
                 select j.id from job j
                 where j.machine_id = r.machine_id and j.state = 'queued' and j.run_after <= $4
                 order by j.priority desc, j.run_after, j.id
                 limit 1
                 for update skip locked) c)
         update job set state = 'leased', lease_id = pick.lease_id, lease_expires_at = $3,
                attempt = attempt + 1, leased_at = $4, updated_at = $4
         from pick
         where job.id = pick.id
         returning job.id, job.kind, job.machine_id, job.attempt, job.payload,
                   job.lease_id as \"lease_id!\", job.lease_expires_at as \"lease_expires_at!\"",
        &machines,
        &leases,
        now + ttl,
        now,
    )
    .fetch_all(db)
    .await?;
    // The stored expiry (microseconds), so every later answer about a lease agrees with it.
    rows.into_iter()
        .map(|r| {
            Ok(ClaimedJob {
                id: r.id,
                kind: parse(&r.kind)?,
                machine_id: r.machine_id,
                attempt: r.attempt,
                payload: r.payload,
                lease: Lease { id: r.lease_id, expires_at: r.lease_expires_at },
            })
        })
        .collect()
}

/// Why a heartbeat or result was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fence {
    /// No such job for this machine.
    NotFound,
    /// The job exists but this lease no longer holds it (expired and re-leased, or the job ended).
    LeaseLost,
}

/// Why the job is not held by `lease_id`: it is not the machine's, or the lease is gone.
async fn fence(db: impl PgExecutor<'_>, job_id: Uuid, machine_id: Uuid) -> Result<Fence, StoreError> {
    let exists = sqlx::query_scalar!(
        "select exists (select 1 from job where id = $1 and machine_id = $2) as \"exists!\"",
        job_id,
        machine_id
    )
    .fetch_one(db)
    .await?;
    Ok(if exists { Fence::LeaseLost } else { Fence::NotFound })
}

/// Extends the lease to `now + ttl`; the job must be the machine's and still held by `lease_id`.
///
/// A lease that is still fresh ([`lease_is_fresh`]) is confirmed without a write. That check is
/// a plain read (no `update` planned and opened for nothing); only a lease that needs it is then
/// extended, by a second statement fenced the same way.
pub async fn heartbeat(
    conn: &mut PgConnection,
    job_id: Uuid,
    machine_id: Uuid,
    lease_id: Uuid,
    now: DateTime<Utc>,
    ttl: TimeDelta,
) -> Result<Result<Lease, Fence>, StoreError> {
    let expires_at = now + ttl;
    let held = sqlx::query_scalar!(
        r#"select lease_expires_at as "lease_expires_at!" from job
           where id = $1 and machine_id = $2 and lease_id = $3 and state = 'leased'"#,
        job_id,
        machine_id,
        lease_id,
    )
    .fetch_optional(&mut *conn)
    .await?;
    match held {
        None => return Ok(Err(fence(&mut *conn, job_id, machine_id).await?)),
        Some(held) if lease_is_fresh(held, now, ttl) => {
            return Ok(Ok(Lease { id: lease_id, expires_at: held }))
        }
        Some(_) => {}
    }
    // Never shortens the lease: a concurrent beat may have extended it further meanwhile.
    let extended = sqlx::query_scalar!(
        r#"update job set lease_expires_at = greatest(lease_expires_at, $4), updated_at = $5
           where id = $1 and machine_id = $2 and lease_id = $3 and state = 'leased'
           returning lease_expires_at as "lease_expires_at!""#,
        job_id,
        machine_id,
        lease_id,
        expires_at,
        now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    match extended {
        Some(expires_at) => Ok(Ok(Lease { id: lease_id, expires_at })),
        // Lost between the read and the write (reaped, canceled, or the machine's job deleted).
        None => Ok(Err(fence(&mut *conn, job_id, machine_id).await?)),
    }
}

/// A lease to look up in [`held_leases`]: the job, its machine and the lease id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    /// The job.
    pub job_id: Uuid,
    /// The agent's machine (a job of another machine is never found).
    pub machine_id: Uuid,
    /// The lease the agent holds.
    pub lease_id: Uuid,
}

/// Which of `leases` still hold their job, with each one's stored expiry, in one read. The
/// heartbeats of many agents are answered by one statement: a lease found here with nine tenths
/// of its term left is confirmed as [`heartbeat`] would confirm it; any other goes through
/// [`heartbeat`] itself (to be extended, or refused with the reason).
pub async fn held_leases(
    db: impl PgExecutor<'_>,
    leases: &[LeaseRef],
) -> Result<Vec<(LeaseRef, DateTime<Utc>)>, StoreError> {
    let jobs: Vec<Uuid> = leases.iter().map(|l| l.job_id).collect();
    let machines: Vec<Uuid> = leases.iter().map(|l| l.machine_id).collect();
    let ids: Vec<Uuid> = leases.iter().map(|l| l.lease_id).collect();
    let rows = sqlx::query!(
        r#"select j.id, j.machine_id, j.lease_id as "lease_id!", j.lease_expires_at as "lease_expires_at!"
           from unnest($1::uuid[], $2::uuid[], $3::uuid[]) as r(job_id, machine_id, lease_id)
           join job j on j.id = r.job_id and j.machine_id = r.machine_id and j.lease_id = r.lease_id
           where j.state = 'leased'"#,
        &jobs,
        &machines,
        &ids,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| {
            (LeaseRef { job_id: r.id, machine_id: r.machine_id, lease_id: r.lease_id }, r.lease_expires_at)
        })
        .collect())
}

/// Whether a lease expiring at `held` needs no extension by a heartbeat at `now`: it still has
/// nine tenths of `ttl` to run. Such a beat is confirmed without a write (an agent that heartbeats
/// eagerly, right after its claim say, would otherwise cost a row version and a commit per beat).
pub fn lease_is_fresh(held: DateTime<Utc>, now: DateTime<Utc>, ttl: TimeDelta) -> bool {
    held >= now + ttl - ttl / 10
}

/// What recording a result did.
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// The job ended with this result now.
    Recorded(Job),
    /// The same result was already recorded under this lease: nothing changed.
    AlreadyRecorded(Job),
}

/// Records the agent's result: the job ends `succeeded` or `failed`. Fenced by the lease: a
/// holder that lost its lease gets [`Fence::LeaseLost`]. Sending the same result again under the
/// same lease is [`Completion::AlreadyRecorded`] and changes nothing.
pub async fn complete(
    conn: &mut PgConnection,
    job_id: Uuid,
    machine_id: Uuid,
    result: &JobResult,
    now: DateTime<Utc>,
) -> Result<Result<Completion, Fence>, StoreError> {
    let state = final_state(result);
    let body = serde_json::to_value(result).map_err(|e| StoreError::Decode(e.to_string()))?;
    let row = sqlx::query_as!(
        JobRow,
        "update job set state = $4, result = $5, error = $6, finished_at = $7, updated_at = $7,
                lease_id = null, lease_expires_at = null
         where id = $1 and machine_id = $2 and lease_id = $3 and state = 'leased'
         returning id, kind, machine_id, payload, state, attempt, max_attempts, run_after, lease_id,
                   lease_expires_at, operation_id, rollout_id, result, error, created_at, finished_at",
        job_id,
        machine_id,
        result.lease_id,
        state,
        body,
        result.error,
        now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(Ok(Completion::Recorded(row.try_into()?)));
    }
    // Not held by this lease. The same result delivered twice (a retry after a lost response)
    // finds the job ended with exactly this result, lease id included.
    match get(&mut *conn, job_id, machine_id).await? {
        None => Ok(Err(Fence::NotFound)),
        Some(job) if job.result.as_ref() == Some(&body) => Ok(Ok(Completion::AlreadyRecorded(job))),
        Some(_) => Ok(Err(Fence::LeaseLost)),
    }
}

/// One agent's result in a [`complete_many`] batch.
#[derive(Debug, Clone, Copy)]
pub struct ResultRequest<'a> {
    /// The job.
    pub job_id: Uuid,
    /// The agent's machine (a job of another machine is never touched).
    pub machine_id: Uuid,
    /// What the agent reported, under which lease.
    pub result: &'a JobResult,
}

/// A result [`complete_many`] recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Recorded {
    /// The job.
    pub job_id: Uuid,
    /// What it was.
    pub kind: JobKind,
    /// How it ended.
    pub state: JobState,
}

/// [`complete`] for many jobs in one statement (one round trip, one commit). Returns the jobs
/// whose result was recorded now; a result not among them was not held by its lease (already
/// recorded, lost, or not the machine's job) and goes through [`complete`] for the answer. The
/// jobs must be distinct.
pub async fn complete_many(
    db: impl PgExecutor<'_>,
    results: &[ResultRequest<'_>],
    now: DateTime<Utc>,
) -> Result<Vec<Recorded>, StoreError> {
    let mut jobs = Vec::with_capacity(results.len());
    let mut machines = Vec::with_capacity(results.len());
    let mut leases = Vec::with_capacity(results.len());
    let mut states = Vec::with_capacity(results.len());
    let mut bodies = Vec::with_capacity(results.len());
    let mut errors = Vec::with_capacity(results.len());
    for r in results {
        jobs.push(r.job_id);
        machines.push(r.machine_id);
        leases.push(r.result.lease_id);
        states.push(final_state(r.result).to_owned());
        bodies.push(serde_json::to_value(r.result).map_err(|e| StoreError::Decode(e.to_string()))?);
        errors.push(r.result.error.clone());
    }
    let rows = sqlx::query!(
        "update job set state = r.state, result = r.result, error = r.error, finished_at = $7,
                updated_at = $7, lease_id = null, lease_expires_at = null
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::jsonb[], $6::text[])
              as r(id, machine_id, lease_id, state, result, error)
         where job.id = r.id and job.machine_id = r.machine_id and job.lease_id = r.lease_id
           and job.state = 'leased'
         returning job.id, job.kind, job.state",
        &jobs,
        &machines,
        &leases,
        &states,
        &bodies,
        &errors as &[Option<String>],
        now,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| Ok(Recorded { job_id: r.id, kind: parse(&r.kind)?, state: parse(&r.state)? }))
        .collect()
}

/// The state a job ends in with this result.
fn final_state(result: &JobResult) -> &'static str {
    match result.outcome {
        hotpatch_domain::job::Outcome::Succeeded => "succeeded",
        hotpatch_domain::job::Outcome::Failed => "failed",
    }
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

/// What one reaper pass did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Reaped {
    /// Expired leases returned to the queue.
    pub requeued: u64,
    /// Expired leases whose job had no attempt left: failed.
    pub failed: u64,
}

/// Returns jobs whose lease expired before `now` to `queued` with backoff, or fails them when they
/// used all their attempts. Each update re-checks that the lease is still the expired one, so a
/// heartbeat or result that lands between the read and the write wins (run it in a transaction to
/// also keep the rows locked in between). `jitter` draws a number in [0, 1) per job. Handles at most `limit`
/// jobs (the caller loops while it gets a full batch).
pub async fn reap_expired(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    policy: &RetryPolicy,
    limit: i64,
    mut jitter: impl FnMut() -> f64,
) -> Result<Reaped, StoreError> {
    let expired = sqlx::query!(
        "select id, attempt, max_attempts from job
         where state = 'leased' and lease_expires_at < $1
         order by lease_expires_at limit $2
         for update skip locked",
        now,
        limit,
    )
    .fetch_all(&mut *conn)
    .await?;
    let (mut retry_ids, mut retry_at, mut fail_ids) = (vec![], vec![], vec![]);
    for job in expired {
        if job.attempt >= job.max_attempts {
            fail_ids.push(job.id);
        } else {
            retry_ids.push(job.id);
            retry_at.push(policy.next_run_at(now, job.attempt, jitter()));
        }
    }
    let requeued = sqlx::query!(
        "update job set state = 'queued', run_after = t.run_after, lease_id = null, lease_expires_at = null,
                error = 'lease expired', updated_at = $3
         from unnest($1::uuid[], $2::timestamptz[]) as t(id, run_after)
         where job.id = t.id and job.state = 'leased' and job.lease_expires_at < $3",
        &retry_ids,
        &retry_at,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let failed = sqlx::query!(
        "update job set state = 'failed', lease_id = null, lease_expires_at = null, finished_at = $2,
                error = 'lease expired on the last attempt (' || attempt || ' of ' || max_attempts || ')',
                updated_at = $2
         where id = any($1::uuid[]) and state = 'leased' and lease_expires_at < $2",
        &fail_ids,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(Reaped { requeued, failed })
}

/// Sends a wake-up for every machine with a job that became claimable in `(after, now]` (its
/// backoff or start time passed), so long-polling agents get it without waiting for a poll.
pub async fn notify_due(
    db: impl PgExecutor<'_>,
    after: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let n = sqlx::query_scalar!(
        "select count(pg_notify('hotpatch_job', machine_id::text)) as \"n!\"
         from (select distinct machine_id from job
               where state = 'queued' and run_after > $1 and run_after <= $2) as due",
        after,
        now,
    )
    .fetch_one(db)
    .await?;
    Ok(n as u64)
}

/// Cancels an operation: marks it canceled and ends its queued and leased jobs (a leased job's
/// holder then gets `lease_lost`). A job another operation also waits on (collapsed "assess now"
/// requests) is left to run for that one. Returns the number of jobs canceled.
pub async fn cancel_operation(
    conn: &mut PgConnection,
    operation_id: Uuid,
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    sqlx::query!(
        "update operation set canceled_at = coalesce(canceled_at, $2), updated_at = $2 where id = $1",
        operation_id,
        now,
    )
    .execute(&mut *conn)
    .await?;
    let n = sqlx::query!(
        "update job set state = 'canceled', lease_id = null, lease_expires_at = null, finished_at = $2,
                error = 'canceled', updated_at = $2
         where state in ('queued', 'leased')
           and id in (select job_id from operation_job where operation_id = $1)
           and not exists (select 1 from operation_job o where o.job_id = job.id and o.operation_id <> $1)",
        operation_id,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n)
}
