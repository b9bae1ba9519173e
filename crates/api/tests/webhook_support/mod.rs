//! What the webhook tests share: receivers on 127.0.0.1 (answering at once, or when let go), an
//! app on a manual clock with a machine and its agent, and shorthands for subscribing and
//! reading the delivery log.
#![allow(dead_code, clippy::unwrap_used, missing_docs)]

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, TimeZone, Utc};
use hotpatch_api::{AppState, Settings};
use hotpatch_app::clock::Clock;
use hotpatch_app::webhooks::WebhookClient;
use serde_json::{json, Value};
use tokio::sync::Semaphore;

use crate::common::*;

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 3, 9, 0, 0).unwrap()
}

/// What a receiver got: headers and raw body of each request.
pub type Received = Arc<Mutex<Vec<(HeaderMap, Vec<u8>)>>>;

/// A receiver on 127.0.0.1 answering `status` to every POST; its URL and what it got.
pub async fn receiver(status: StatusCode) -> (String, Received) {
    let gate = Arc::new(Semaphore::new(Semaphore::MAX_PERMITS));
    gated_receiver(status, gate).await
}

/// A receiver that answers each POST only when `gate` gives it a permit (a slow receiver).
pub async fn gated_receiver(status: StatusCode, gate: Arc<Semaphore>) -> (String, Received) {
    let got: Received = Arc::default();
    let app = axum::Router::new()
        .route(
            "/hook",
            axum::routing::post(
                |State((got, status, gate)): State<(Received, StatusCode, Arc<Semaphore>)>,
                 headers: HeaderMap,
                 body: axum::body::Bytes| async move {
                    got.lock().unwrap().push((headers, body.to_vec()));
                    gate.acquire().await.unwrap().forget();
                    status
                },
            ),
        )
        .with_state((got.clone(), status, gate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/hook"), got)
}

/// An app on a manual clock with one machine and its agent, whose webhooks may deliver to
/// `allow` (e.g. `127.0.0.0/8` for the receivers here): (app, state, machine, agent token).
pub async fn app_with_agent(allow: &str) -> (TestApp, AppState, String, String) {
    let settings = Settings { webhook_allow: allow.parse().unwrap(), ..Settings::default() };
    let (app, state) = TestApp::with_state(|s| {
        s.clock = Clock::manual(t0());
        s.settings = Arc::new(settings);
    })
    .await;
    let machine = app.machine_id(azure_2022("hooked-1")).await;
    let agent = app.agent_token(&machine).await;
    (app, state, machine, agent)
}

/// Assess now, the agent does it: an `operation.finished` event.
pub async fn finish_an_assessment(app: &TestApp, machine: &str, agent: &str) -> String {
    let op = app.assess(machine, ADMIN).await;
    let job = app.claim(agent).await;
    assert_eq!(app.post("/v1/agent/inventory", agent, inventory()).await.status.as_u16(), 204);
    assert_eq!(app.report(agent, &job, "succeeded", json!({})).await.status.as_u16(), 200);
    id_of(&op)
}

pub async fn subscribe(app: &TestApp, url: &str, types: Value) -> Value {
    app.post("/v1/webhooks", ADMIN, json!({"url": url, "event_types": types})).await.ok(201).clone()
}

pub async fn log(app: &TestApp, webhook: &Value) -> Vec<Value> {
    let r = app.get(&format!("/v1/webhooks/{}/deliveries", id_of(webhook)), ADMIN).await;
    r.ok(200)["items"].as_array().unwrap().clone()
}

pub fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_else(|| panic!("no {name} header"))
}

/// The guarded client deliveries go through, with the app's allow-list.
pub fn client(state: &AppState) -> WebhookClient {
    WebhookClient::new(state.settings.webhook_allow.clone()).unwrap()
}

/// The allow-list of the receivers here.
pub const LOOPBACK: &str = "127.0.0.0/8";
