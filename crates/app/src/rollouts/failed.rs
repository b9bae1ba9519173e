//! A rollout's failed machines by name, for the operator who must look at them: the first few
//! (most recent failure first) with the reason when known, and how many failed in all.

use chrono::{DateTime, Utc};
use hotpatch_store::rollouts;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;
use crate::App;

/// A machine whose install failed in a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FailedMachineView {
    /// Machine id.
    pub machine_id: Uuid,
    /// Machine name.
    pub name: String,
    /// Its wave.
    pub wave: i32,
    /// Its batch.
    pub batch: i32,
    /// Why it failed, when known.
    pub error: Option<String>,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
}

/// Some of a rollout's failed machines and how many there are.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FailedMachines {
    /// At most the `limit` asked for.
    pub items: Vec<FailedMachineView>,
    /// Every failed machine of the rollout (`items` may hold fewer).
    pub total: i64,
}

/// The first `limit` failed machines of rollout `id` (most recent failure first) and their
/// total. An unknown rollout has none (the caller reads the rollout itself first).
pub async fn failed_machines(app: &App, id: Uuid, limit: i64) -> Result<FailedMachines, AppError> {
    let (rows, total) = rollouts::failed_machines(&app.pool, id, limit.max(0)).await?;
    let items = rows
        .into_iter()
        .map(|r| FailedMachineView {
            machine_id: r.machine_id,
            name: r.name,
            wave: r.wave,
            batch: r.batch_index,
            error: r.error,
            failed_at: r.failed_at,
        })
        .collect();
    Ok(FailedMachines { items, total })
}
