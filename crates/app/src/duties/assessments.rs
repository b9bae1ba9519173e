//! Periodic assessments: every machine with an agent is assessed every
//! `HOTPATCH_ASSESSMENT_INTERVAL_SECS` (±10% per machine, so a fleet drifts apart). One replica a
//! pass takes the machines whose assessment is due and enqueues one job each.

use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::{agents, jobs};

use super::BATCH;
use crate::{App, AppError};

/// One pass at the service clock's `now`: how many assessments it enqueued, or `None` when
/// another replica holds the duty.
pub async fn tick(app: &App) -> Result<Option<usize>, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::PeriodicAssessments).await? {
        return Ok(None);
    }
    let interval = app.settings.assessment_interval;
    let mut enqueued = 0;
    loop {
        let due = agents::take_due_assessments(&mut *tx, now, interval, BATCH).await?;
        if !due.is_empty() {
            jobs::enqueue_assessments(&mut tx, None, &due, 0, now).await?;
            enqueued += due.len();
        }
        if (due.len() as i64) < BATCH {
            break;
        }
    }
    tx.commit().await?;
    if enqueued > 0 {
        tracing::info!(machines = enqueued, "periodic assessments enqueued");
    }
    Ok(Some(enqueued))
}
