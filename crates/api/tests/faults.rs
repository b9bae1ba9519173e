//! Faults the service must ride out: a replica stopping (long polls answer at once, readiness
//! fails), the database unreachable (503 `unavailable` with `Retry-After`, never 500), and pooled
//! connections killed under it (the next requests succeed).
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use axum::http::{header, Method};
use common::*;
use hotpatch_api::AppState;
use sqlx::postgres::PgPoolOptions;
use sqlx::Connection as _;

/// A bound for what must happen at once, so a regression fails instead of hanging.
const AT_ONCE: Duration = Duration::from_secs(10);

#[tokio::test]
async fn a_stopping_replica_answers_waiting_claims_with_no_job_at_once() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let machine = app.machine_id(azure_2022("drain-1")).await;
    let agent = app.agent_token(&machine).await;
    let waiting = {
        let (app, agent) = (app.clone(), agent.clone());
        tokio::spawn(async move {
            app.call(Method::POST, "/v1/agent/jobs/claim?wait=60", Some(&agent), None).await
        })
    };
    eventually("the claim to wait", Duration::from_secs(5), || async { state.wakeups.waiting() > 0 }).await;
    state.shutdown.cancel();
    let answered = tokio::time::timeout(AT_ONCE, waiting).await.expect("the claim kept waiting").unwrap();
    assert_eq!(answered.status.as_u16(), 204);

    // A queued job is not handed out by a stopping replica: the agent's next claim goes elsewhere.
    app.assess(&machine, ADMIN).await;
    app.claim_nothing(&agent).await;
    // Readiness fails, so load balancers stop sending new work; liveness holds.
    app.get("/readyz", ADMIN).await.problem(503, "unavailable");
    app.get("/healthz", ADMIN).await.ok(200);
}

#[tokio::test]
async fn results_and_heartbeats_are_still_taken_while_stopping() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let machine = app.machine_id(azure_2022("drain-2")).await;
    let agent = app.agent_token(&machine).await;
    app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    state.shutdown.cancel();
    let (id, lease) = (job["id"].as_str().unwrap(), job["lease"]["id"].as_str().unwrap());
    let beat = app
        .post(&format!("/v1/agent/jobs/{id}/heartbeat"), &agent, serde_json::json!({"lease_id": lease}))
        .await;
    beat.ok(200);
    app.report(&agent, &job, "succeeded", serde_json::json!({})).await.ok(200);
}

#[tokio::test]
async fn an_operation_wait_returns_when_the_replica_stops() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let machine = app.machine_id(azure_2022("drain-3")).await;
    let operation = app.assess(&machine, ADMIN).await;
    let id = operation["id"].as_str().unwrap().to_owned();
    let waiting = {
        let app = app.clone();
        tokio::spawn(async move { app.get(&format!("/v1/operations/{id}?wait=30"), ADMIN).await })
    };
    tokio::task::yield_now().await;
    state.shutdown.cancel();
    let answered = tokio::time::timeout(AT_ONCE, waiting).await.expect("the wait went on").unwrap();
    answered.ok(200);
}

#[tokio::test]
async fn an_unreachable_database_is_503_unavailable_with_retry_after() {
    let app = TestApp::new().await;
    // Nothing listens on port 1: every connection attempt is refused.
    let pool = PgPoolOptions::new()
        .acquire_timeout(Duration::from_secs(2))
        .connect_lazy("postgres://postgres@127.0.0.1:1/none")
        .unwrap();
    let down = app.replica(AppState::new(pool));
    for path in ["/v1/machines", "/readyz"] {
        let r = down.get(path, ADMIN).await;
        r.problem(503, "unavailable");
        assert_eq!(r.headers[header::RETRY_AFTER], "2", "{path}");
    }
    down.get("/healthz", ADMIN).await.ok(200);
}

#[tokio::test]
async fn pooled_connections_killed_under_the_service_fail_no_request_after() {
    let app = TestApp::new().await;
    // Fill the pool with a few connections, then leave them idle.
    let requests: Vec<_> = (0..4).map(|_| app.get("/v1/machines", ADMIN)).collect();
    for r in futures::future::join_all(requests).await {
        r.ok(200);
    }
    let mut admin = sqlx::PgConnection::connect(&app.db.url).await.unwrap();
    let killed: i64 = sqlx::query_scalar(
        "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity
          where datname = current_database() and pid <> pg_backend_pid()) t",
    )
    .fetch_one(&mut admin)
    .await
    .unwrap();
    assert!(killed > 0);
    // The first request may meet a dead connection: a retryable 503, never a 500. After it,
    // connections are checked before use, and requests succeed.
    let first = app.get("/v1/machines", ADMIN).await;
    if first.status.as_u16() != 200 {
        first.problem(503, "unavailable");
    }
    for _ in 0..10 {
        app.get("/v1/machines", ADMIN).await.ok(200);
    }
}
