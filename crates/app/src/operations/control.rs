//! Seeing and stopping operations: the list (`GET /v1/operations`, filtered by kind, status and
//! the token that started them) and cancel (`POST /v1/operations/{id}/cancel`).
//!
//! Canceling ends the operation's queued jobs only. A running job is left to finish: its agent
//! may be halfway through an install, and refusing the result it reports would hide what the
//! machine went through. The answer says how many were left.

use hotpatch_domain::operation::{Operation, OperationFilter, OperationSummary};
use hotpatch_store::{jobs, operations};
use uuid::Uuid;

use super::MAX_RESULTS;
use crate::error::AppError;
use crate::App;

/// A page of operations, newest first, after `before` (at most `limit`).
pub async fn list(
    app: &App,
    filter: &OperationFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<OperationSummary>, AppError> {
    Ok(operations::list(&app.pool, filter, before, limit).await?)
}

/// Cancels the operation's queued jobs: the operation as it stands then, with `warnings` naming
/// what was left to finish. A 404 without the operation, a 409 when it is already over.
pub async fn cancel(app: &App, id: Uuid) -> Result<Operation, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    if !operations::lock(&mut tx, id).await? {
        return Err(AppError::NotFound(format!("no operation {id}")));
    }
    let before = operations::get(&mut tx, id, 0).await?;
    if before.status.is_final() {
        let status: &'static str = before.status.into();
        return Err(AppError::Conflict(format!(
            "operation {id} is already over ({status}): nothing to cancel"
        )));
    }
    let done = jobs::cancel_operation(&mut tx, id, now).await?;
    let mut view = operations::get(&mut tx, id, MAX_RESULTS).await?;
    tx.commit().await?;
    tracing::info!(operation_id = %id, canceled = done.canceled, running = done.running, shared = done.shared,
        "operation canceled");
    if done.running > 0 {
        view.warnings.push(format!(
            "{} job(s) already running were left to finish; the operation ends when they do",
            done.running
        ));
    }
    if done.shared > 0 {
        view.warnings.push(format!(
            "{} queued assessment(s) also answer another operation and were left queued for it",
            done.shared
        ));
    }
    Ok(view)
}
