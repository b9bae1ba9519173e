//! The dispatcher's database steps (the order is in the module above). Each is one statement or
//! a few, meant for one leader per tick: the caller holds the advisory lock and the transaction.
//! Each guards its writes with the states it read, so the operator's pause and cancel (which do
//! not take the lock) win or lose cleanly against a tick.

use chrono::{DateTime, Utc};
use hotpatch_scheduler::cycle::CycleKind;
use sqlx::{PgConnection, PgExecutor};
use uuid::Uuid;

use super::parse_install;
use crate::error::StoreError;

/// Step 0: locks the rows of the unfinished rollouts for the rest of the tick's transaction, so
/// that the operator's pause, resume and cancel (which start at the rollout's row) wait for the
/// tick, or the tick for them, instead of deadlocking with it over machines and batches taken
/// in the other order. `for no key update`: the jobs the tick enqueues still take their key
/// share on the rollout. Returns how many it locked.
pub async fn lock_rollouts(db: impl PgExecutor<'_>) -> Result<usize, StoreError> {
    let ids = sqlx::query_scalar!(
        "select id from rollout where state in ('running', 'paused', 'halted') order by id for no key update"
    )
    .fetch_all(db)
    .await?;
    Ok(ids.len())
}

/// What [`sync_job_results`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Synced {
    /// Machines whose job succeeded.
    pub succeeded: i64,
    /// Machines whose job failed.
    pub failed: i64,
    /// Machines whose job was canceled before it ran: pending again, for their next window.
    pub returned: i64,
}

/// Step 1: machines `queued` whose job ended take its outcome: `succeeded`, or `failed` with the
/// job's error. A job canceled by someone else (or because its window passed) sends the machine
/// back to `pending`; it keeps the job's id, which keeps it out of [`due_installs`] until
/// [`missed_windows`] moves it to its next window.
pub async fn sync_job_results(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Synced, StoreError> {
    let r = sqlx::query!(
        r#"with synced as (
               update rollout_machine m
               set state = case j.state when 'succeeded' then 'succeeded' when 'failed' then 'failed'
                                        else 'pending' end,
                   error = case when j.state = 'succeeded' then null
                                else coalesce(j.error, 'job ' || j.state) end,
                   updated_at = $1
               from job j
               where m.state = 'queued' and j.id = m.job_id and j.state in ('succeeded', 'failed', 'canceled')
               returning m.state)
           select count(*) filter (where state = 'succeeded') as "succeeded!",
                  count(*) filter (where state = 'failed') as "failed!",
                  count(*) filter (where state = 'pending') as "returned!"
           from synced"#,
        now,
    )
    .fetch_one(db)
    .await?;
    Ok(Synced { succeeded: r.succeeded, failed: r.failed, returned: r.returned })
}

/// Step 2: installed machines of open or halted batches take the health of their agent's latest
/// report, when it came after the install job ended. It follows later reports until the batch
/// is decided: a machine that recovers counts as healthy again (which is what an operator fixes
/// before resuming a halted rollout). Returns how many changed.
pub async fn record_health(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<u64, StoreError> {
    let n = sqlx::query!(
        "update rollout_machine m set healthy = (a.health_status = 'healthy'), updated_at = $1
         from rollout_batch b, job j, machine_agent a
         where b.state in ('open', 'halted')
           and m.rollout_id = b.rollout_id and m.batch_index = b.batch_index and m.state = 'succeeded'
           and j.id = m.job_id and a.machine_id = m.machine_id
           and a.health_status is not null and a.health_reported_at > j.finished_at
           and m.healthy is distinct from (a.health_status = 'healthy')",
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n)
}

/// A batch of a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchRef {
    /// The rollout.
    pub rollout_id: Uuid,
    /// The batch's position in the plan.
    pub batch_index: i32,
    /// Its wave.
    pub wave: i32,
    /// Its region.
    pub region: String,
}

/// What [`evaluate_batches`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchEvent {
    /// Every machine of the batch is done and healthy (failures at or under the threshold).
    BatchSucceeded {
        /// The rollout.
        rollout_id: Uuid,
        /// The batch.
        batch_index: i32,
    },
    /// The batch's failures went over the threshold: it and its rollout halted.
    BatchHalted {
        /// The rollout.
        rollout_id: Uuid,
        /// The batch.
        batch_index: i32,
        /// Why, as stored on the rollout.
        reason: String,
    },
    /// No batch of the rollout is left: it succeeded.
    RolloutSucceeded {
        /// The rollout.
        rollout_id: Uuid,
    },
}

