//! "Assess now" for one machine or a selector, and the operations clients poll
//! (`GET /v1/operations/{id}`, with `?wait=` to long-poll until it changes).
//!
//! Starting requests accept an `Idempotency-Key` header: the same key with the same request
//! returns the operation it made the first time; with another request, 422 `idempotency_key_reused`.

use std::time::Duration;

use axum::extract::{RawQuery, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_domain::operation::{Operation, OperationKind, Selector};
use hotpatch_store::operations::{self, Created, NewOperation};
use hotpatch_store::{jobs, machines};
use sha2::{Digest, Sha256};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Ci, Principal, Reader};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{json_body, parse_json, ApiPath, OptionalJson};
use crate::routes::agent::wait_param;
use crate::AppState;

/// Priority of an assessment someone asked for: ahead of the periodic ones (0).
pub const ASSESS_NOW_PRIORITY: i16 = 10;
/// At most this many machines per bulk request.
pub const MAX_SELECTED: i64 = 100_000;
/// Per-machine results listed in an operation view.
const MAX_RESULTS: i64 = 1_000;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(assess_machine))
        .routes(routes!(assess_selected))
        .routes(routes!(get_operation))
}

/// The `Idempotency-Key` header, if any: 1–255 visible ASCII characters.
pub(crate) fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::bad_param("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))?;
    Ok(Some(key.to_owned()))
}

/// What the key is checked against: the method, the path and the body as parsed (so key order and
/// whitespace do not make two identical requests differ; callers that fill in defaults first make
/// `{}` and the defaults spelled out one request).
pub(crate) fn request_hash(path: &str, body: &serde_json::Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"POST ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    h.finalize().into()
}

/// Creates an assess operation for `machine_ids` (or finds the one its key made) and answers 202.
async fn start_assessment(
    state: &AppState,
    principal: Principal,
    key: Option<String>,
    path: &str,
    request: serde_json::Value,
    machine_ids: impl AsyncFnOnce(&mut sqlx::PgConnection) -> Result<Vec<Uuid>, ApiError>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let hash = request_hash(path, &request);
    let mut tx = state.pool.begin().await?;
    let created = operations::create(
        &mut tx,
        &NewOperation {
            kind: OperationKind::Assess,
            request: &request,
            created_by: Some(principal.token_id),
            idempotency: key.as_deref().map(|k| (k, hash)),
            now,
        },
    )
    .await?;
    let id = match created {
        Created::New(id) => {
            let ids = machine_ids(&mut tx).await?;
            jobs::enqueue_assessments(&mut tx, Some(id), &ids, ASSESS_NOW_PRIORITY, now).await?;
            tracing::info!(operation_id = %id, machines = ids.len(), "assessment requested");
            id
        }
        Created::Replayed(id) => id,
        Created::KeyReused(id) => {
            return Err(ApiError::IdempotencyKeyReused(format!(
                "Idempotency-Key {:?} was used for another request (operation {id}); use a new key",
                key.unwrap_or_default()
            )))
        }
    };
    let view = operations::get(&mut tx, id, MAX_RESULTS).await?;
    tx.commit().await?;
    accepted(view)
}

fn accepted(view: Operation) -> Result<Response, ApiError> {
    let location = HeaderValue::from_str(&format!("/v1/operations/{}", view.id))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::ACCEPTED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// Assess one machine now: 202 with the operation to poll. No body (an empty JSON object is
/// accepted too). Joins an assessment already queued for the machine.
#[utoipa::path(post, path = "/v1/machines/{id}/assess", tag = "operations",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the same operation")),
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
    let key = idempotency_key(&headers)?;
    let path = format!("/v1/machines/{id}/assess");
    start_assessment(&state, principal, key, &path, serde_json::json!({ "machine_ids": [id] }), async |tx| {
        machines::get(&mut *tx, id).await.or_not_found(|| format!("no machine with id {id}"))?;
        Ok(vec![id])
    })
    .await
}

/// `{}`: the only body `POST /v1/machines/{id}/assess` accepts.
#[derive(serde::Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct EmptyObject {}

