//! "Install updates now" and rollbacks of one machine (DESIGN §1 "Install updates now", "No
//! automatic rollback"): `POST /v1/machines/{id}/install` and `POST /v1/machines/{id}/rollback`.
//!
//! Each answers 202 with an operation of one job (also in `Location`) and with warnings that say
//! what the job will do to the machine; the rules are in [`hotpatch_app::operations::install`]
//! and [`hotpatch_app::operations::rollback`]. Both accept an `Idempotency-Key` the way "assess
//! now" does.

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::operations::install::{self, InstallRequest};
use hotpatch_app::operations::rollback::{self, RollbackOperation};
use hotpatch_app::operations::Caller;
use hotpatch_domain::operation::Operation;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Operator;
use crate::error::{ApiError, Problem};
use crate::extract::{idempotency_key, ApiPath, EmptyObject, OptionalJson};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(install_now)).routes(routes!(rollback))
}

/// 202 with the operation's view, and where to poll it in `Location`.
fn accepted(body: impl serde::Serialize, id: Uuid) -> Response {
    (StatusCode::ACCEPTED, [(header::LOCATION, format!("/v1/operations/{id}"))], Json(body)).into_response()
}

/// Install updates on one machine now: 202 with the operation to poll (also in `Location`)
/// and `warnings`. It runs at once: it does not follow availability-first rollouts, ignores the
/// machine's maintenance window, and may reboot the machine (unless `reboot` is `never`).
/// Which updates: the available ones of `classifications`, plus `kb_include`, minus
/// `kb_exclude`, minus those needing a reboot with `exclude_kbs_requiring_reboot`.
#[utoipa::path(post, path = "/v1/machines/{id}/install", tag = "operations", request_body(content = Option<InstallRequest>, description = "Options; absent or `null`: the defaults"),
    params(("id" = Uuid, Path, description = "Machine id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = Operation),
        (status = 403, description = "Not an operator", body = Problem),
        (status = 404, description = "No such machine", body = Problem),
        (status = 409, description = "`conflict`: the machine already has an install, rollback or reboot queued or running (named in `detail`)", body = Problem),
        (status = 422, description = "`validation_failed` (every bad field in `errors`) or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn install_now(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    OptionalJson(body): OptionalJson<InstallRequest>,
) -> Result<Response, ApiError> {
    let caller = Caller { token_id: principal.token_id, idempotency_key: idempotency_key(&headers)? };
    let operation = install::install_now(&state, &caller, id, body).await?;
    Ok(accepted(&operation, operation.id))
}

/// Roll one machine back (there is no automatic rollback): uninstall its latest update, install
/// the last baseline, reboot. 202 with the operation, its `plan` and `warnings`. Refused with 409
/// `conflict` when the machine's recorded state allows no rollback (nothing installed, the
/// latest release unknown, no earlier baseline) or it already has an install, rollback or
/// reboot queued or running. No body (an empty JSON object is accepted too).
#[utoipa::path(post, path = "/v1/machines/{id}/rollback", tag = "operations",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "Makes retries return the same operation")),
    responses((status = 202, description = "Accepted; poll the operation (also in `Location`)", body = RollbackOperation),
        (status = 403, description = "Not an operator", body = Problem),
        (status = 404, description = "No such machine", body = Problem),
        (status = 409, description = "`conflict`: nothing to roll back (why, in `detail`), or another install, rollback or reboot is queued or running", body = Problem),
        (status = 422, description = "A body other than `{}`, or `idempotency_key_reused`", body = Problem)),
    security(("bearer" = [])))]
async fn rollback(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiPath(id): ApiPath<Uuid>,
    headers: HeaderMap,
    OptionalJson(EmptyObject {}): OptionalJson<EmptyObject>,
) -> Result<Response, ApiError> {
    let caller = Caller { token_id: principal.token_id, idempotency_key: idempotency_key(&headers)? };
    let rolled_back = rollback::rollback(&state, &caller, id).await?;
    let id = rolled_back.operation.id;
    Ok(accepted(&rolled_back, id))
}
