//! Changing a webhook after its creation: its URL, event types or description (`PATCH`), a test
//! event sent at once, and a finished delivery queued again.

use chrono::Utc;
use hotpatch_domain::webhook_target::redact;
use hotpatch_store::webhooks::{self, Claimed, Redelivery};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use uuid::Uuid;

use super::client::WebhookClient;
use super::subscriptions::{check, not_found, DeliveryView, WebhookRequest, WebhookView};
use crate::error::{AppError, OrNotFound};
use crate::App;

/// What to change of a webhook; the fields left out stay as they are.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    /// A new target URL (checked as at creation).
    pub url: Option<String>,
    /// New event types (replacing the old ones).
    pub event_types: Option<Vec<String>>,
    /// A new description; `null` clears it.
    #[serde(default, deserialize_with = "hotpatch_domain::object_only::double_option")]
    #[schema(value_type = Option<String>)]
    pub description: Option<Option<String>>,
}

/// The outcome of a test event.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestDelivery {
    /// The receiver answered 2xx.
    pub delivered: bool,
    /// Its HTTP status (`null`: no answer).
    pub status: Option<i32>,
    /// What went wrong.
    pub error: Option<String>,
}

/// Changes a webhook: each field given is checked as at creation and replaces the old one.
pub async fn update(app: &App, id: Uuid, patch: WebhookPatch) -> Result<WebhookView, AppError> {
    let old = webhooks::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    let mut whole = WebhookRequest {
        url: patch.url.unwrap_or(old.url),
        event_types: patch.event_types.unwrap_or(old.event_types),
        description: patch.description.clone().unwrap_or(old.description),
    };
    let url = check(&whole, &app.settings.webhook_allow)?;
    whole.event_types.sort();
    whole.event_types.dedup();
    let description = patch.description.as_ref().map(|d| d.as_deref());
    let updated = webhooks::update(
        &app.pool,
        id,
        Some(url.as_str()),
        Some(&whole.event_types),
        description,
        app.clock.now(),
    )
    .await
    .or_not_found(|| not_found(id))?;
    tracing::info!(webhook_id = %id, url = %redact(&updated.url), "webhook changed");
    Ok(updated.into())
}

/// Sends a `webhook.test` event to the webhook now, signed as deliveries are, through the same
/// guarded client; the receiver's answer. It is not written to the delivery log.
pub async fn test(app: &App, id: Uuid) -> Result<TestDelivery, AppError> {
    let hook = webhooks::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    let now = app.clock.now();
    let claimed = Claimed {
        id: Uuid::now_v7(),
        webhook_id: id,
        event_id: 0,
        attempt: 1,
        max_attempts: 1,
        event_type: "webhook.test".to_owned(),
        body: json!({"id": 0, "type": "webhook.test",
                     "data": {"webhook_id": id, "at": now, "sent_at": Utc::now()}}),
        url: hook.url,
        secret: hook.secret,
    };
    let client = WebhookClient::new(app.settings.webhook_allow.clone())?;
    Ok(match client.send(&claimed, now).await {
        Ok(status) => TestDelivery { delivered: true, status: Some(status), error: None },
        Err(f) => TestDelivery { delivered: false, status: f.status, error: Some(f.error) },
    })
}

/// Queues a finished delivery of the webhook again, with a fresh set of attempts: 409 while it
/// is still queued or being delivered.
pub async fn redeliver(app: &App, id: Uuid, delivery: Uuid) -> Result<DeliveryView, AppError> {
    webhooks::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    let mut conn = app.pool.acquire().await?;
    match webhooks::redeliver(&mut conn, id, delivery, app.clock.now()).await? {
        Redelivery::Queued(d) => {
            tracing::info!(webhook_id = %id, delivery_id = %delivery, "delivery queued again");
            Ok((*d).into())
        }
        Redelivery::InFlight => Err(AppError::Conflict(format!(
            "delivery {delivery} is still queued or being delivered: it goes out by itself"
        ))),
        Redelivery::Unknown => Err(AppError::NotFound(format!("webhook {id} has no delivery {delivery}"))),
    }
}
