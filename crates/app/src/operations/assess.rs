//! "Assess now": one machine, or every machine a selector names (`{}` is the whole fleet). Each
//! request is one operation whose assessment jobs run ahead of the periodic ones; a machine with an
//! assessment already queued joins it instead of getting a second one.
//!
//! The 202 warns about machines without a connected agent (their assessments wait for it and
//! expire unclaimed after the job time-to-live); a bulk request may leave them out instead.

use hotpatch_domain::operation::{Operation, OperationKind, Selector};
use hotpatch_store::{jobs, machines, operations};
use serde_json::{json, Value};
use sqlx::PgConnection;
use uuid::Uuid;

use super::idempotency::{self, Caller, Request, Started};
use super::{reach, MAX_RESULTS};
use crate::error::{AppError, OrNotFound};
use crate::selector;
use crate::App;

/// Priority of an assessment someone asked for: ahead of the periodic ones (0).
pub const ASSESS_NOW_PRIORITY: i16 = 10;
/// Most labels a selector may name.
pub const MAX_LABELS: usize = 50;
/// Most regions a selector may name.
pub const MAX_REGIONS: usize = 500;

/// Assesses one machine now: the operation to poll (a 404 when there is no such machine).
pub async fn machine(app: &App, caller: &Caller, machine_id: Uuid) -> Result<Operation, AppError> {
    let path = format!("/v1/machines/{machine_id}/assess");
    let body = json!({ "machine_ids": [machine_id] });
    start(app, caller, &path, body, false, async |tx| {
        machines::get(&mut *tx, machine_id)
            .await
            .or_not_found(|| format!("no machine with id {machine_id}"))?;
        Ok(vec![machine_id])
    })
    .await
}

/// Assesses every machine the selector names: the operation to poll. A 422 names unknown
/// machine ids, a selector that names no machine, or more than the setting `max_selected`.
/// `skip_disconnected` leaves out machines without a connected agent (a 422 when that leaves
/// none).
pub async fn selected(
    app: &App,
    caller: &Caller,
    selector: Selector,
    skip_disconnected: bool,
) -> Result<Operation, AppError> {
    selector::check_sizes(&selector, "")?;
    let mut body = serde_json::to_value(&selector).map_err(AppError::internal)?;
    if skip_disconnected {
        // Part of what the idempotency key is checked against: another request than without it.
        body = json!({ "selector": body, "skip_disconnected": true });
    }
    start(app, caller, "/v1/assessments", body, skip_disconnected, async |tx| {
        select(tx, &selector, app.settings.max_selected).await
    })
    .await
}

/// Creates an assess operation for the machines `machine_ids` finds (or finds the one its key
/// made), enqueueing their assessments in the same transaction.
async fn start(
    app: &App,
    caller: &Caller,
    path: &str,
    body: Value,
    skip_disconnected: bool,
    machine_ids: impl AsyncFnOnce(&mut PgConnection) -> Result<Vec<Uuid>, AppError>,
) -> Result<Operation, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    let request = Request { kind: OperationKind::Assess, path, body: &body, stored: &body };
    let started = idempotency::start(&mut tx, caller, request, now).await?;
    let mut warnings = vec![];
    if let Started::New(id) = started {
        let mut ids = machine_ids(&mut tx).await?;
        let away = reach::disconnected(app, &mut tx, &ids).await?;
        if skip_disconnected && !away.is_empty() {
            let gone: std::collections::HashSet<Uuid> = away.iter().map(|(m, _)| *m).collect();
            ids.retain(|m| !gone.contains(m));
            if ids.is_empty() {
                return Err(AppError::field("selector", "names no machine with a connected agent"));
            }
            warnings.push(reach::left_out(&away));
        } else if let Some(w) = reach::warning(&away, ids.len(), app.settings.job_ttl) {
            warnings.push(w);
        }
        jobs::enqueue_assessments(&mut tx, Some(id), &ids, ASSESS_NOW_PRIORITY, now).await?;
        tracing::info!(operation_id = %id, machines = ids.len(), disconnected = away.len(), "assessment requested");
    }
    let mut view = operations::get(&mut tx, started.id(), MAX_RESULTS).await?;
    tx.commit().await?;
    view.warnings = warnings;
    Ok(view)
}

/// The machines a selector names, in the caller's transaction.
async fn select(tx: &mut PgConnection, selector: &Selector, max: usize) -> Result<Vec<Uuid>, AppError> {
    selector::check_known(&mut *tx, selector, "").await?;
    let ids = operations::select_machines(&mut *tx, selector, selector::read_limit(max)).await?;
    if ids.is_empty() {
        return Err(AppError::field("selector", "names no machine"));
    }
    selector::check_count(ids.len(), max)?;
    Ok(ids)
}
