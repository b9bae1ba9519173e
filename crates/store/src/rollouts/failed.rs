//! The machines of a rollout whose install failed, by name, for the rollout's page: which ones
//! to look at, not only how many.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;

/// A machine whose install failed in a rollout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedMachine {
    /// Machine id.
    pub machine_id: Uuid,
    /// Its name.
    pub name: String,
    /// Its wave.
    pub wave: i32,
    /// Its batch.
    pub batch_index: i32,
    /// Why it failed, when known (the job's error, or the dispatcher's reason).
    pub error: Option<String>,
    /// When it failed.
    pub failed_at: DateTime<Utc>,
}

struct Row {
    machine_id: Uuid,
    name: String,
    wave: i32,
    batch_index: i32,
    error: Option<String>,
    failed_at: DateTime<Utc>,
    total: i64,
}

/// The first `limit` failed machines of rollout `rollout_id` (most recent failure first, then by
/// name) and how many failed in all (one query: the count is taken before the limit).
pub async fn failed_machines(
    db: impl PgExecutor<'_>,
    rollout_id: Uuid,
    limit: i64,
) -> Result<(Vec<FailedMachine>, i64), StoreError> {
    let rows = sqlx::query_as!(
        Row,
        r#"select rm.machine_id, m.name, rm.wave, rm.batch_index, rm.error,
                  rm.updated_at as "failed_at", count(*) over () as "total!"
           from rollout_machine rm join machine m on m.id = rm.machine_id
           where rm.rollout_id = $1 and rm.state = 'failed'
           order by rm.updated_at desc, m.name
           limit $2"#,
        rollout_id,
        limit
    )
    .fetch_all(db)
    .await?;
    let total = rows.first().map_or(0, |r| r.total);
    let machines = rows
        .into_iter()
        .map(|r| FailedMachine {
            machine_id: r.machine_id,
            name: r.name,
            wave: r.wave,
            batch_index: r.batch_index,
            error: r.error,
            failed_at: r.failed_at,
        })
        .collect();
    Ok((machines, total))
}