/// Step 3: decides the open batches of running rollouts. A batch whose failed and unhealthy
/// machines are over the rollout's threshold (`bad × 100 > threshold × machines`) halts, and its
/// rollout with it, with a reason naming the counts; a batch with no machine waiting (pending,
/// queued, or installed without a health report yet) succeeds, its failed and unhealthy machines
/// staying as they are. A running rollout with no batch left to go succeeds.
pub async fn evaluate_batches(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<BatchEvent>, StoreError> {
    let rows = sqlx::query!(
        r#"select b.rollout_id, b.batch_index, b.region, b.zone, r.failure_threshold_percent,
                  count(m.machine_id) as "total!",
                  count(m.machine_id) filter (where m.state in ('pending', 'queued')
                                                  or (m.state = 'succeeded' and m.healthy is null)) as "waiting!",
                  count(m.machine_id) filter (where m.state = 'failed') as "failed!",
                  count(m.machine_id) filter (where m.state = 'succeeded' and not m.healthy) as "unhealthy!"
           from rollout r
           join rollout_batch b on b.rollout_id = r.id and b.state = 'open'
           left join rollout_machine m on m.rollout_id = b.rollout_id and m.batch_index = b.batch_index
           where r.state = 'running'
           group by b.rollout_id, b.batch_index, b.region, b.zone, r.failure_threshold_percent
           order by b.rollout_id, b.batch_index"#,
    )
    .fetch_all(&mut *conn)
    .await?;

    let mut events = Vec::new();
    let (mut done_rollouts, mut done_batches) = (vec![], vec![]);
    // Halts, per rollout: its batches over the threshold and the reasons.
    let mut halts: Vec<(Uuid, Vec<i32>, Vec<String>)> = Vec::new();
    for r in rows {
        let bad = r.failed + r.unhealthy;
        let threshold = i64::from(r.failure_threshold_percent);
        if bad * 100 > threshold * r.total {
            let zone = r.zone.as_deref().map(|z| format!(", zone {z}")).unwrap_or_default();
            let reason = format!(
                "{bad} of {} machines failed or are unhealthy in batch {} (region {}{zone}): over the {threshold}% threshold",
                r.total, r.batch_index, r.region
            );
            match halts.last_mut() {
                Some((id, batches, reasons)) if *id == r.rollout_id => {
                    batches.push(r.batch_index);
                    reasons.push(reason);
                }
                _ => halts.push((r.rollout_id, vec![r.batch_index], vec![reason])),
            }
        } else if r.waiting == 0 {
            done_rollouts.push(r.rollout_id);
            done_batches.push(r.batch_index);
        }
    }

    let mut succeeded = sqlx::query!(
        "update rollout_batch b set state = 'succeeded', finished_at = $3, updated_at = $3
         from unnest($1::uuid[], $2::integer[]) as t(rollout_id, batch_index)
         where b.rollout_id = t.rollout_id and b.batch_index = t.batch_index and b.state = 'open'
         returning b.rollout_id, b.batch_index",
        &done_rollouts,
        &done_batches,
        now,
    )
    .fetch_all(&mut *conn)
    .await?;
    succeeded.sort_by_key(|b| (b.rollout_id, b.batch_index));
    events.extend(
        succeeded
            .into_iter()
            .map(|b| BatchEvent::BatchSucceeded { rollout_id: b.rollout_id, batch_index: b.batch_index }),
    );

    for (rollout_id, batches, reasons) in halts {
        let reason = reasons.join("; ");
        let halted = sqlx::query!(
            "update rollout set state = 'halted', halted_reason = $2, updated_at = $3
             where id = $1 and state = 'running'",
            rollout_id,
            reason,
            now,
        )
        .execute(&mut *conn)
        .await?
        .rows_affected();
        if halted == 0 {
            // Paused or canceled since the counts were read: the operator's word stands.
            continue;
        }
        sqlx::query!(
            "update rollout_batch set state = 'halted', updated_at = $3
             where rollout_id = $1 and batch_index = any($2) and state = 'open'",
            rollout_id,
            &batches,
            now,
        )
        .execute(&mut *conn)
        .await?;
        events.extend(
            batches.into_iter().zip(reasons).map(|(batch_index, reason)| BatchEvent::BatchHalted {
                rollout_id,
                batch_index,
                reason,
            }),
        );
    }

    let finished = sqlx::query_scalar!(
        "update rollout r set state = 'succeeded', finished_at = $1, updated_at = $1
         where r.state = 'running'
           and not exists (select 1 from rollout_batch b
                           where b.rollout_id = r.id and b.state in ('pending', 'open', 'halted'))
         returning r.id",
        now,
    )
    .fetch_all(&mut *conn)
    .await?;
    events.extend(finished.into_iter().map(|rollout_id| BatchEvent::RolloutSucceeded { rollout_id }));
    Ok(events)
}

/// Step 4: opens the next batches of running rollouts. The current wave of a rollout is its
/// lowest wave with a batch not succeeded; in it, each region whose batches are all pending or
/// succeeded opens its first pending one (regions of a wave go in parallel, a region's batches
/// one after the other). A halted batch holds its region and, being unfinished, the next wave.
pub async fn open_batches(db: impl PgExecutor<'_>, now: DateTime<Utc>) -> Result<Vec<BatchRef>, StoreError> {
    let rows = sqlx::query!(
        "with current_wave as (
             select b.rollout_id, min(b.wave) as wave
             from rollout r join rollout_batch b on b.rollout_id = r.id
             where r.state = 'running' and b.state in ('pending', 'open', 'halted')
             group by b.rollout_id),
         region_next as (
             -- Each region's first unfinished batch of the current wave: opened if it is pending.
             select distinct on (b.rollout_id, b.region) b.rollout_id, b.batch_index
             from rollout_batch b join current_wave c on c.rollout_id = b.rollout_id and c.wave = b.wave
             where b.state in ('pending', 'open', 'halted')
             order by b.rollout_id, b.region, b.batch_index)
         update rollout_batch b set state = 'open', opened_at = $1, updated_at = $1
         from region_next n
         where b.rollout_id = n.rollout_id and b.batch_index = n.batch_index and b.state = 'pending'
         returning b.rollout_id, b.batch_index, b.wave, b.region",
        now,
    )
    .fetch_all(db)
    .await?;
    let mut opened: Vec<BatchRef> = rows
        .into_iter()
        .map(|r| BatchRef {
            rollout_id: r.rollout_id,
            batch_index: r.batch_index,
            wave: r.wave,
            region: r.region,
        })
        .collect();
    opened.sort_by_key(|b| (b.rollout_id, b.batch_index));
    Ok(opened)
}

