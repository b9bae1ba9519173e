//! The statements that apply a tick's decisions, each guarded by the states it was decided from.

use chrono::{DateTime, Utc};
use hotpatch_domain::rollout::decisions::{BatchKey, Halt, HealthChange, InstallResult};
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use crate::error::StoreError;

/// Machines take their ended job's outcome; only a machine still `queued` with that job.
pub async fn apply_results(
    db: impl PgExecutor<'_>,
    results: &[InstallResult],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let rollouts: Vec<Uuid> = results.iter().map(|r| r.rollout_id).collect();
    let machines: Vec<Uuid> = results.iter().map(|r| r.machine_id).collect();
    let jobs: Vec<Uuid> = results.iter().map(|r| r.job_id).collect();
    let states: Vec<&str> = results.iter().map(|r| r.state.as_str()).collect();
    let errors: Vec<Option<String>> = results.iter().map(|r| r.error.clone()).collect();
    let n = sqlx::query!(
        "update rollout_machine m set state = t.state, error = t.error, updated_at = $6
         from unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[])
              as t(rollout_id, machine_id, job_id, state, error)
         where m.rollout_id = t.rollout_id and m.machine_id = t.machine_id
           and m.state = 'queued' and m.job_id = t.job_id",
        &rollouts,
        &machines,
        &jobs,
        &states as &[&str],
        &errors as &[Option<String>],
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n)
}

/// Installed machines take their agent's health.
pub async fn apply_health(
    db: impl PgExecutor<'_>,
    changes: &[HealthChange],
    now: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let rollouts: Vec<Uuid> = changes.iter().map(|c| c.rollout_id).collect();
    let machines: Vec<Uuid> = changes.iter().map(|c| c.machine_id).collect();
    let healthy: Vec<bool> = changes.iter().map(|c| c.healthy).collect();
    let n = sqlx::query!(
        "update rollout_machine m set healthy = t.healthy, updated_at = $4
         from unnest($1::uuid[], $2::uuid[], $3::boolean[]) as t(rollout_id, machine_id, healthy)
         where m.rollout_id = t.rollout_id and m.machine_id = t.machine_id and m.state = 'succeeded'",
        &rollouts,
        &machines,
        &healthy,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n)
}

/// Open batches that succeeded; returns those that were still open.
pub async fn succeed_batches(
    db: impl PgExecutor<'_>,
    batches: &[BatchKey],
    now: DateTime<Utc>,
) -> Result<Vec<BatchKey>, StoreError> {
    let (rollouts, indexes): (Vec<Uuid>, Vec<i32>) =
        batches.iter().map(|b| (b.rollout_id, b.batch_index)).unzip();
    let mut done: Vec<BatchKey> = sqlx::query!(
        "update rollout_batch b set state = 'succeeded', finished_at = $3, updated_at = $3
         from unnest($1::uuid[], $2::integer[]) as t(rollout_id, batch_index)
         where b.rollout_id = t.rollout_id and b.batch_index = t.batch_index and b.state = 'open'
         returning b.rollout_id, b.batch_index",
        &rollouts,
        &indexes,
        now,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|b| BatchKey { rollout_id: b.rollout_id, batch_index: b.batch_index })
    .collect();
    done.sort();
    Ok(done)
}

