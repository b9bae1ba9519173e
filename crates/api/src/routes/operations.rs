//! "Assess now" for one machine or a selector, and the operations clients poll
//! (`GET /v1/operations/{id}`, with `?wait=` to long-poll until it changes).
//!
//! Operations are listed newest first (`GET /v1/operations`, filtered by `kind`, `status` and
//! `created_by`) and canceled with `POST /v1/operations/{id}/cancel` (queued jobs only; running
//! ones finish, and the answer's `warnings` say so).
//!
//! Starting requests accept an `Idempotency-Key` header: the same key with the same request
//! returns the operation it made the first time; with another request, 422 `idempotency_key_reused`
//! (the rule is [`hotpatch_app::operations::idempotency`]).

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::operations::{self, assess, control, Caller};
use hotpatch_domain::operation::{
    Operation, OperationFilter, OperationKind, OperationStatus, OperationSummary, Selector,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Ci, Operator, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{
    idempotency_key, json_body, parse_json, wait_param, ApiPath, EmptyObject, OptionalJson,
};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assess_machine))
        .routes(routes!(assess_selected))
        .routes(routes!(get_operation))
        .routes(routes!(list_operations))
        .routes(routes!(cancel_operation))
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
/// must match, `{}` is the whole fleet): 202 with the operation to poll. `warnings` names the
/// machines without a connected agent (their assessments end `expired` unless it claims them
/// within the job time-to-live); `?skip_disconnected=true` leaves them out instead.
#[utoipa::path(post, path = "/v1/assessments", tag = "operations", request_body = Selector,
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes retries return the same operation"),
        ("skip_disconnected" = Option<bool>, Query, description = "Leave out machines without a connected agent (default false)")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = Operation),
        (status = 422, description = "Unknown machine ids, a selector that names no machine, or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn assess_selected(
    State(state): State<AppState>,
    Ci(principal): Ci,
    RawQuery(raw): RawQuery,
    request: Request,
) -> Result<Response, ApiError> {
    let skip = skip_disconnected(raw.as_deref())?;
    // The key first: a bad key is refused before the body is read.
    let key = idempotency_key(request.headers())?;
    let bytes = json_body(request, &state).await?;
    let selector: Selector = parse_json(&bytes)?;
    let caller = Caller { token_id: principal.token_id, idempotency_key: key };
    Ok(accepted(assess::selected(&state, &caller, selector, skip).await?))
}

/// `?skip_disconnected=` of a bulk assessment: `true` or `false` (`1`, `0` accepted).
fn skip_disconnected(raw: Option<&str>) -> Result<bool, ApiError> {
    let mut skip = false;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("skip_disconnected", "true" | "1") => skip = true,
            ("skip_disconnected", "false" | "0") => skip = false,
            ("skip_disconnected", other) => {
                return Err(ApiError::bad_param(
                    "skip_disconnected",
                    format!("must be true or false, got '{}'", other.escape_debug()),
                ))
            }
            (other, _) => {
                return Err(ApiError::bad_param(
                    &other.escape_debug().to_string(),
                    "unknown query parameter (known: skip_disconnected)",
                ))
            }
        }
    }
    Ok(skip)
}

/// An operation: status (`queued`, `running`, `succeeded`, `failed`, `canceled`), per-machine
/// counts and results (a job no agent claimed within the job time-to-live is `expired`, with the
/// reason in `error`, and counts as failed). `?wait=N` (≤ 30 s) answers when the operation changes or ends, or after N
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

/// Reads the filters of `GET /v1/operations` (`PageParams` refuses unknown parameters).
/// `creator` is accepted for `created_by`.
fn list_filter(raw: Option<&str>) -> Result<OperationFilter, ApiError> {
    let mut filter = OperationFilter::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "kind" => {
                filter.kind = Some(v.parse::<OperationKind>().map_err(|_| {
                    ApiError::bad_param(
                        "kind",
                        format!("'{}' is not one of assess, install, rollback", v.escape_debug()),
                    )
                })?)
            }
            "status" => {
                filter.status = Some(v.parse::<OperationStatus>().map_err(|_| {
                    ApiError::bad_param(
                        "status",
                        format!(
                            "'{}' is not one of queued, running, succeeded, failed, canceled",
                            v.escape_debug()
                        ),
                    )
                })?)
            }
            "created_by" | "creator" => {
                filter.created_by = Some(v.parse::<Uuid>().map_err(|_| {
                    ApiError::bad_param("created_by", format!("'{}' is not a token id", v.escape_debug()))
                })?)
            }
            _ => {}
        }
    }
    Ok(filter)
}

/// List operations, newest first, filtered by `kind`, `status` and `created_by` (the token that
/// started them; `creator` is accepted too), a page at a time. Each item carries the status and
/// counts of `GET /v1/operations/{id}`, without per-machine results.
#[utoipa::path(get, path = "/v1/operations", tag = "operations",
    params(("kind" = Option<OperationKind>, Query, description = "What the operations do"),
        ("status" = Option<OperationStatus>, Query, description = "Where they are"),
        ("created_by" = Option<Uuid>, Query, description = "Started by this token (alias `creator`)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of operations, newest first", body = Page<OperationSummary>),
        (status = 400, description = "Bad filter or paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_operations(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<OperationSummary>>, ApiError> {
    let filter = list_filter(raw.as_deref())?;
    let p = PageParams::from_query(raw.as_deref(), &["kind", "status", "created_by", "creator"])?;
    let items = control::list(&state, &filter, p.after, p.limit + 1).await?;
    Ok(Json(page(items, p.limit, |o| o.id, |o| o)))
}

/// Cancel an operation: its queued jobs end `canceled` (a machine held by a queued install takes
/// the next one again). Jobs already running are left to finish; `warnings` says how many, and
/// the operation ends when they do. An operation already over is 409 `conflict`.
#[utoipa::path(post, path = "/v1/operations/{id}/cancel", tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id")),
    responses((status = 200, description = "Canceled; the operation as it stands now", body = Operation),
        (status = 404, description = "No such operation", body = Problem),
        (status = 409, description = "The operation is already over (`conflict`)", body = Problem)),
    security(("bearer" = [])))]
async fn cancel_operation(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    OptionalJson(EmptyObject {}): OptionalJson<EmptyObject>,
) -> Result<Json<Operation>, ApiError> {
    Ok(Json(control::cancel(&state, id).await?))
}
