//! "Assess now" for one machine or a selector, and the operations clients poll
//! (`GET /v1/operations/{id}`, with `?wait=` to long-poll until it changes).
//!
//! Starting requests accept an `Idempotency-Key` header: the same key with the same request
//! returns the operation it made the first time; with another request, 422 `idempotency_key_reused`
//! (the rule is [`hotpatch_app::operations::idempotency`]).

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::operations::{self, assess, Caller};
use hotpatch_domain::operation::{Operation, Selector};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Ci, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{
    idempotency_key, json_body, parse_json, wait_param, ApiPath, EmptyObject, OptionalJson,
};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assess_machine))
        .routes(routes!(assess_selected))
        .routes(routes!(get_operation))
}

/// 202 with the operation, and where to poll it in `Location`.
fn accepted(view: Operation) -> Response {
    let location = format!("/v1/operations/{}", view.id);
    (StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response()
}

/// Assess one machine now: 202 with the operation to poll. No body (an empty JSON object is
/// accepted too). Joins an assessment already queued for the machine.
#[utoipa::path(post, path = "/v1/machines/{id}/assess", tag = "operations",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = Operation),
        (status = 404, description = "No such machine", body = Problem),
        (status = 422, description = "`idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn assess_machine(
    State(state): State<AppState>,
    Ci(principal): Ci,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    OptionalJson(EmptyObject {}): OptionalJson<EmptyObject>,
) -> Result<Response, ApiError> {
    let caller = Caller { token_id: principal.token_id, idempotency_key: idempotency_key(&headers)? };
    Ok(accepted(assess::machine(&state, &caller, id).await?))
}

/// Assess every machine a selector names (`{machine_ids?, labels?, regions?}`; every given part
/// must match, `{}` is the whole fleet): 202 with the operation to poll.
#[utoipa::path(post, path = "/v1/assessments", tag = "operations", request_body = Selector,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = Operation),
        (status = 422, description = "Unknown machine ids, a selector that names no machine, or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn assess_selected(
    State(state): State<AppState>,
    Ci(principal): Ci,
    request: Request,
) -> Result<Response, ApiError> {
    // The key first: a bad key is refused before the body is read.
    let key = idempotency_key(request.headers())?;
    let bytes = json_body(request, &state).await?;
    let selector: Selector = parse_json(&bytes)?;
    let caller = Caller { token_id: principal.token_id, idempotency_key: key };
    Ok(accepted(assess::selected(&state, &caller, selector).await?))
}

/// An operation: status (`queued`, `running`, `succeeded`, `failed`, `canceled`), per-machine
/// counts and results. `?wait=N` (≤ 30 s) answers when the operation changes or ends, or after N
/// seconds with its state then.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id"),
        ("wait" = Option<u64>, Query, minimum = 0, maximum = 30, description = "Seconds to wait for a change, 0–30 (default 0)")),
    responses((status = 200, description = "The operation", body = Operation),
        (status = 400, description = "Bad `wait`", body = Problem),
        (status = 404, description = "No such operation", body = Problem)),
    security(("bearer" = [])))]
async fn get_operation(
    State(state): State<AppState>,
    reader: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Operation>, ApiError> {
    let wait = wait_param(raw.as_deref(), operations::MAX_WAIT_SECS)?;
    // A wait holds a connection open: capped per token and per replica.
    let _held = if wait.is_zero() { None } else { Some(state.limits.polls.hold(reader.0.token_id)?) };
    Ok(Json(operations::get(&state, id, wait).await?))
}
