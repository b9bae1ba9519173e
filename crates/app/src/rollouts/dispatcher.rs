//! The rollout dispatcher: one pass advances every unfinished rollout (DESIGN §1
//! "Orchestration"). `hotpatchd` runs a pass every second; one replica per database does the
//! work (advisory lock), in one transaction, so a crash in the middle leaves nothing half done.
//!
//! A pass reads the rows ([`rollouts::load`]), lets the state machine decide
//! ([`progress::tick`]: job results, health, batch verdicts and halts, batches that open, missed
//! windows, installs that start) and applies the decisions in the order of its rules. The only
//! reads beside the snapshot are those the decisions need: the schedules of machines that missed
//! their window (through the same transaction) and the releases being installed.

use std::collections::hash_map::{Entry, HashMap};

use chrono::{DateTime, Utc};
use hotpatch_domain::job::JobKind;
use hotpatch_domain::payload::{InstallPayload, IsoDuration};
use hotpatch_domain::rollout::decisions::{BatchKey, Decisions, Enqueue, Missed, MissedMove, Moved};
use hotpatch_domain::Release;
use hotpatch_scheduler::rollout::progress;
use hotpatch_store::jobs::{self, NewJob};
use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::{machines, releases, rollouts, StoreError};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::error::AppError;
use crate::schedules::windows::applied_in;
use crate::App;

/// Machines one pass moves and enqueues at most (the next pass takes the rest).
const BATCH: usize = 1_000;
/// Candidates one pass reads at most: enough for a full batch of each kind of move.
const CANDIDATES: i64 = 4 * BATCH as i64;
/// Attempts of one install job within its window (an agent lost mid-install is retried).
const INSTALL_ATTEMPTS: i32 = 3;

/// Something a pass did to a batch or a rollout.
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

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    /// Batches that succeeded or halted, rollouts that finished.
    pub events: Vec<BatchEvent>,
    /// Batches opened.
    pub opened: Vec<BatchKey>,
    /// Install jobs enqueued: (machine, job).
    pub enqueued: Vec<(Uuid, Uuid)>,
    /// Machines moved to their next window (or failed for want of one).
    pub rescheduled: Vec<Uuid>,
}

/// One pass at the service clock's `now`; `None` when another replica holds the dispatcher.
pub async fn tick(app: &App) -> Result<Option<Pass>, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::RolloutDispatch).await? {
        return Ok(None);
    }
    // Lock order against operators' pause/resume/cancel: rollouts first, then their rows.
    rollouts::lock_rollouts(&mut *tx).await?;
    let snapshot = rollouts::load(&mut tx, now, CANDIDATES).await?;
    let decisions = progress::tick(&snapshot, now, BATCH);
    let pass = apply(app, &mut tx, &decisions, now).await?;
    tx.commit().await?;
    log(&pass);
    Ok(Some(pass))
}

/// Applies a tick's decisions in the order of the rules (see `progress`).
async fn apply(
    app: &App,
    conn: &mut PgConnection,
    d: &Decisions,
    now: DateTime<Utc>,
) -> Result<Pass, AppError> {
    rollouts::apply_results(&mut *conn, &d.results, now).await?;
    rollouts::apply_health(&mut *conn, &d.health, now).await?;
    let mut pass = Pass::default();
    let succeeded = rollouts::succeed_batches(&mut *conn, &d.verdicts.batches_succeeded, now).await?;
    pass.events.extend(
        succeeded
            .into_iter()
            .map(|b| BatchEvent::BatchSucceeded { rollout_id: b.rollout_id, batch_index: b.batch_index }),
    );
    for halt in &d.verdicts.halts {
        if rollouts::halt(&mut *conn, halt, now).await? {
            pass.events.extend(halt.batches.iter().map(|b| BatchEvent::BatchHalted {
                rollout_id: halt.rollout_id,
                batch_index: b.batch_index,
                reason: b.reason.clone(),
            }));
        }
    }
    let finished = rollouts::succeed_rollouts(&mut *conn, &d.verdicts.rollouts_succeeded, now).await?;
    pass.events.extend(finished.into_iter().map(|rollout_id| BatchEvent::RolloutSucceeded { rollout_id }));
    pass.opened = rollouts::open_batches(&mut *conn, &d.opened, now).await?;
    for missed in &d.missed {
        if move_missed(app, conn, missed, now).await? {
            pass.rescheduled.push(missed.machine_id);
        }
    }
    let mut catalog: HashMap<Uuid, Release> = HashMap::new();
    for due in &d.enqueue {
        let release = match catalog.entry(due.release_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(releases::get(&mut *conn, due.release_id).await?.release),
        };
        if let Some(job_id) = enqueue_install(conn, due, release, now).await? {
            pass.enqueued.push((due.machine_id, job_id));
        }
    }
    Ok(pass)
}

