//! A webhook's record of failed attempts, and disabling and enabling it (migration
//! `0015_webhook_disable.sql`; the rule is `hotpatch_domain::webhook_health`).

use chrono::{DateTime, Utc};
use hotpatch_domain::webhook_health::Health;
use sqlx::PgExecutor;
use uuid::Uuid;

use super::Webhook;
use crate::error::StoreError;

/// Counts an attempt's outcome in its webhook's record: a success clears the run of failures, a
/// failure extends it. The record after it.
pub async fn record_outcome(
    db: impl PgExecutor<'_>,
    webhook: Uuid,
    delivered: bool,
    now: DateTime<Utc>,
) -> Result<Health, StoreError> {
    let row = sqlx::query!(
        "update webhook
         set consecutive_failures = case when $2 then 0 else consecutive_failures + 1 end,
             failing_since = case when $2 then null else coalesce(failing_since, $3) end
         where id = $1
         returning consecutive_failures, failing_since",
        webhook,
        delivered,
        now,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?;
    Ok(Health { consecutive_failures: row.consecutive_failures, failing_since: row.failing_since })
}

/// Disables a webhook for `reason` (`false`: it was already disabled).
pub async fn disable(
    db: impl PgExecutor<'_>,
    id: Uuid,
    reason: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let done = sqlx::query!(
        "update webhook set disabled_at = $2, disabled_reason = $3, updated_at = $2
         where id = $1 and disabled_at is null",
        id,
        now,
        reason,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// Enables a webhook again with a clean record; the webhook.
pub async fn enable(db: impl PgExecutor<'_>, id: Uuid, now: DateTime<Utc>) -> Result<Webhook, StoreError> {
    sqlx::query_as!(
        Webhook,
        "update webhook
         set disabled_at = null, disabled_reason = null, consecutive_failures = 0, failing_since = null,
             updated_at = $2
         where id = $1
         returning id, url, event_types, secret, description, created_by, created_at, disabled_at,
                   disabled_reason",
        id,
        now,
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)
}
