//! The rollout dispatcher: one pass advances every running rollout (DESIGN §1 "Orchestration").
//! `hotpatchd` runs a pass every second; one replica per database does the work (advisory lock),
//! in one transaction, so a crash in the middle leaves nothing half done.
//!
//! A pass takes the store's steps in order (see `hotpatch_store::rollouts`): results of ended
//! jobs, health after installs, batches succeeded or halted against the failure threshold, the
//! next batches opened, machines whose window passed before their job was claimed moved to their
//! next window, and an install job enqueued for every machine of an open batch inside its window.

use std::collections::hash_map::{Entry, HashMap};

use chrono::{DateTime, Utc};
use hotpatch_domain::job::JobKind;
use hotpatch_domain::payload::{InstallPayload, IsoDuration};
use hotpatch_domain::Release;
use hotpatch_store::jobs::{self, NewJob};
use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::rollouts::{self, BatchEvent, DueInstall};
use hotpatch_store::{machines, releases, StoreError};
use sqlx::{Connection as _, PgConnection};
use uuid::Uuid;

use crate::error::AppError;
use crate::schedules::windows::machine_windows_at;
use crate::App;

/// Machines one pass handles per step (the next pass takes the rest).
const BATCH: i64 = 1_000;
/// Attempts of one install job within its window (an agent lost mid-install is retried).
const INSTALL_ATTEMPTS: i32 = 3;

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Pass {
    /// Batches that succeeded or halted, rollouts that finished.
    pub events: Vec<BatchEvent>,
    /// Batches opened.
    pub opened: usize,
    /// Install jobs enqueued.
    pub enqueued: usize,
    /// Machines moved to their next window.
    pub rescheduled: usize,
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
    rollouts::sync_job_results(&mut *tx, now).await?;
    rollouts::record_health(&mut *tx, now).await?;
    let mut pass = Pass { events: rollouts::evaluate_batches(&mut tx, now).await?, ..Pass::default() };
    pass.opened = rollouts::open_batches(&mut *tx, now).await?.len();
    pass.rescheduled = move_missed_windows(app, &mut tx, now).await?;
    let mut catalog: HashMap<Uuid, Release> = HashMap::new();
    for due in rollouts::due_installs(&mut *tx, now, BATCH).await? {
        let release = match catalog.entry(due.release_id) {
            Entry::Occupied(known) => known.into_mut(),
            Entry::Vacant(slot) => slot.insert(releases::get(&mut *tx, due.release_id).await?.release),
        };
        if enqueue_install(&mut tx, &due, release, now).await? {
            pass.enqueued += 1;
        }
    }
    tx.commit().await?;
    for event in &pass.events {
        match event {
            BatchEvent::BatchHalted { rollout_id, batch_index, reason } => {
                tracing::warn!(%rollout_id, batch_index, %reason, "rollout halted");
            }
            e => tracing::info!(event = ?e, "rollout progressed"),
        }
    }
    if pass.enqueued + pass.rescheduled + pass.opened > 0 {
        tracing::info!(
            opened = pass.opened,
            enqueued = pass.enqueued,
            rescheduled = pass.rescheduled,
            "rollout dispatch"
        );
    }
    Ok(Some(pass))
}

/// Machines whose window ended before an agent claimed their job: the job is canceled and the
/// machine waits for its next window (DESIGN §1: a missed install is retried in the next window).
/// A job an agent already holds runs to its end (its payload carries the window's maximum duration).
async fn move_missed_windows(
    app: &App,
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<usize, AppError> {
    let mut moved = 0;
    for missed in rollouts::missed_windows(&mut *conn, now, BATCH).await? {
        if let Some(job_id) = missed.job_id {
            if !rollouts::cancel_queued_job(&mut *conn, job_id, now).await? {
                continue; // claimed meanwhile: its result decides
            }
        }
        let machine = match machines::get(&mut *conn, missed.machine_id).await {
            Ok(m) => m,
            Err(StoreError::NotFound) => continue, // deleted: its rollout rows went with it
            Err(e) => return Err(e.into()),
        };
        let next = machine_windows_at(app, &machine, missed.window_end, 2)
            .await?
            .into_iter()
            .find(|w| w.start >= missed.window_end);
        let done = match next {
            Some(w) => {
                rollouts::reschedule(&mut *conn, missed.rollout_id, missed.machine_id, w.start, w.end, now)
                    .await?
            }
            None => {
                let why = "no maintenance window left in the schedule to retry the install in";
                rollouts::mark_failed(&mut *conn, missed.rollout_id, missed.machine_id, why, now).await?
            }
        };
        moved += usize::from(done);
    }
    Ok(moved)
}

/// Enqueues the machine's install job and records it, in a savepoint: the machine may have
/// become busy since it was read (another install, a rollback), which the unique index refuses;
/// it then stays pending for a later pass. `true` when the job was enqueued.
async fn enqueue_install(
    conn: &mut PgConnection,
    due: &DueInstall,
    release: &Release,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let mut payload = InstallPayload::of_release(release, due.install.requires_reboot());
    payload.rollout_id = Some(due.rollout_id);
    // The agent stops when the window closes; a job not done by then is retried in the next one.
    let left = (due.window_end - now).num_seconds().max(60);
    payload.maximum_duration = Some(IsoDuration::from_secs(u32::try_from(left).unwrap_or(u32::MAX)));
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
            return Ok(false);
        }
        Err(e) => return Err(e.into()),
    };
    if rollouts::mark_queued(&mut *savepoint, due.rollout_id, due.machine_id, job_id, now).await? {
        savepoint.commit().await?;
        Ok(true)
    } else {
        savepoint.rollback().await?;
        Ok(false)
    }
}
