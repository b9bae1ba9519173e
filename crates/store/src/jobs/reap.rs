//! Leases that expired back to the queue (or failed), queued jobs past their time-to-live ended
//! `expired`, and wake-ups of jobs whose backoff passed.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::RetryPolicy;
use sqlx::{PgConnection, PgExecutor};

use crate::error::StoreError;

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

/// Ends `expired` the queued jobs outside rollouts created at or before `created_before` (now
/// minus the job time-to-live), with `reason` as their error: no agent claimed them in time.
/// Rollout jobs are left to the dispatcher, which takes back an install whose window passed.
/// Handles at most `limit` jobs (the caller loops while it gets a full batch); returns how many.
pub async fn expire_unclaimed(
    conn: &mut PgConnection,
    created_before: DateTime<Utc>,
    now: DateTime<Utc>,
    reason: &str,
    limit: i64,
) -> Result<u64, StoreError> {
    let n = sqlx::query!(
        "update job set state = 'expired', finished_at = $2, error = $3, updated_at = $2
         where id in (select id from job
                      where state = 'queued' and rollout_id is null and created_at <= $1
                      order by created_at limit $4
                      for update skip locked)
           and state = 'queued'",
        created_before,
        now,
        reason,
        limit,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(n)
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
