//! `GET /v1/fleet/summary`: the fleet counted by hotpatch status, compliance, reboot pending and
//! overdue installs, as a whole and by region, OS or the value of a label. Every count is the
//! tally of what `GET /v1/machines/{id}/patch-status` says of each machine at the same instant
//! (the use case is `hotpatch_app::fleet::summary`).

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_app::fleet::summary::{self, FleetSummary, GroupBy};
use hotpatch_domain::validation::is_label_key;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(fleet_summary))
}

/// Reads `?group_by=` and `?at=`; any other parameter is refused.
fn query(raw: Option<&str>) -> Result<(GroupBy, Option<DateTime<Utc>>), ApiError> {
    let (mut group, mut at) = (GroupBy::Nothing, None);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "group_by" => {
                group = match v.as_ref() {
                    "region" => GroupBy::Region,
                    "os" => GroupBy::Os,
                    other => match other.strip_prefix("label:") {
                        Some(key) if is_label_key(key) => GroupBy::Label(key.to_owned()),
                        _ => {
                            return Err(ApiError::bad_param(
                                "group_by",
                                format!("'{}' is not one of region, os, label:<key>", other.escape_debug()),
                            ))
                        }
                    },
                }
            }
            "at" => at = Some(crate::etag::parse_at(&v)?),
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: group_by, at)",
                ))
            }
        }
    }
    Ok((group, at))
}

/// Counts of the fleet by hotpatch status, compliance, reboot pending and overdue (the release a
/// machine needs came out more than 30 days ago), as `GET /v1/machines/{id}/patch-status` judges
/// each machine; `group_by=region|os|label:<key>` also counts each group. `?at=` (RFC 3339,
/// default now) counts at another instant. One scan of the fleet.
#[utoipa::path(get, path = "/v1/fleet/summary", tag = "machines",
    params(("group_by" = Option<String>, Query, pattern = "^(region|os|label:[A-Za-z0-9._/-]{1,63})$", description = "`region`, `os` or `label:<key>`"),
        ("at" = Option<DateTime<Utc>>, Query, description = "Instant to evaluate at (default now)")),
    responses((status = 200, description = "The counts", body = FleetSummary),
        (status = 400, description = "Bad parameter", body = Problem)),
    security(("bearer" = [])))]
async fn fleet_summary(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<FleetSummary>, ApiError> {
    let (group_by, at) = query(raw.as_deref())?;
    Ok(Json(summary::summary(&state, group_by, at).await?))
}
