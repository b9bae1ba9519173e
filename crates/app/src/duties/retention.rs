//! Event retention: change-feed events older than [`events::RETENTION`] are deleted, in
//! batches, by one replica a pass.

use std::time::Duration;

use hotpatch_store::events;
use hotpatch_store::leader::{self, Singleton};

use super::BATCH;
use crate::{App, AppError};

/// Between passes: a minute's events are far fewer than a batch.
pub const PERIOD: Duration = Duration::from_secs(60);

/// One pass: how many events it deleted, or `None` when another replica holds the duty.
pub async fn tick(app: &App) -> Result<Option<u64>, AppError> {
    let mut tx = app.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::EventRetention).await? {
        return Ok(None);
    }
    let mut deleted = 0;
    loop {
        let n = events::delete_older_than(&mut *tx, events::RETENTION, BATCH).await?;
        deleted += n;
        if n < BATCH as u64 {
            break;
        }
    }
    tx.commit().await?;
    Ok(Some(deleted))
}
