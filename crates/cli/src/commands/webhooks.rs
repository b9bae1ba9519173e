//! `hotpatchctl webhooks …` (operator): subscriptions of a URL to change-feed events, their
//! delivery log, a test event, a delivery sent again. A webhook's signing secret is printed
//! once, when it is created.

use clap::Subcommand;
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::client::{Client, Query};
use crate::error::CliError;
use crate::output::{items, text, Out};

/// `webhooks` subcommands.
#[derive(Debug, Subcommand)]
pub enum WebhooksCommand {
    /// List webhooks (never their secrets).
    List,
    /// Show one webhook.
    Get {
        /// Webhook id.
        id: Uuid,
    },
    /// Subscribe a URL to event types; the signing secret is shown once.
    Create {
        /// Where deliveries are POSTed (https in production). Not `--url`: that is the API's.
        #[arg(long, value_name = "URL")]
        endpoint: String,
        /// An event type (repeatable), e.g. `operation.finished`, `rollout.halted`.
        #[arg(long = "event", required = true)]
        events: Vec<String>,
        /// What it is for.
        #[arg(long)]
        description: Option<String>,
    },
    /// Change a webhook: only what is given changes (`--event` replaces every event type).
    Update {
        /// Webhook id.
        id: Uuid,
        /// New URL deliveries are POSTed to.
        #[arg(long, value_name = "URL")]
        endpoint: Option<String>,
        /// Event type (repeatable): the new list.
        #[arg(long = "event")]
        events: Vec<String>,
        /// New description.
        #[arg(long, conflicts_with = "clear_description")]
        description: Option<String>,
        /// Remove the description.
        #[arg(long)]
        clear_description: bool,
    },
    /// Delete a webhook with its delivery log.
    Delete {
        /// Webhook id.
        id: Uuid,
    },
    /// Enable a webhook disabled for failing (and clear its run of failures).
    Enable {
        /// Webhook id.
        id: Uuid,
    },
    /// The webhook's deliveries, newest first.
    Deliveries {
        /// Webhook id.
        id: Uuid,
    },
    /// Send a `webhook.test` event now and say what the receiver answered; exits 1 when it was
    /// not delivered.
    Test {
        /// Webhook id.
        id: Uuid,
    },
    /// Queue a finished delivery again, due at once.
    Redeliver {
        /// Webhook id.
        id: Uuid,
        /// Delivery id (from `webhooks deliveries`).
        delivery: Uuid,
    },
}

