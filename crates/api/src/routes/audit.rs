//! `GET /v1/audit` (admin): the audit log of writes through the API, newest first. Entries are
//! written by the [`crate::audit`] layer; the use cases are `hotpatch_app::audit`'s.

use axum::extract::{RawQuery, State};
use axum::Json;
use hotpatch_app::audit::{self, AuditEntry, AuditFilter, AuditResult};
use hotpatch_domain::time::parse_instant;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Admin;
use crate::error::{ApiError, Problem};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_audit))
}

/// Reads the filters of `GET /v1/audit` (`PageParams` refuses unknown parameters).
fn list_filter(raw: Option<&str>) -> Result<AuditFilter, ApiError> {
    let mut filter = AuditFilter::default();
    let instant = |field: &str, v: &str| {
        parse_instant(v).ok_or_else(|| {
            ApiError::bad_param(field, format!("'{}' is not an RFC 3339 instant", v.escape_debug()))
        })
    };
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "token_id" => {
                filter.token_id = Some(v.parse::<Uuid>().map_err(|_| {
                    ApiError::bad_param("token_id", format!("'{}' is not a token id", v.escape_debug()))
                })?)
            }
            "result" => {
                filter.result = Some(AuditResult::parse(&v).ok_or_else(|| {
                    ApiError::bad_param(
                        "result",
                        format!("'{}' is not one of succeeded, refused, failed", v.escape_debug()),
                    )
                })?)
            }
            "target" => {
                let (target, prefix) = match v.strip_suffix('*') {
                    Some(p) => (p.to_owned(), true),
                    None => (v.clone().into_owned(), false),
                };
                (filter.target, filter.prefix) = (Some(target), prefix);
            }
            "since" => filter.since = Some(instant("since", &v)?),
            "until" => filter.until = Some(instant("until", &v)?),
            _ => {}
        }
    }
    Ok(filter)
}

/// The audit log: every write through the API (agents' protocol aside) made with a valid token —
/// who (`token_id`, `token_name`, `role`), what (`action`: method and route), on what (`target`:
/// the path; `location`: what it created), how it ended (`status`, `result`), the `request_id`
/// and when (`at`) — newest first, a page at a time. Filters: `token_id`, `result`, `target`
/// (exact; with a trailing `*`, paths beginning with the rest, e.g. `/v1/machines/{id}*`),
/// `since` and `until` (RFC 3339). Entries are kept for `HOTPATCH_AUDIT_RETENTION_DAYS`.
#[utoipa::path(get, path = "/v1/audit", tag = "audit",
    params(("token_id" = Option<Uuid>, Query, description = "Writes made with this token"),
        ("result" = Option<AuditResult>, Query, description = "How they ended"),
        ("target" = Option<String>, Query, description = "Exact path; with a trailing `*`, paths beginning with the rest"),
        ("since" = Option<String>, Query, format = DateTime, description = "At or after this instant"),
        ("until" = Option<String>, Query, format = DateTime, description = "Before this instant"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of audit entries, newest first", body = Page<AuditEntry>),
        (status = 400, description = "Bad filter or paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_audit(
    State(state): State<AppState>,
    _: Admin,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<AuditEntry>>, ApiError> {
    let filter = list_filter(raw.as_deref())?;
    let p = PageParams::from_query(raw.as_deref(), &["token_id", "result", "target", "since", "until"])?;
    let items = audit::list(&state, &filter, p.after, p.limit + 1).await?;
    Ok(Json(page(items, p.limit, |e| e.id, |e| e)))
}