/// A machine whose install is due now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DueInstall {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// The machine.
    pub machine_id: Uuid,
    /// What it installs.
    pub release_id: Uuid,
    /// How.
    pub install: CycleKind,
    /// Whether it reboots.
    pub reboot: bool,
    /// When its window closes: the job must be done by then.
    pub window_end: DateTime<Utc>,
    /// Which window this is for the machine (the planned one is 1).
    pub attempt: i32,
}

/// Step 6: up to `limit` machines of open batches of running rollouts that are pending, inside
/// their window (`window_start <= now < window_end`) and not yet tried in it, soonest-closing
/// window first; each machine once (for its latest rollout when it is due in two). Machines
/// with an active disruptive job (an install now, a rollback, another rollout's install) are
/// left for a later tick.
///
/// The caller enqueues a job for each ([`crate::jobs::enqueue`], with the rollout's id) and
/// records it with [`mark_queued`]. An enqueue can still meet `job_one_active_disruptive` (a
/// job enqueued since this read): that machine stays pending and comes back on a later tick.
/// That unique violation aborts the statement's transaction, so enqueue each in a savepoint.
pub async fn due_installs(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueInstall>, StoreError> {
    let rows = sqlx::query!(
        r#"select rollout_id as "rollout_id!", machine_id as "machine_id!", release_id as "release_id!",
                  install as "install!", reboot as "reboot!", window_end as "window_end!", attempts as "attempts!"
           from (
               -- A machine due in two rollouts (last month's and this month's) installs for the
               -- latest one first; the other waits for the install to end.
               select distinct on (m.machine_id) m.rollout_id, m.machine_id, m.release_id, m.install,
                      m.reboot, m.window_end, m.attempts
               from rollout r
               join rollout_batch b on b.rollout_id = r.id and b.state = 'open'
               join rollout_machine m on m.rollout_id = b.rollout_id and m.batch_index = b.batch_index
               where r.state = 'running'
                 and m.state = 'pending' and m.job_id is null
                 and m.window_start <= $1 and m.window_end > $1
                 and not exists (select 1 from job j
                                 where j.machine_id = m.machine_id and j.kind in ('install', 'rollback', 'reboot')
                                   and j.state in ('queued', 'leased'))
               order by m.machine_id, m.rollout_id desc) as due
           order by window_end, rollout_id, machine_id
           limit $2"#,
        now,
        limit,
    )
    .fetch_all(db)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(DueInstall {
                rollout_id: r.rollout_id,
                machine_id: r.machine_id,
                release_id: r.release_id,
                install: parse_install(&r.install)?,
                reboot: r.reboot,
                window_end: r.window_end,
                attempt: r.attempts,
            })
        })
        .collect()
}

