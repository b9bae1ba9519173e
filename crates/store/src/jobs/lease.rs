//! Claims and leases: the one-statement batched claim, heartbeats fenced by the lease.

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::job::{ClaimedJob, Lease};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::*;
use crate::error::StoreError;

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
