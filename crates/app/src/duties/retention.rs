//! Retention: change-feed events older than [`events::RETENTION`] and audit log entries older
//! than `Settings::audit_retention` are deleted, in batches, by one replica a pass. Both go by
//! database time, so a moved service clock does not empty them.

use std::time::Duration;

use hotpatch_store::leader::{self, Singleton};
use hotpatch_store::{audit, events};

use super::BATCH;
use crate::{App, AppError};

/// Between passes: a minute's events are far fewer than a batch.
pub const PERIOD: Duration = Duration::from_secs(60);

/// What a pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Deleted {
    /// Change-feed events.
    pub events: u64,
    /// Audit log entries.
    pub audit: u64,
}

/// One pass: what it deleted, or `None` when another replica holds the duty.
pub async fn tick(app: &App) -> Result<Option<Deleted>, AppError> {
    let mut tx = app.pool.begin().await?;
    if !leader::try_lock(&mut tx, Singleton::EventRetention).await? {
        return Ok(None);
    }
    let mut deleted = Deleted::default();
    loop {
        let n = events::delete_older_than(&mut *tx, events::RETENTION, BATCH).await?;
        deleted.events += n;
        if n < BATCH as u64 {
            break;
        }
    }
    loop {
        let n = audit::delete_older_than(&mut *tx, app.settings.audit_retention, BATCH).await?;
        deleted.audit += n;
        if n < BATCH as u64 {
            break;
        }
    }
    tx.commit().await?;
    Ok(Some(deleted))
}