/// Assess every machine a selector names (`{machine_ids?, labels?, regions?}`; every given part
/// must match, `{}` is the whole fleet): 202 with the operation to poll.
#[utoipa::path(post, path = "/v1/assessments", tag = "operations", request_body = Selector,
    params(("Idempotency-Key" = Option<String>, Header, description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = Operation),
        (status = 422, description = "Unknown machine ids, a selector that names no machine, or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn assess_selected(
    State(state): State<AppState>,
    Ci(principal): Ci,
    request: Request,
) -> Result<Response, ApiError> {
    let key = idempotency_key(request.headers())?;
    let bytes = json_body(request, &state).await?;
    let selector: Selector = parse_json(&bytes)?;
    validate(&selector)?;
    let body = serde_json::to_value(&selector).map_err(|e| ApiError::Internal(e.to_string()))?;
    start_assessment(&state, principal, key, "/v1/assessments", body, async |tx| {
        if let Some(ids) = &selector.machine_ids {
            let unknown = operations::unknown_machines(&mut *tx, ids).await?;
            if !unknown.is_empty() {
                let list: Vec<String> = unknown.iter().take(20).map(Uuid::to_string).collect();
                return Err(ApiError::field(
                    "machine_ids",
                    format!("{} unknown machine id(s): {}", unknown.len(), list.join(", ")),
                ));
            }
        }
        let ids = operations::select_machines(&mut *tx, &selector, MAX_SELECTED + 1).await?;
        if ids.is_empty() {
            return Err(ApiError::field("selector", "names no machine"));
        }
        if ids.len() as i64 > MAX_SELECTED {
            return Err(ApiError::field(
                "selector",
                format!("names more than {MAX_SELECTED} machines; narrow it"),
            ));
        }
        Ok(ids)
    })
    .await
}

fn validate(s: &Selector) -> Result<(), ApiError> {
    if s.machine_ids.as_ref().is_some_and(|ids| ids.len() as i64 > MAX_SELECTED) {
        return Err(ApiError::field("machine_ids", format!("at most {MAX_SELECTED} ids")));
    }
    if s.labels.as_ref().is_some_and(|l| l.len() > 50) {
        return Err(ApiError::field("labels", "at most 50 labels"));
    }
    if s.regions.as_ref().is_some_and(|r| r.len() > 500) {
        return Err(ApiError::field("regions", "at most 500 regions"));
    }
    Ok(())
}

/// An operation: status (`queued`, `running`, `succeeded`, `failed`, `canceled`), per-machine
/// counts and results. `?wait=N` (≤ 30 s) answers when the operation changes or ends, or after N
/// seconds with its state then.
#[utoipa::path(get, path = "/v1/operations/{id}", tag = "operations",
    params(("id" = Uuid, Path, description = "Operation id"),
        ("wait" = Option<u64>, Query, description = "Seconds to wait for a change, 0–30 (default 0)")),
    responses((status = 200, description = "The operation", body = Operation),
        (status = 400, description = "Bad `wait`", body = Problem),
        (status = 404, description = "No such operation", body = Problem)),
    security(("bearer" = [])))]
async fn get_operation(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Operation>, ApiError> {
    let wait = wait_param(raw.as_deref(), 30)?;
    if !wait.is_zero() {
        wait_for_change(&state, id, wait).await?;
    }
    let mut conn = state.pool.acquire().await?;
    let view =
        operations::get(&mut conn, id, MAX_RESULTS).await.or_not_found(|| format!("no operation {id}"))?;
    Ok(Json(view))
}

/// How often a waiting `GET /v1/operations/{id}?wait=` re-reads the operation's progress. Polling,
/// not NOTIFY: a notification per job state change would serialize the queue's commits.
const OPERATION_POLL: Duration = Duration::from_millis(250);

/// Returns when the operation's jobs change state, it is over, or `wait` passed.
async fn wait_for_change(state: &AppState, id: Uuid, wait: Duration) -> Result<(), ApiError> {
    let deadline = tokio::time::Instant::now() + wait;
    let first = operations::progress(&state.pool, id)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no operation {id}")))?;
    // Nothing pending: it is over, answer now.
    if first.0 + first.1 == 0 {
        return Ok(());
    }
    loop {
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(());
        }
        tokio::time::sleep((deadline - now).min(OPERATION_POLL)).await;
        if operations::progress(&state.pool, id).await? != Some(first) {
            return Ok(());
        }
    }
}
