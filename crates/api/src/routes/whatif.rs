//! `POST /v1/what-if`: what an unplanned baseline or a withdrawn hotpatch would do to the fleet,
//! nothing written; the HTTP side of [`hotpatch_app::whatif`].

use axum::extract::{RawQuery, State};
use axum::Json;
use hotpatch_app::whatif::{self, WhatIfRequest, WhatIfView, DEFAULT_LIMIT, MAX_LIMIT};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::auth::Reader;
use crate::error::{ApiError, Problem};
use crate::extract::ApiJson;
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(what_if))
}

/// `?limit=`: how many changed machines to list.
fn limit(raw: Option<&str>) -> Result<usize, ApiError> {
    let mut limit = DEFAULT_LIMIT;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "limit" => {
                limit = v.parse::<usize>().ok().filter(|n| (1..=MAX_LIMIT).contains(n)).ok_or_else(|| {
                    ApiError::bad_param("limit", format!("must be a number from 1 to {MAX_LIMIT}"))
                })?
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: limit)",
                ))
            }
        }
    }
    Ok(limit)
}

/// What-if: `{"scenario": "unplanned_baseline", "os": …, "month": "YYYY-MM", "released_at"?: …}`
/// or `{"scenario": "hotpatch_withdrawn", "release_id": …}`. Answers which machines change what
/// they install next and which of them would now reboot (the first `limit`, with their next
/// window), the fleet's reboots this year before and after, and the unfinished rollouts it
/// touches. Nothing is written. A baseline where the publishing rules forbid one is refused as
/// publishing it would be.
#[utoipa::path(post, path = "/v1/what-if", tag = "releases", request_body = WhatIfRequest,
    params(("limit" = Option<usize>, Query, minimum = 1, maximum = 1000,
        description = "Changed machines to list (1–1000, default 100)")),
    responses(
        (status = 200, description = "The scenario's effects", body = WhatIfView),
        (status = 404, description = "No such release (`not_found`)", body = Problem),
        (status = 409, description = "The month already has an unplanned baseline (`conflict`)", body = Problem),
        (status = 422, description = "Invalid fields, or a rule forbids the baseline (`validation_failed`)", body = Problem)),
    security(("bearer" = [])))]
async fn what_if(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
    ApiJson(request): ApiJson<WhatIfRequest>,
) -> Result<Json<WhatIfView>, ApiError> {
    let limit = limit(raw.as_deref())?;
    Ok(Json(whatif::what_if(&state, &request, limit).await?))
}
