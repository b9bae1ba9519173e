//! A stand-in for the server's agent and registration endpoints, recording every call, so the
//! agent loop and the simulator are tested over real HTTP without a database.
#![allow(clippy::unwrap_used, missing_docs, dead_code)]

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::{TimeDelta, Utc};
use hotpatch_domain::job::{ClaimedJob, JobKind, Lease};
use serde_json::{json, Value};
use uuid::Uuid;

/// One recorded call: which endpoint, the bearer token and the body.
#[derive(Debug, Clone)]
pub struct Call {
    pub what: &'static str,
    pub token: String,
    pub body: Value,
}

#[derive(Default)]
pub struct Mock {
    pub jobs: Mutex<VecDeque<ClaimedJob>>,
    pub calls: Mutex<Vec<Call>>,
    /// Claims answered with this status until the count runs out.
    pub claim_errors: Mutex<VecDeque<u16>>,
    pub lose_leases: AtomicBool,
    /// Results answered with this status until the count runs out (409 is `lease_lost`).
    pub result_errors: Mutex<VecDeque<u16>>,
    /// While set, every result is answered 503.
    pub fail_results: AtomicBool,
    pub claims: AtomicUsize,
    /// Machines `GET /v1/machines` lists.
    pub existing: Mutex<Vec<Value>>,
}

pub fn problem(status: u16, code: &str) -> Response {
    let body = json!({"type": format!("urn:hotpatch:problem:{code}"), "title": code, "status": status,
                      "detail": format!("mock {code}"), "code": code});
    (StatusCode::from_u16(status).unwrap(), [("content-type", "application/problem+json")], body.to_string())
        .into_response()
}

fn token(headers: &HeaderMap) -> String {
    headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default()
        .to_owned()
}

impl Mock {
    fn record(&self, what: &'static str, headers: &HeaderMap, body: Value) {
        self.calls.lock().unwrap().push(Call { what, token: token(headers), body });
    }

    pub fn calls(&self) -> Vec<Call> {
        self.calls.lock().unwrap().clone()
    }

    pub fn whats(&self) -> Vec<&'static str> {
        self.calls().iter().map(|c| c.what).collect()
    }

    /// Waits until a call of this kind was recorded (at most 10 s).
    pub async fn wait_for(&self, what: &str) {
        for _ in 0..200 {
            if self.calls().iter().any(|c| c.what == what) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("no {what} call came; calls: {:?}", self.whats());
    }

    pub fn push_job(&self, kind: JobKind, payload: Value, lease_for: TimeDelta) -> ClaimedJob {
        let job = ClaimedJob {
            id: Uuid::new_v4(),
            kind,
            machine_id: Uuid::new_v4(),
            attempt: 1,
            payload,
            lease: Lease { id: Uuid::new_v4(), expires_at: Utc::now() + lease_for },
        };
        self.jobs.lock().unwrap().push_back(job.clone());
        job
    }
}

async fn claim(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Response {
    m.claims.fetch_add(1, Ordering::Relaxed);
    m.record("claim", &headers, json!(q));
    if let Some(status) = m.claim_errors.lock().unwrap().pop_front() {
        return problem(status, if status == 401 { "unauthorized" } else { "unavailable" });
    }
    if let Some(job) = m.jobs.lock().unwrap().pop_front() {
        return Json(job).into_response();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    StatusCode::NO_CONTENT.into_response()
}

async fn heartbeat(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Path(_id): Path<Uuid>,
    Json(b): Json<Value>,
) -> Response {
    m.record("heartbeat", &headers, b.clone());
    if m.lose_leases.load(Ordering::Relaxed) {
        return problem(409, "lease_lost");
    }
    Json(json!({"lease": {"id": b["lease_id"], "expires_at": Utc::now() + TimeDelta::seconds(2)}}))
        .into_response()
}

async fn result(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(b): Json<Value>,
) -> Response {
    m.record("result", &headers, json!({"job": id, "result": b}));
    if m.fail_results.load(Ordering::Relaxed) {
        return problem(503, "unavailable");
    }
    match m.result_errors.lock().unwrap().pop_front() {
        Some(409) => problem(409, "lease_lost"),
        Some(status) => problem(status, "unavailable"),
        None => StatusCode::OK.into_response(),
    }
}

async fn inventory(State(m): State<Arc<Mock>>, headers: HeaderMap, Json(b): Json<Value>) -> StatusCode {
    m.record("inventory", &headers, b);
    StatusCode::NO_CONTENT
}

async fn health(State(m): State<Arc<Mock>>, headers: HeaderMap, Json(b): Json<Value>) -> StatusCode {
    m.record("health", &headers, b);
    StatusCode::NO_CONTENT
}

async fn list_machines(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Query(q): Query<Vec<(String, String)>>,
) -> Json<Value> {
    m.record("list", &headers, json!(q));
    Json(json!({"items": *m.existing.lock().unwrap(), "next_cursor": null}))
}

async fn regions() -> Json<Value> {
    Json(json!({"items": [
        {"name": "uksouth", "windows_server_2025_azure_edition": true},
        {"name": "westeurope", "windows_server_2025_azure_edition": false}],
        "next_cursor": null}))
}

async fn import(State(m): State<Arc<Mock>>, headers: HeaderMap, Json(b): Json<Value>) -> Response {
    m.record("import", &headers, b.clone());
    let items: Vec<Value> = b
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(index, spec)| {
            json!({"index": index, "id": Uuid::new_v4(), "name": spec["name"],
                                    "hotpatch_status": "enabled", "eligible": true})
        })
        .collect();
    (StatusCode::CREATED, Json(json!({"imported": items.len(), "items": items}))).into_response()
}

async fn agent_token(
    State(m): State<Arc<Mock>>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
    Json(b): Json<Value>,
) -> Response {
    m.record("agent_token", &headers, b);
    (
        StatusCode::CREATED,
        Json(json!({"id": Uuid::new_v4(), "token": format!("agent-{id}"), "role": "agent"})),
    )
        .into_response()
}

async fn installed_updates(State(m): State<Arc<Mock>>, headers: HeaderMap, Path(id): Path<Uuid>) -> Response {
    m.record("recorded", &headers, json!(id));
    Json(json!({"items": [], "assessed_at": null, "os_build": null})).into_response()
}

/// Serves the mock on a free loopback port; returns its base URL.
pub async fn serve(mock: Arc<Mock>) -> String {
    let app = Router::new()
        .route("/v1/agent/jobs/claim", post(claim))
        .route("/v1/agent/jobs/{id}/heartbeat", post(heartbeat))
        .route("/v1/agent/jobs/{id}/result", post(result))
        .route("/v1/agent/inventory", post(inventory))
        .route("/v1/agent/health", post(health))
        .route("/v1/machines", get(list_machines))
        .route("/v1/machines/import", post(import))
        .route("/v1/machines/{id}/agent-token", post(agent_token))
        .route("/v1/machines/{id}/installed-updates", get(installed_updates))
        .route("/v1/regions", get(regions))
        .with_state(mock);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    format!("http://{addr}/")
}
