//! The audit log as use cases: recording a write the API answered, and listing entries for an
//! admin (`GET /v1/audit`). What counts as a write and who made it is the API's to say; entries
//! past the retention (`Settings::audit_retention`) are deleted by the retention duty.

use chrono::{DateTime, Utc};
use hotpatch_store::audit::{self, Entry, Filter, NewEntry};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;
use crate::App;

/// How a write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditResult {
    /// Answered 2xx (or 3xx).
    Succeeded,
    /// Refused: a 4xx (invalid, forbidden, conflicting …).
    Refused,
    /// The server failed: a 5xx.
    Failed,
}

impl AuditResult {
    /// The result of an answer with this HTTP status.
    pub fn of_status(status: u16) -> AuditResult {
        match status {
            500.. => AuditResult::Failed,
            400.. => AuditResult::Refused,
            _ => AuditResult::Succeeded,
        }
    }

    /// Its name on the wire and in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditResult::Succeeded => "succeeded",
            AuditResult::Refused => "refused",
            AuditResult::Failed => "failed",
        }
    }

    /// Parses a name (`None` for anything else).
    pub fn parse(s: &str) -> Option<AuditResult> {
        [AuditResult::Succeeded, AuditResult::Refused, AuditResult::Failed]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// One write through the API, as the API saw it.
#[derive(Debug, Clone)]
pub struct Write<'a> {
    /// The token that asked.
    pub token_id: Uuid,
    /// Its role.
    pub role: &'a str,
    /// Method and route template, e.g. `POST /v1/machines/{id}/install`.
    pub action: &'a str,
    /// The path requested.
    pub target: &'a str,
    /// The `Location` of what it created.
    pub location: Option<&'a str>,
    /// The answer's HTTP status.
    pub status: u16,
    /// The request's id (`x-request-id`).
    pub request_id: Option<&'a str>,
}

/// An audit log entry: who (token id and name, role), what (action), on what (target, and what
/// it created), how it ended (status, result), the request id and when.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AuditEntry {
    /// Its id.
    pub id: Uuid,
    /// When the request was made (service clock).
    pub at: DateTime<Utc>,
    /// The token that made it.
    pub token_id: Uuid,
    /// The token's name then (`null` when it was gone by the time the entry was written).
    pub token_name: Option<String>,
    /// The token's role.
    pub role: String,
    /// Method and route, e.g. `POST /v1/machines/{id}/install`.
    pub action: String,
    /// The path requested, e.g. `/v1/machines/0190…/install`.
    pub target: String,
    /// What the write created (its answer's `Location`), if anything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    /// The answer's HTTP status.
    pub status: u16,
    /// How it ended.
    pub result: AuditResult,
    /// The request's `x-request-id` (also in the server's log lines of the request).
    pub request_id: Option<String>,
}

/// Which entries `GET /v1/audit` lists; every given part must match.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Made with this token.
    pub token_id: Option<Uuid>,
    /// That ended so.
    pub result: Option<AuditResult>,
    /// On this path (exactly, or with `prefix` every path beginning with it).
    pub target: Option<String>,
    /// `target` is a prefix.
    pub prefix: bool,
    /// At or after.
    pub since: Option<DateTime<Utc>>,
    /// Before.
    pub until: Option<DateTime<Utc>>,
}

/// Records a write at the service clock's now.
pub async fn record(app: &App, w: &Write<'_>) -> Result<(), AppError> {
    let entry = NewEntry {
        at: app.clock.now(),
        token_id: w.token_id,
        role: w.role,
        action: w.action,
        target: w.target,
        location: w.location,
        status: i16::try_from(w.status).unwrap_or(i16::MAX),
        result: AuditResult::of_status(w.status).as_str(),
        request_id: w.request_id,
    };
    audit::insert(&app.pool, &entry).await?;
    Ok(())
}

/// A page of entries, newest first, after `before` (at most `limit`).
pub async fn list(
    app: &App,
    filter: &AuditFilter,
    before: Option<Uuid>,
    limit: i64,
) -> Result<Vec<AuditEntry>, AppError> {
    let (target, target_prefix) = match (&filter.target, filter.prefix) {
        (Some(t), true) => (None, Some(t.clone())),
        (t, false) => (t.clone(), None),
        (None, true) => (None, None),
    };
    let store_filter = Filter {
        token_id: filter.token_id,
        result: filter.result.map(|r| r.as_str().to_owned()),
        target,
        target_prefix,
        since: filter.since,
        until: filter.until,
    };
    audit::list(&app.pool, &store_filter, before, limit).await?.into_iter().map(view).collect()
}

fn view(e: Entry) -> Result<AuditEntry, AppError> {
    Ok(AuditEntry {
        id: e.id,
        at: e.at,
        token_id: e.token_id,
        token_name: e.token_name,
        role: e.role,
        action: e.action,
        target: e.target,
        location: e.location,
        status: u16::try_from(e.status).map_err(AppError::internal)?,
        result: AuditResult::parse(&e.result)
            .ok_or_else(|| AppError::internal(format!("audit entry {}: result {:?}", e.id, e.result)))?,
        request_id: e.request_id,
    })
}
