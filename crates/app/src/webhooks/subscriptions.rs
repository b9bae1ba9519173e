//! Webhook subscriptions: a URL subscribed to change-feed event types, with the secret its
//! deliveries are signed with (shown once, at creation), and each webhook's delivery log.

use chrono::{DateTime, Utc};
use hotpatch_domain::validation::has_control;
use hotpatch_domain::webhook_target::{self, redact, AllowList, Url};
use hotpatch_domain::FieldError;
use hotpatch_store::events::TYPES;
use hotpatch_store::webhooks::{self, Delivery, NewWebhook, Webhook};
use rand::RngCore as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, OrNotFound};
use crate::App;

/// Deliveries a log answer lists at most.
pub const LOG_LIMIT: i64 = 1_000;

/// A webhook to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// Where to POST deliveries (`http://` or `https://`). Internal addresses (loopback, private,
    /// link-local, …) are refused unless the operator allows them (`--webhook-allow`).
    #[schema(example = "https://ops.example.com/hotpatch")]
    pub url: String,
    /// The event types to send (those of `GET /v1/events`).
    #[schema(example = json!(["operation.finished", "rollout.halted"]))]
    pub event_types: Vec<String>,
    /// What it is for.
    #[serde(default)]
    pub description: Option<String>,
}

/// A webhook.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookView {
    /// Identifier.
    pub id: Uuid,
    /// Target URL.
    pub url: String,
    /// Event types sent.
    pub event_types: Vec<String>,
    /// What it is for.
    pub description: Option<String>,
    /// The token that created it.
    pub created_by: Option<Uuid>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// When it was disabled for failing (no deliveries until enabled: `POST …/enable`).
    pub disabled_at: Option<DateTime<Utc>>,
    /// Why it was disabled.
    pub disabled_reason: Option<String>,
    /// The HMAC-SHA256 key of the `Hotpatch-Signature` header: only in the answer to its creation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<Webhook> for WebhookView {
    fn from(w: Webhook) -> Self {
        WebhookView {
            id: w.id,
            url: w.url,
            event_types: w.event_types,
            description: w.description,
            created_by: w.created_by,
            created_at: w.created_at,
            disabled_at: w.disabled_at,
            disabled_reason: w.disabled_reason,
            secret: None,
        }
    }
}

/// Webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookList {
    /// Every webhook, oldest first.
    pub items: Vec<WebhookView>,
}

/// One delivery and its last attempt.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryView {
    /// Identifier (the `Hotpatch-Delivery` header).
    pub id: Uuid,
    /// The change-feed event delivered.
    pub event_id: i64,
    /// Its type.
    pub event_type: String,
    /// `queued`, `delivering`, `succeeded` or `failed` (out of attempts).
    pub state: String,
    /// Attempts made.
    pub attempt: i32,
    /// Attempts it gets.
    pub max_attempts: i32,
    /// When it is tried next (queued ones).
    pub next_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's HTTP status at the last attempt (`null`: no answer).
    pub last_status: Option<i32>,
    /// What went wrong at the last attempt.
    pub last_error: Option<String>,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Delivered or given up.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryView {
    fn from(d: Delivery) -> Self {
        DeliveryView {
            id: d.id,
            event_id: d.event_id,
            event_type: d.event_type,
            next_attempt_at: (d.state == "queued").then_some(d.run_after),
            state: d.state,
            attempt: d.attempt,
            max_attempts: d.max_attempts,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            updated_at: d.updated_at,
            finished_at: d.finished_at,
        }
    }
}

/// A webhook's delivery log.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryLog {
    /// Its latest deliveries, newest first (at most 1,000).
    pub items: Vec<DeliveryView>,
}

/// Every field error of a webhook to create; its URL, parsed and normalised.
pub(crate) fn check(req: &WebhookRequest, allow: &AllowList) -> Result<Url, AppError> {
    let mut errors = Vec::new();
    let url = webhook_target::parse(&req.url, allow)
        .map_err(|e| errors.push(FieldError::new("url", e.to_string())))
        .ok();
    if req.event_types.is_empty() {
        errors.push(FieldError::new("event_types", format!("name at least one of {}", TYPES.join(", "))));
    }
    for (i, t) in req.event_types.iter().enumerate() {
        if !TYPES.contains(&t.as_str()) {
            errors.push(FieldError::new(
                format!("event_types[{i}]"),
                format!("'{}' is not one of {}", t.escape_debug(), TYPES.join(", ")),
            ));
        }
    }
    if req.description.as_deref().is_some_and(|d| d.chars().count() > 500 || has_control(d)) {
        errors.push(FieldError::new("description", "at most 500 characters, without control characters"));
    }
    match url {
        Some(url) if errors.is_empty() => Ok(url),
        _ => Err(AppError::Unprocessable { detail: "the webhook is invalid".to_owned(), errors }),
    }
}

pub(crate) fn not_found(id: Uuid) -> String {
    format!("no webhook {id}")
}

/// Subscribes a URL to event types: the webhook, with its signing `secret` (shown this once).
/// Deliveries start with the next events.
pub async fn create(app: &App, created_by: Uuid, mut req: WebhookRequest) -> Result<WebhookView, AppError> {
    let url = check(&req, &app.settings.webhook_allow)?;
    req.event_types.sort();
    req.event_types.dedup();
    let mut key = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut key);
    let secret: String = key.iter().map(|b| format!("{b:02x}")).collect();
    let id = Uuid::now_v7();
    let new = NewWebhook {
        id,
        url: url.as_str(),
        event_types: &req.event_types,
        secret: &secret,
        description: req.description.as_deref(),
        created_by: Some(created_by),
    };
    let created = webhooks::create(&app.pool, &new, app.clock.now()).await?;
    tracing::info!(webhook_id = %id, url = %redact(&created.url), "webhook created");
    Ok(WebhookView { secret: Some(secret), ..WebhookView::from(created) })
}

/// Every webhook, oldest first (without secrets).
pub async fn list(app: &App) -> Result<WebhookList, AppError> {
    let items = webhooks::list(&app.pool).await?.into_iter().map(WebhookView::from).collect();
    Ok(WebhookList { items })
}

/// One webhook (without its secret).
pub async fn get(app: &App, id: Uuid) -> Result<WebhookView, AppError> {
    Ok(webhooks::get(&app.pool, id).await.or_not_found(|| not_found(id))?.into())
}

/// Deletes a webhook with its delivery log; deliveries not yet sent are dropped.
pub async fn delete(app: &App, id: Uuid) -> Result<(), AppError> {
    webhooks::delete(&app.pool, id).await.or_not_found(|| not_found(id))?;
    tracing::info!(webhook_id = %id, "webhook deleted");
    Ok(())
}

/// Enables a webhook again (after it was disabled for failing) with a clean record: deliveries
/// resume with the queued ones and the next events.
pub async fn enable(app: &App, id: Uuid) -> Result<WebhookView, AppError> {
    let webhook = webhooks::enable(&app.pool, id, app.clock.now()).await.or_not_found(|| not_found(id))?;
    tracing::info!(webhook_id = %id, url = %redact(&webhook.url), "webhook enabled");
    Ok(webhook.into())
}

/// The webhook's latest deliveries, newest first (at most [`LOG_LIMIT`]).
pub async fn deliveries(app: &App, id: Uuid) -> Result<DeliveryLog, AppError> {
    webhooks::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    let items = webhooks::deliveries(&app.pool, id, LOG_LIMIT).await?.into_iter().map(Into::into).collect();
    Ok(DeliveryLog { items })
}
