//! Agent liveness for the change feed: agents silent for two minutes are reported lost (once per
//! silence), and operations whose `operation.finished` event the commit-time check missed (their
//! last two results committed at the same instant) get it. One replica a pass.

use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::{events, stats};

use super::BATCH;
use crate::{App, AppError};

/// What a pass reported.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Reported {
    /// Agents reported lost.
    pub lost: u64,
    /// Operations reported finished.
    pub finished: i64,
}

/// One pass at the service clock's `now`; `None` when another replica holds the duty.
pub async fn tick(app: &App) -> Result<Option<Reported>, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::AgentLiveness).await? {
        app.telemetry.record(|| crate::telemetry::set_agents(None));
        return Ok(None);
    }
    let lost = events::report_lost_agents(&mut *tx, now, app.settings.agent_silence, BATCH).await?;
    let finished = events::sweep_finished_operations(&mut *tx, BATCH as i32).await?;
    // Every agent's row: seldom (see `telemetry::AGENT_COUNT_EVERY`).
    let counts = if app.telemetry.agents_count_due() {
        Some(stats::agents(&mut *tx, now, app.settings.agent_silence).await?)
    } else {
        None
    };
    tx.commit().await?;
    app.telemetry.record(|| {
        metrics::counter!("hotpatch_agents_lost_total").increment(lost);
        if counts.is_some() {
            crate::telemetry::set_agents(counts);
        }
    });
    Ok(Some(Reported { lost, finished }))
}