/// Records the job enqueued for a due machine: the machine is `queued`. `false` when the machine
/// is no longer due (its rollout was paused or canceled since [`due_installs`]): the caller then
/// drops the job (rolls back its savepoint, or [`cancel_queued_job`]).
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

/// A machine whose window passed before it installed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissedWindow {
    /// Its rollout.
    pub rollout_id: Uuid,
    /// The machine.
    pub machine_id: Uuid,
    /// Its job, still queued (no agent claimed it): the caller cancels it first
    /// ([`cancel_queued_job`]); `None` when the machine is pending.
    pub job_id: Option<Uuid>,
    /// The end of the window it missed.
    pub window_end: DateTime<Utc>,
}

/// Step 5: up to `limit` machines whose window ended (`window_end <= now`) before they
/// installed: those whose job is still queued (of a running, paused or halted rollout), and
/// those pending in open batches of running rollouts (never tried in that window, or their job
/// failed or was canceled). The caller cancels a queued job ([`cancel_queued_job`]; when that
/// answers `false` an agent claimed it meanwhile, and the machine is left to its result) and
/// moves the machine to its next window ([`reschedule`], or [`mark_failed`] when it has none).
/// A job an agent holds is never in the list: it runs to its end (the agent honours its maximum
/// duration).
pub async fn missed_windows(
    db: impl PgExecutor<'_>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<MissedWindow>, StoreError> {
    let rows = sqlx::query!(
        r#"select m.rollout_id as "rollout_id!", m.machine_id as "machine_id!", m.job_id as "job_id?",
                  m.window_end as "window_end!"
           from rollout_machine m join job j on j.id = m.job_id
           where m.state = 'queued' and j.state = 'queued' and m.window_end <= $1
           union all
           select m.rollout_id, m.machine_id, null::uuid, m.window_end
           from rollout r
           join rollout_batch b on b.rollout_id = r.id and b.state = 'open'
           join rollout_machine m on m.rollout_id = b.rollout_id and m.batch_index = b.batch_index
           where r.state = 'running' and m.state = 'pending' and m.window_end <= $1
           order by 4, 1, 2
           limit $2"#,
        now,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| MissedWindow {
            rollout_id: r.rollout_id,
            machine_id: r.machine_id,
            job_id: r.job_id,
            window_end: r.window_end,
        })
        .collect())
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

/// Moves a machine that missed its window to its next one: `pending` again, without a job, one
/// more attempt. Only a pending machine, or a queued one whose job was canceled, moves; `false`
/// otherwise (its job ran meanwhile, or the rollout was canceled).
pub async fn reschedule(
    db: impl PgExecutor<'_>,
    rollout_id: Uuid,
    machine_id: Uuid,
    window_start: DateTime<Utc>,
    window_end: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query!(
        "update rollout_machine m
         set state = 'pending', job_id = null, window_start = $3, window_end = $4, attempts = attempts + 1,
             updated_at = $5
         where m.rollout_id = $1 and m.machine_id = $2
           and (m.state = 'pending'
                or (m.state = 'queued'
                    and exists (select 1 from job j where j.id = m.job_id and j.state = 'canceled')))",
        rollout_id,
        machine_id,
        window_start,
        window_end,
        now,
    )
    .execute(db)
    .await?
    .rows_affected();
    Ok(n == 1)
}

/// Fails a pending machine that cannot install (no next window within the horizon), with the
/// reason; it then counts against its batch's threshold. `false` when it is not pending.
pub async fn mark_failed(
    db: impl PgExecutor<'_>,
    rollout_id: Uuid,
    machine_id: Uuid,
    error: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let n = sqlx::query!(
        "update rollout_machine set state = 'failed', error = $3, updated_at = $4
         where rollout_id = $1 and machine_id = $2 and state = 'pending'",
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
