//! The audit log: one row per write through the API, written after the request, listed newest
//! first with filters, deleted past its retention.

use chrono::{DateTime, TimeDelta, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;
use crate::events::pg_interval;

/// An entry to write.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    /// The service clock's instant of the request.
    pub at: DateTime<Utc>,
    /// The token that asked (its name is copied from the token as it is now).
    pub token_id: Uuid,
    /// Its role.
    pub role: &'a str,
    /// Method and route template, e.g. `POST /v1/machines/{id}/install`.
    pub action: &'a str,
    /// The path requested.
    pub target: &'a str,
    /// The `Location` of what the write created.
    pub location: Option<&'a str>,
    /// The answer's HTTP status.
    pub status: i16,
    /// `succeeded`, `refused` or `failed`.
    pub result: &'a str,
    /// The request's `x-request-id`.
    pub request_id: Option<&'a str>,
}

/// An entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Its id (uuid v7).
    pub id: Uuid,
    /// When the request was made.
    pub at: DateTime<Utc>,
    /// The token.
    pub token_id: Uuid,
    /// The token's name when the entry was written.
    pub token_name: Option<String>,
    /// Its role.
    pub role: String,
    /// Method and route template.
    pub action: String,
    /// The path requested.
    pub target: String,
    /// What the write created.
    pub location: Option<String>,
    /// HTTP status.
    pub status: i16,
    /// `succeeded`, `refused` or `failed`.
    pub result: String,
    /// The request id.
    pub request_id: Option<String>,
}

/// Which entries a list holds; every given part must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Written for this token.
    pub token_id: Option<Uuid>,
    /// With this result.
    pub result: Option<String>,
    /// On exactly this path.
    pub target: Option<String>,
    /// On paths beginning with this.
    pub target_prefix: Option<String>,
    /// At or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Before this instant.
    pub until: Option<DateTime<Utc>>,
}

/// Writes one entry.
pub async fn insert(db: impl PgExecutor<'_>, e: &NewEntry<'_>) -> Result<Uuid, StoreError> {
    let id = Uuid::now_v7();
    sqlx::query!(
        "insert into audit_entry (id, at, token_id, token_name, role, action, target, location, status, result,
                                  request_id)
         values ($1, $2, $3, (select name from api_token where id = $3), $4, $5, $6, $7, $8, $9, $10)",
        id,
        e.at,
        e.token_id,
        e.role,
        e.action,
        e.target,
        e.location,
        e.status,
        e.result,
        e.request_id,
    )
    .execute(db)
    .await?;
    Ok(id)
}

/// Entries newest first, after the cursor `before` (an id of the previous page), at most `limit`.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &Filter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Entry>, StoreError> {
    let rows = sqlx::query_as!(
        Entry,
        "select id, at, token_id, token_name, role, action, target, location, status, result, request_id
         from audit_entry
         where ($1::uuid is null or id < $1)
           and ($2::uuid is null or token_id = $2)
           and ($3::text is null or result = $3)
           and ($4::text is null or target = $4)
           and ($5::text is null or starts_with(target, $5))
           and ($6::timestamptz is null or at >= $6)
           and ($7::timestamptz is null or at < $7)
         order by id desc
         limit $8",
        before,
        filter.token_id,
        filter.result,
        filter.target,
        filter.target_prefix,
        filter.since,
        filter.until,
        limit,
    )
    .fetch_all(db)
    .await?;
    Ok(rows)
}

/// Deletes up to `limit` entries written longer than `keep` ago (database time); returns how many.
pub async fn delete_older_than(
    db: impl PgExecutor<'_>,
    keep: TimeDelta,
    limit: i64,
) -> Result<u64, StoreError> {
    let done = sqlx::query!(
        "delete from audit_entry where id in (
             select id from audit_entry where created_at < now() - $1::interval order by created_at limit $2)",
        pg_interval(keep),
        limit,
    )
    .execute(db)
    .await?;
    Ok(done.rows_affected())
}