/// A machine whose window ended before an agent claimed its job: the job is canceled and the
/// machine takes the first window of its schedule at or after `now`, or fails without one (DESIGN
/// §1: a missed install is retried in the next window). A job an agent claimed meanwhile runs to
/// its end. `true` when the machine moved.
async fn move_missed(
    app: &App,
    conn: &mut PgConnection,
    missed: &Missed,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    if let Some(job_id) = missed.cancel_job {
        if !rollouts::cancel_queued_job(&mut *conn, job_id, now).await? {
            return Ok(false); // claimed meanwhile: its result decides
        }
    }
    let machine = match machines::get(&mut *conn, missed.machine_id).await {
        Ok(m) => m,
        Err(StoreError::NotFound) => return Ok(false), // deleted: its rollout rows went with it
        Err(e) => return Err(e.into()),
    };
    // The schedule is read in this transaction: it is the one the tick's decisions saw.
    let schedule = applied_in(app, &mut *conn, &machine).await?.schedule;
    let Moved { rollout_id, machine_id, to, attempts, .. } = progress::moved(missed, &schedule, now);
    let done = match to {
        MissedMove::Reschedule { start, end } => {
            rollouts::reschedule(&mut *conn, rollout_id, machine_id, (start, end), attempts, now).await?
        }
        MissedMove::Fail { reason } => {
            rollouts::mark_failed(&mut *conn, rollout_id, machine_id, reason, now).await?
        }
    };
    Ok(done)
}

/// Enqueues the machine's install job and records it, in a savepoint: the machine may have
/// become busy since it was read (another install, a rollback), which the unique index refuses;
/// it then stays pending for a later pass. The job's id when it was enqueued.
async fn enqueue_install(
    conn: &mut PgConnection,
    due: &Enqueue,
    release: &Release,
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, AppError> {
    let mut payload = InstallPayload::of_release(release, due.install.requires_reboot());
    payload.rollout_id = Some(due.rollout_id);
    // The agent stops when the window closes; a job not done by then is retried in the next one.
    payload.maximum_duration = Some(IsoDuration::from_secs(due.maximum_duration_secs));
    let payload = serde_json::to_value(&payload).map_err(AppError::internal)?;
    let job = NewJob {
        kind: JobKind::Install,
        machine_id: due.machine_id,
        payload,
        priority: 0,
        run_after: now,
        max_attempts: INSTALL_ATTEMPTS,
        operation_id: None,
        rollout_id: Some(due.rollout_id),
        now,
    };
    let mut savepoint = conn.begin().await?;
    let job_id = match jobs::enqueue(&mut *savepoint, &job).await {
        Ok(id) => id,
        Err(StoreError::Conflict { .. }) => {
            savepoint.rollback().await?;
            return Ok(None);
        }
        Err(e) => return Err(e.into()),
    };
    if rollouts::mark_queued(&mut *savepoint, due.rollout_id, due.machine_id, job_id, now).await? {
        savepoint.commit().await?;
        Ok(Some(job_id))
    } else {
        savepoint.rollback().await?;
        Ok(None)
    }
}

fn log(pass: &Pass) {
    for event in &pass.events {
        match event {
            BatchEvent::BatchHalted { rollout_id, batch_index, reason } => {
                tracing::warn!(%rollout_id, batch_index, %reason, "rollout halted");
            }
            e => tracing::info!(event = ?e, "rollout progressed"),
        }
    }
    if !(pass.enqueued.is_empty() && pass.rescheduled.is_empty() && pass.opened.is_empty()) {
        let (opened, enqueued, rescheduled) =
            (pass.opened.len(), pass.enqueued.len(), pass.rescheduled.len());
        tracing::info!(opened, enqueued, rescheduled, "rollout dispatch");
    }
}
