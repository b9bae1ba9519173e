//! Reading one operation, optionally waiting (`?wait=`) until its jobs change state or it ends.
//!
//! Waiting polls the operation's progress instead of listening for a notification: a NOTIFY per
//! job state change would serialize the queue's commits.

use std::time::Duration;

use hotpatch_domain::operation::Operation;
use hotpatch_store::operations;
use uuid::Uuid;

use super::MAX_RESULTS;
use crate::error::{AppError, OrNotFound};
use crate::App;

/// The longest wait a read may ask for, in seconds.
pub const MAX_WAIT_SECS: u64 = 30;
/// How often a waiting read re-reads the operation's progress.
const OPERATION_POLL: Duration = Duration::from_millis(250);

/// The operation; with a `wait`, once its jobs change state, it is over, or `wait` passed.
pub async fn get(app: &App, id: Uuid, wait: Duration) -> Result<Operation, AppError> {
    if !wait.is_zero() {
        wait_for_change(app, id, wait).await?;
    }
    let mut conn = app.pool.acquire().await?;
    operations::get(&mut conn, id, MAX_RESULTS).await.or_not_found(|| not_found(id))
}

fn not_found(id: Uuid) -> String {
    format!("no operation {id}")
}

/// Returns when the operation's jobs change state, it is over, or `wait` passed. It holds no
/// connection while it sleeps.
async fn wait_for_change(app: &App, id: Uuid, wait: Duration) -> Result<(), AppError> {
    let deadline = tokio::time::Instant::now() + wait;
    let first =
        operations::progress(&app.pool, id).await?.ok_or_else(|| AppError::NotFound(not_found(id)))?;
    // Nothing pending: it is over, answer now.
    if first.0 + first.1 == 0 {
        return Ok(());
    }
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep((deadline - now).min(OPERATION_POLL)) => {}
            // The process is stopping: answer what is known now.
            () = app.shutdown.cancelled() => return Ok(()),
        }
        if operations::progress(&app.pool, id).await? != Some(first) {
            return Ok(());
        }
    }
}
