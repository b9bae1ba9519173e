//! One install, rollback or reboot per machine at a time, for the operations that start one now.
//!
//! The `job_one_active_disruptive` index refuses a second such job; the refusal is answered as a
//! 409 that names the job in the way. An operation started again with the same `Idempotency-Key`
//! answers with the payload its job was enqueued with, not a new one.

use chrono::{DateTime, Utc};
use hotpatch_domain::job::{JobKind, JobState};
use hotpatch_domain::operation::Operation;
use hotpatch_store::installs::{self, JobRef};
use hotpatch_store::jobs::NewJob;
use hotpatch_store::machines::{self, Machine};
use hotpatch_store::{operations, StoreError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use super::idempotency::{self, Caller, Request, Started};
use super::MAX_RESULTS;
use crate::error::{AppError, OrNotFound};
use crate::App;

/// Priority of an install or rollback someone asked for: ahead of every assessment of the machine.
pub const DISRUPTIVE_NOW_PRIORITY: i16 = 20;
/// Claims an install or rollback may take (a lost lease re-queues it; both are idempotent on the
/// agent: installed KBs are skipped, rollback steps re-checked).
pub const MAX_ATTEMPTS: i32 = 3;

/// An operation of one disruptive job, started or replayed.
#[derive(Debug)]
pub struct Disruptive<P> {
    /// The operation as it stands after the request.
    pub operation: Operation,
    /// The job's payload: the new one, or the one an earlier request with the same key enqueued.
    pub payload: P,
    /// The machine, as read in the request's transaction.
    pub machine: Machine,
    /// Whether this request enqueued the job (`false`: replayed).
    pub new: bool,
    /// The warning that the machine's agent is not connected (its job waits for it and expires
    /// unclaimed after the job time-to-live), when it is not.
    pub disconnected: Option<String>,
}

/// Starts an operation of one `kind` job on the machine (or finds the one its key made), with the
/// payload `payload` decides from the machine, in one transaction. A 404 without the machine, a
/// 409 when the machine already runs an install, rollback or reboot.
pub async fn start<P: Serialize + DeserializeOwned>(
    app: &App,
    caller: &Caller,
    (kind, machine_id): (JobKind, Uuid),
    request: Request<'_>,
    payload: impl AsyncFnOnce(&mut PgConnection, &Machine) -> Result<P, AppError>,
) -> Result<Disruptive<P>, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    let machine = machines::get(&mut *tx, machine_id)
        .await
        .or_not_found(|| format!("no machine with id {machine_id}"))?;
    let started = idempotency::start(&mut tx, caller, request, now).await?;
    let payload = match started {
        Started::New(operation_id) => {
            let payload = payload(&mut tx, &machine).await?;
            let json = serde_json::to_value(&payload).map_err(AppError::internal)?;
            if !enqueue(&mut tx, kind, machine_id, operation_id, json, now).await? {
                drop(tx);
                return Err(blocked(app, machine_id).await);
            }
            payload
        }
        Started::Replayed(operation_id) => replayed_payload(&mut tx, operation_id, machine_id).await?,
    };
    let away = super::reach::disconnected(app, &mut tx, &[machine_id]).await?;
    let disconnected = super::reach::warning(&away, 1, app.settings.job_ttl);
    let operation = operations::get(&mut tx, started.id(), MAX_RESULTS).await?;
    tx.commit().await?;
    Ok(Disruptive { operation, payload, machine, new: matches!(started, Started::New(_)), disconnected })
}

/// Enqueues the operation's one job in the caller's transaction; `false` when the machine already
/// has a disruptive job (the transaction is then aborted: drop it).
async fn enqueue(
    tx: &mut PgConnection,
    kind: JobKind,
    machine_id: Uuid,
    operation_id: Uuid,
    payload: serde_json::Value,
    now: DateTime<Utc>,
) -> Result<bool, AppError> {
    let job = NewJob {
        kind,
        machine_id,
        payload,
        priority: DISRUPTIVE_NOW_PRIORITY,
        run_after: now,
        max_attempts: MAX_ATTEMPTS,
        operation_id: Some(operation_id),
        rollout_id: None,
        now,
    };
    match installs::enqueue_for_operation(tx, &job).await {
        Ok(_) => Ok(true),
        Err(StoreError::Conflict { constraint, .. }) if constraint == "job_one_active_disruptive" => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Why the machine cannot take another disruptive job now: the job in the way, by id.
async fn blocked(app: &App, machine_id: Uuid) -> AppError {
    let active = match installs::active_disruptive(&app.pool, machine_id).await {
        Ok(a) => a,
        Err(e) => return e.into(),
    };
    match active {
        Some(JobRef { id, kind, state, operation_id, rollout_id, .. }) => {
            let kind: &'static str = kind.into();
            let running = if state == JobState::Leased { "running" } else { "queued" };
            let origin = match (operation_id, rollout_id) {
                (_, Some(r)) => format!(" for rollout {r}"),
                (Some(o), None) => format!(" for operation {o}"),
                (None, None) => String::new(),
            };
            AppError::Conflict(format!(
                "machine {machine_id} already has {kind} job {id} {running}{origin}; one install, rollback or \
                 reboot runs at a time: wait for it to finish"
            ))
        }
        // It ended between the refusal and this look.
        None => AppError::Conflict(format!(
            "machine {machine_id} had an install, rollback or reboot queued or running; retry"
        )),
    }
}

/// The payload of the job an earlier request with the same key made.
async fn replayed_payload<P: DeserializeOwned>(
    tx: &mut PgConnection,
    operation_id: Uuid,
    machine_id: Uuid,
) -> Result<P, AppError> {
    let job = installs::operation_job(&mut *tx, operation_id, machine_id)
        .await?
        .ok_or_else(|| AppError::Internal(format!("operation {operation_id} has no job")))?;
    serde_json::from_value(job.payload).map_err(|e| {
        AppError::Internal(format!("payload of job {} of operation {operation_id}: {e}", job.id))
    })
}