/// Halts a running rollout and its batches with the reason; `false` (nothing written) when the
/// rollout is no longer running (paused or canceled since: the operator's word stands).
pub async fn halt(conn: &mut PgConnection, halt: &Halt, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let halted = sqlx::query!(
        "update rollout set state = 'halted', halted_reason = $2, updated_at = $3
         where id = $1 and state = 'running'",
        halt.rollout_id,
        halt.reason,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if halted == 0 {
        return Ok(false);
    }
    let batches: Vec<i32> = halt.batches.iter().map(|b| b.batch_index).collect();
    sqlx::query!(
        "update rollout_batch set state = 'halted', updated_at = $3
         where rollout_id = $1 and batch_index = any($2) and state = 'open'",
        halt.rollout_id,
        &batches,
        now,
    )
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Running rollouts with no batch left to go succeed; returns those that did.
pub async fn succeed_rollouts(
    db: impl PgExecutor<'_>,
    rollouts: &[Uuid],
    now: DateTime<Utc>,
) -> Result<Vec<Uuid>, StoreError> {
    let done = sqlx::query_scalar!(
        "update rollout r set state = 'succeeded', finished_at = $2, updated_at = $2
         where r.id = any($1) and r.state = 'running'
         returning r.id",
        rollouts,
        now,
    )
    .fetch_all(db)
    .await?;
    Ok(done)
}

/// Opens pending batches; returns those that opened.
pub async fn open_batches(
    db: impl PgExecutor<'_>,
    batches: &[BatchKey],
    now: DateTime<Utc>,
) -> Result<Vec<BatchKey>, StoreError> {
    let (rollouts, indexes): (Vec<Uuid>, Vec<i32>) =
        batches.iter().map(|b| (b.rollout_id, b.batch_index)).unzip();
    let mut opened: Vec<BatchKey> = sqlx::query!(
        "update rollout_batch b set state = 'open', opened_at = $3, updated_at = $3
         from unnest($1::uuid[], $2::integer[]) as t(rollout_id, batch_index)
         where b.rollout_id = t.rollout_id and b.batch_index = t.batch_index and b.state = 'pending'
         returning b.rollout_id, b.batch_index",
        &rollouts,
        &indexes,
        now,
    )
    .fetch_all(db)
    .await?
    .into_iter()
    .map(|b| BatchKey { rollout_id: b.rollout_id, batch_index: b.batch_index })
    .collect();
    opened.sort();
    Ok(opened)
}

/// Records the job enqueued for a due machine: the machine is `queued`. `false` when the machine
/// is no longer due (its rollout was paused or canceled since the tick read it): the caller then
/// drops the job (rolls back its savepoint).
pub async fn mark_queued(
    db: impl PgExecutor<'_>,
    rollout_id: Uuid,
    machine_id: Uuid,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query!(
        "update rollout_machine m set state = 'queued', job_id = $3, updated_at = $4
         where m.rollout_id = $1 and m.machine_id = $2 and m.state = 'pending' and m.job_id is null
           and exists (select 1 from rollout r join rollout_batch b on b.rollout_id = r.id
                       where r.id = $1 and r.state = 'running'
                         and b.batch_index = m.batch_index and b.state = 'open')",
        rollout_id,
        machine_id,
        job_id,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Cancels a rollout's job that no agent claimed yet (its window passed); `false` when it is no
/// longer queued (claimed or ended meanwhile).
pub async fn cancel_queued_job(
    db: impl PgExecutor<'_>,
    job_id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query!(
        "update job set state = 'canceled', finished_at = $2, updated_at = $2,
                error = 'maintenance window ended before the job was claimed'
         where id = $1 and state = 'queued'",
        job_id,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Moves a machine that missed its window to its next one: `pending` again, without a job, with
/// `attempts` windows given. Only a pending machine, or a queued one whose job was canceled,
/// moves; `false` otherwise (its job ran meanwhile, or the rollout was canceled).
pub async fn reschedule(
    db: impl PgExecutor<'_>,
    rollout_id: Uuid,
    machine_id: Uuid,
    window: (DateTime<Utc>, DateTime<Utc>),
    attempts: i32,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query!(
        "update rollout_machine m
         set state = 'pending', job_id = null, window_start = $3, window_end = $4, attempts = $5,
             updated_at = $6
         where m.rollout_id = $1 and m.machine_id = $2
           and (m.state = 'pending'
                or (m.state = 'queued'
                    and exists (select 1 from job j where j.id = m.job_id and j.state = 'canceled')))",
        rollout_id,
        machine_id,
        window.0,
        window.1,
        attempts,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Fails a machine that cannot install (no window left in its schedule), with the reason; it
/// then counts against its batch's threshold. Only a pending machine, or a queued one whose job
/// was canceled; `false` otherwise.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    rollout_id: Uuid,
    machine_id: Uuid,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query!(
        "update rollout_machine m set state = 'failed', error = $3, updated_at = $4
         where m.rollout_id = $1 and m.machine_id = $2
           and (m.state = 'pending'
                or (m.state = 'queued'
                    and exists (select 1 from job j where j.id = m.job_id and j.state = 'canceled')))",
        rollout_id,
        machine_id,
        error,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}
