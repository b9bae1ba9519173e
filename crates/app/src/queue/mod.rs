//! The agent protocol (DESIGN §2 "Job queue"): an agent claims its machine's next job under a
//! lease, keeps the lease with heartbeats, reports the result fenced by the lease, and reports
//! the machine's inventory and health. Claims, heartbeats and results reach the database in
//! batches ([`batches`]); agents' last-seen marks are written together ([`presence`]).

pub mod batch;
pub mod batches;
pub mod presence;

use std::time::Duration;

use chrono::TimeDelta;
use hotpatch_domain::job::{ClaimedJob, Health, Inventory, JobResult, Lease};
use hotpatch_domain::InstalledReleases;
use hotpatch_store::agents::InventoryWrite;
use hotpatch_store::jobs::{Fence, LeaseRef};
use hotpatch_store::{agents, releases, StoreError};
use rand::Rng as _;
use uuid::Uuid;

pub use batches::{Batches, Done};

use crate::error::AppError;
use crate::wakeups::Key;
use crate::App;

/// Longest a claim may wait for a job.
pub const MAX_WAIT_SECS: u64 = 60;
/// Most updates one inventory may list (installed, and available).
pub const MAX_UPDATES: usize = 5_000;
/// Most checks one health report may carry.
pub const MAX_HEALTH_CHECKS: usize = 100;
/// Longest error text a result may carry, in characters.
pub const MAX_ERROR_CHARS: usize = 10_000;
/// A waiting claim re-checks this often (jittered) when no notification came: notifications
/// are hints, the queue is the truth.
const POLL_FALLBACK: Duration = Duration::from_secs(30);

/// A random share of the fallback interval, so thousands of waiting agents do not re-check together.
fn fallback_interval() -> Duration {
    POLL_FALLBACK.mul_f64(rand::thread_rng().gen_range(0.75..1.0))
}

/// The machine's next job under a new lease, waiting up to `wait` for one: `None` when none
/// came. A waiting claim answers as soon as a job is enqueued on any replica (LISTEN/NOTIFY),
/// and re-checks on a timer as a fallback.
pub async fn claim(app: &App, machine_id: Uuid, wait: Duration) -> Result<Option<ClaimedJob>, AppError> {
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribe before the first check: a job enqueued between the check and the wait still wakes us.
    let subscription = app.wakeups.subscribe(Key::Machine(machine_id));
    loop {
        // A stopping replica hands out no job: it could not keep the lease's connection open,
        // and the agent's next claim reaches another replica.
        if app.is_stopping() {
            return Ok(None);
        }
        let changed = subscription.changed();
        // The query runs in a batch runner's task: a claim waiting here (up to a minute, 10,000 of
        // them at once) holds only a channel, not a query future.
        if let Some(job) = app.agent_batches.claim(app, machine_id).await? {
            tracing::info!(job_id = %job.id, kind = ?job.kind, attempt = job.attempt, %machine_id, "job claimed");
            return Ok(Some(job));
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(None);
        }
        let nap = (deadline - now).min(fallback_interval());
        tokio::select! {
            () = changed.wait() => {}
            () = tokio::time::sleep(nap) => {}
            () = app.shutdown.cancelled() => return Ok(None),
        }
    }
}

fn fenced(f: Fence, job_id: Uuid) -> AppError {
    match f {
        Fence::NotFound => AppError::NotFound(format!("no job {job_id} for this agent's machine")),
        Fence::LeaseLost => AppError::LeaseLost(format!(
            "the lease no longer holds job {job_id}: it expired and the job was re-queued, or the job ended; \
             stop working on it"
        )),
    }
}

/// Confirms or extends the lease `lease_id` of the machine's job `job_id`.
pub async fn heartbeat(app: &App, machine_id: Uuid, job_id: Uuid, lease_id: Uuid) -> Result<Lease, AppError> {
    let lease = LeaseRef { job_id, machine_id, lease_id };
    app.agent_batches.heartbeat(app, lease).await?.map_err(|f| fenced(f, job_id))
}

/// Records how the machine's job `job_id` ended, fenced by its lease; the same result again
/// changes nothing.
pub async fn result(app: &App, machine_id: Uuid, job_id: Uuid, result: JobResult) -> Result<Done, AppError> {
    if result.error.as_ref().is_some_and(|e| e.chars().count() > MAX_ERROR_CHARS) {
        return Err(AppError::field("error", "at most 10,000 characters"));
    }
    let done =
        app.agent_batches.result(app, job_id, machine_id, result).await?.map_err(|f| fenced(f, job_id))?;
    if done.recorded {
        tracing::info!(%job_id, kind = ?done.kind, state = ?done.state, %machine_id, "job finished");
    }
    Ok(done)
}

/// Records the machine's inventory (an assessment's result): it becomes its patch status (the
/// catalog releases among its installed KBs move its installed state, see
/// [`InstalledReleases`]), and its next periodic assessment is due one jittered interval later.
pub async fn inventory(app: &App, machine_id: Uuid, inventory: &Inventory) -> Result<(), AppError> {
    if inventory.installed_updates.len() > MAX_UPDATES {
        return Err(AppError::field("installed_updates", format!("at most {MAX_UPDATES} updates")));
    }
    if inventory.available_updates.len() > MAX_UPDATES {
        return Err(AppError::field("available_updates", format!("at most {MAX_UPDATES} updates")));
    }
    let now = app.clock.now();
    let next = now + jittered(app.settings.assessment_interval);
    let mut tx = app.pool.begin().await?;
    // The catalog as this transaction reads it, not this replica's cached copy: the ids written
    // must be releases the transaction sees, and a release published a moment ago must count.
    // One small read (a dozen releases per OS a year) per assessment.
    let catalog = releases::catalog_of_machine(&mut *tx, machine_id).await?;
    let write = InventoryWrite {
        inventory,
        installed: InstalledReleases::of(&catalog, inventory.installed_updates.iter().map(|u| &u.kb)),
        recommended_pending: inventory.recommended_pending(),
    };
    agents::record_inventory(&mut tx, machine_id, &write, now, next).await.map_err(|e| match e {
        // The machine was deleted while its agent still runs: its token is gone with it, so this
        // can only be a race with the delete.
        StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            AppError::NotFound("the agent's machine no longer exists".to_owned())
        }
        e => e.into(),
    })?;
    tx.commit().await?;
    // Before the answer: a read after it on this replica must not get the kept answer.
    app.status_cache.forget(machine_id);
    tracing::info!(%machine_id, installed = inventory.installed_updates.len(),
        available = inventory.available_updates.len(), "inventory recorded");
    Ok(())
}

/// Records the machine's health (rollouts halt when too many machines turn unhealthy).
pub async fn health(app: &App, machine_id: Uuid, health: &Health) -> Result<(), AppError> {
    if health.checks.len() > MAX_HEALTH_CHECKS {
        return Err(AppError::field("checks", format!("at most {MAX_HEALTH_CHECKS} checks")));
    }
    agents::record_health(&app.pool, machine_id, health, app.clock.now()).await?;
    // Before the answer: a read after it on this replica must not get the kept answer.
    app.status_cache.forget(machine_id);
    tracing::info!(%machine_id, status = ?health.status, "health reported");
    Ok(())
}

/// `interval` ± 10%, so a fleet assessed together at first drifts apart.
pub fn jittered(interval: TimeDelta) -> TimeDelta {
    let ms = interval.num_milliseconds() as f64;
    TimeDelta::milliseconds((ms * rand::thread_rng().gen_range(0.9..1.1)) as i64)
}
