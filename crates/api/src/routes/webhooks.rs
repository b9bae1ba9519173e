//! `/v1/webhooks` (operator): subscribe a URL to change-feed event types, list, read, change,
//! delete, enable again after it was disabled for failing, send a test event, each webhook's
//! delivery log and a delivery sent again ([`hotpatch_app::webhooks::subscriptions`]). Deliveries are signed
//! and retried (see [`hotpatch_app::webhooks::delivery`]).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::webhooks::changes::{self, TestDelivery, WebhookPatch};
use hotpatch_app::webhooks::subscriptions::{
    self, DeliveryLog, DeliveryView, WebhookList, WebhookRequest, WebhookView,
};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Operator;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_webhook, list_webhooks))
        .routes(routes!(get_webhook, delete_webhook, update_webhook))
        .routes(routes!(test_webhook))
        .routes(routes!(redeliver))
        .routes(routes!(webhook_deliveries))
        .routes(routes!(enable_webhook))
}

/// Subscribes a URL to event types: 201 with the webhook and its signing `secret` (shown once;
/// also in `Location`). Deliveries start with the next events.
#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks", request_body = WebhookRequest,
    responses((status = 201, description = "Created", body = WebhookView),
        (status = 422, description = "Invalid URL (or an internal address not allowed) or event types",
            body = Problem)),
    security(("bearer" = [])))]
async fn create_webhook(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiJson(req): ApiJson<WebhookRequest>,
) -> Result<Response, ApiError> {
    let view = subscriptions::create(&state, principal.token_id, req).await?;
    let location = format!("/v1/webhooks/{}", view.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// Every webhook (without secrets).
#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "The webhooks", body = WebhookList)),
    security(("bearer" = [])))]
async fn list_webhooks(State(state): State<AppState>, _: Operator) -> Result<Json<WebhookList>, ApiError> {
    Ok(Json(subscriptions::list(&state).await?))
}

/// One webhook (without its secret).
#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook", body = WebhookView),
        (status = 404, description = "No such webhook", body = Problem)),
    security(("bearer" = [])))]
async fn get_webhook(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(subscriptions::get(&state, id).await?))
}

/// Deletes a webhook with its delivery log; deliveries not yet sent are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 204, description = "Deleted"),
        (status = 404, description = "No such webhook", body = Problem)),
    security(("bearer" = [])))]
async fn delete_webhook(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    subscriptions::delete(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The webhook's deliveries, newest first: state, attempts, the receiver's last status and error,
/// when the next attempt comes.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The delivery log", body = DeliveryLog),
        (status = 404, description = "No such webhook", body = Problem)),
    security(("bearer" = [])))]
async fn webhook_deliveries(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<DeliveryLog>, ApiError> {
    Ok(Json(subscriptions::deliveries(&state, id).await?))
}

/// Enables a webhook disabled for failing (`disabled_at` set), with a clean record: deliveries
/// resume with the queued ones and the next events. On an enabled webhook it only clears the
/// run of failures.
#[utoipa::path(post, path = "/v1/webhooks/{id}/enable", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook, enabled", body = WebhookView),
        (status = 404, description = "No such webhook", body = Problem)),
    security(("bearer" = [])))]
async fn enable_webhook(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(subscriptions::enable(&state, id).await?))
}

/// Changes a webhook: `url`, `event_types` (replacing the old ones) and `description` (`null`
/// clears it), each only when given and checked as at creation. The secret stays.
#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks", request_body = WebhookPatch,
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "The webhook, changed", body = WebhookView),
        (status = 404, description = "No such webhook", body = Problem),
        (status = 422, description = "Invalid URL (or an internal address not allowed) or event types",
            body = Problem)),
    security(("bearer" = [])))]
async fn update_webhook(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<WebhookPatch>,
) -> Result<Json<WebhookView>, ApiError> {
    Ok(Json(changes::update(&state, id, patch).await?))
}

/// Sends a `webhook.test` event to the webhook now, signed as deliveries are (internal addresses
/// refused as for them), and says what the receiver answered. Not written to the delivery log.
#[utoipa::path(post, path = "/v1/webhooks/{id}/test", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id")),
    responses((status = 200, description = "What the receiver answered", body = TestDelivery),
        (status = 404, description = "No such webhook", body = Problem)),
    security(("bearer" = [])))]
async fn test_webhook(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TestDelivery>, ApiError> {
    Ok(Json(changes::test(&state, id).await?))
}

/// Queues a finished delivery (succeeded or failed) again with a fresh set of attempts, due at
/// once.
#[utoipa::path(post, path = "/v1/webhooks/{id}/deliveries/{delivery_id}/redeliver", tag = "webhooks",
    params(("id" = Uuid, Path, description = "Webhook id"),
        ("delivery_id" = Uuid, Path, description = "Delivery id")),
    responses((status = 200, description = "The delivery, queued again", body = DeliveryView),
        (status = 404, description = "No such webhook or delivery", body = Problem),
        (status = 409, description = "Still queued or being delivered (`conflict`)", body = Problem)),
    security(("bearer" = [])))]
async fn redeliver(
    State(state): State<AppState>,
    _: Operator,
    ApiPath((id, delivery)): ApiPath<(Uuid, Uuid)>,
) -> Result<Json<DeliveryView>, ApiError> {
    Ok(Json(changes::redeliver(&state, id, delivery).await?))
}