/// Runs a `webhooks` subcommand.
pub async fn run(command: WebhooksCommand, client: &Client, out: &mut Out) -> Result<(), CliError> {
    match command {
        WebhooksCommand::List => {
            let answer = client.get("/v1/webhooks", &Query::new()).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            let rows: Vec<Vec<String>> = items(&answer)
                .iter()
                .map(|w| {
                    vec![
                        text(w, "/id"),
                        text(w, "/url"),
                        text(w, "/event_types"),
                        state(w),
                        text(w, "/description"),
                    ]
                })
                .collect();
            out.table(&["id", "url", "events", "state", "description"], &rows)
        }
        WebhooksCommand::Get { id } => {
            let w = client.get(&format!("/v1/webhooks/{id}"), &Query::new()).await?;
            show(out, &w)
        }
        WebhooksCommand::Create { endpoint, events, description } => {
            let mut body = Map::new();
            body.insert("url".into(), Value::from(endpoint));
            body.insert("event_types".into(), Value::from(events));
            body.extend(description.map(|d| ("description".to_owned(), Value::from(d))));
            let w = client.post("/v1/webhooks", &Query::new(), Some(&Value::Object(body))).await?;
            show(out, &w)?;
            if !out.is_json() {
                out.note("the secret is shown once: store it now (deliveries are signed with it)");
            }
            Ok(())
        }
        WebhooksCommand::Update { id, endpoint, events, description, clear_description } => {
            let mut body = Map::new();
            body.extend(endpoint.map(|u| ("url".to_owned(), Value::from(u))));
            if !events.is_empty() {
                body.insert("event_types".into(), Value::from(events));
            }
            if clear_description {
                body.insert("description".into(), Value::Null);
            }
            body.extend(description.map(|d| ("description".to_owned(), Value::from(d))));
            if body.is_empty() {
                return Err(CliError::Input(
                    "nothing to change: give --endpoint, --event, --description or --clear-description"
                        .to_owned(),
                ));
            }
            let w = client.patch(&format!("/v1/webhooks/{id}"), &Value::Object(body)).await?;
            show(out, &w)
        }
        WebhooksCommand::Delete { id } => {
            let answer = client.delete(&format!("/v1/webhooks/{id}")).await?;
            if out.is_json() {
                return out.json(&answer);
            }
            out.line(&format!("deleted webhook {id}"))
        }
        WebhooksCommand::Enable { id } => {
            let w = client.post(&format!("/v1/webhooks/{id}/enable"), &Query::new(), None).await?;
            show(out, &w)
        }
        WebhooksCommand::Deliveries { id } => {
            let log = client.get(&format!("/v1/webhooks/{id}/deliveries"), &Query::new()).await?;
            if out.is_json() {
                return out.json(&log);
            }
            let rows: Vec<Vec<String>> = items(&log).iter().map(delivery_row).collect();
            out.table(&DELIVERY_HEADERS, &rows)
        }
        WebhooksCommand::Test { id } => {
            let t = client.post(&format!("/v1/webhooks/{id}/test"), &Query::new(), None).await?;
            if out.is_json() {
                out.json(&t)?;
            } else {
                out.fields(&[
                    ("delivered", text(&t, "/delivered")),
                    ("status", text(&t, "/status")),
                    ("error", text(&t, "/error")),
                ])?;
            }
            if t.get("delivered") == Some(&Value::Bool(true)) {
                Ok(())
            } else {
                Err(CliError::Unsuccessful(format!(
                    "the test event was not delivered: {}",
                    text(&t, "/error")
                )))
            }
        }
        WebhooksCommand::Redeliver { id, delivery } => {
            let path = format!("/v1/webhooks/{id}/deliveries/{delivery}/redeliver");
            let d = client.post(&path, &Query::new(), None).await?;
            if out.is_json() {
                return out.json(&d);
            }
            out.table(&DELIVERY_HEADERS, &[delivery_row(&d)])
        }
    }
}

const DELIVERY_HEADERS: [&str; 8] =
    ["id", "event", "type", "state", "attempt", "last status", "next attempt", "last error"];

fn delivery_row(d: &Value) -> Vec<String> {
    vec![
        text(d, "/id"),
        text(d, "/event_id"),
        text(d, "/event_type"),
        text(d, "/state"),
        format!("{}/{}", text(d, "/attempt"), text(d, "/max_attempts")),
        text(d, "/last_status"),
        text(d, "/next_attempt_at"),
        crate::error::one_line(&text(d, "/last_error")),
    ]
}

/// `enabled`, or `disabled (reason)`.
fn state(w: &Value) -> String {
    match w.get("disabled_at").and_then(Value::as_str) {
        None => "enabled".to_owned(),
        Some(_) => format!("disabled ({})", text(w, "/disabled_reason")),
    }
}

/// One webhook (with its secret when the answer has one: at creation).
fn show(out: &mut Out, w: &Value) -> Result<(), CliError> {
    if out.is_json() {
        return out.json(w);
    }
    let mut fields = vec![
        ("id", text(w, "/id")),
        ("url", text(w, "/url")),
        ("events", text(w, "/event_types")),
        ("description", text(w, "/description")),
        ("state", state(w)),
        ("created", text(w, "/created_at")),
    ];
    if w.get("secret").and_then(Value::as_str).is_some() {
        fields.push(("secret", text(w, "/secret")));
    }
    out.fields(&fields)
}
