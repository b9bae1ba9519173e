//! Client limits: a token's request rate (agents exempt), an address's rate (health checks and
//! the agent protocol exempt), and caps on open event streams and long polls; refusals are 429
//! `rate_limited` with `Retry-After`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{header, Method, Request};
use common::*;
use hotpatch_api::limits::LimitSettings;
use tower::ServiceExt as _;

fn limited(adjust: impl FnOnce(&mut LimitSettings)) -> impl FnOnce(&mut hotpatch_api::AppState) {
    let mut settings = LimitSettings::UNLIMITED;
    adjust(&mut settings);
    move |state| *state = state.clone().with_limits(settings)
}

#[track_caller]
fn assert_rate_limited(r: &Reply) {
    r.problem(429, "rate_limited");
    let wait: u64 = r.headers[header::RETRY_AFTER].to_str().unwrap().parse().unwrap();
    assert!(wait >= 1, "Retry-After {wait}");
}

#[tokio::test]
async fn a_token_past_its_rate_is_429_and_others_are_not() {
    let (app, _) = TestApp::with_state(limited(|s| s.per_token_rps = 5)).await;
    let reader = app.token("reader").await;
    let statuses: Vec<u16> = {
        let mut v = vec![];
        for _ in 0..30 {
            v.push(app.get("/v1/machines", &reader).await.status.as_u16());
        }
        v
    };
    assert!(statuses[..10].iter().all(|s| *s == 200), "the burst passes: {statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = app.get("/v1/machines", &reader).await;
    assert_rate_limited(&r);

    app.get("/v1/machines", ADMIN).await.ok(200);
    app.get("/healthz", &reader).await.ok(200);
}

#[tokio::test]
async fn agents_are_not_held_to_a_tokens_rate() {
    let (app, _) = TestApp::with_state(limited(|s| s.per_token_rps = 1)).await;
    let machine = app.machine_id(azure_2022("paced-1")).await;
    let agent = app.agent_token(&machine).await;
    for _ in 0..30 {
        app.claim_nothing(&agent).await;
    }
}

async fn from(app: &TestApp, ip: [u8; 4], path: &str, token: &str) -> Reply {
    let mut req = Request::builder()
        .method(if path.starts_with("/v1/agent/") { Method::POST } else { Method::GET })
        .uri(path)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    req.extensions_mut().insert(ConnectInfo(SocketAddr::from((ip, 40_000))));
    app.send(req).await
}

#[tokio::test]
async fn an_address_past_its_rate_is_429_but_health_and_agents_go_on() {
    let (app, _) = TestApp::with_state(limited(|s| s.per_address_rps = 5)).await;
    let machine = app.machine_id(azure_2022("nat-1")).await;
    let agent = app.agent_token(&machine).await;
    let flood = [203, 0, 113, 7];
    let mut refused = 0;
    for _ in 0..30 {
        // Bad tokens too: the address is refused before any token is looked up.
        let r = from(&app, flood, "/v1/machines", "hp_not-a-token").await;
        refused += usize::from(r.status.as_u16() == 429);
    }
    assert!(refused >= 15, "{refused} of 30 refused");
    assert_rate_limited(&from(&app, flood, "/v1/machines", ADMIN).await);
    from(&app, flood, "/healthz", ADMIN).await.ok(200);
    for _ in 0..20 {
        let r = from(&app, flood, "/v1/agent/jobs/claim?wait=0", &agent).await;
        assert_eq!(r.status.as_u16(), 204);
    }
    from(&app, [198, 51, 100, 1], "/v1/machines", ADMIN).await.ok(200);
}

#[tokio::test]
async fn event_streams_are_capped_per_token_and_a_closed_one_frees_its_place() {
    let (app, _) = TestApp::with_state(limited(|s| s.streams_per_token = 2)).await;
    let reader = app.token("reader").await;
    let open = || {
        let req = Request::builder()
            .uri("/v1/events")
            .header(header::AUTHORIZATION, format!("Bearer {reader}"))
            .body(Body::empty())
            .unwrap();
        app.router.clone().oneshot(req)
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!((first.status().as_u16(), second.status().as_u16()), (200, 200));
    let third = open().await.unwrap();
    assert_eq!(third.status().as_u16(), 429);
    assert!(third.headers().contains_key(header::RETRY_AFTER));
    app.get("/v1/events?types=nonsense", ADMIN).await.problem(400, "validation_failed");
    drop(first);
    assert_eq!(open().await.unwrap().status().as_u16(), 200);
}

#[tokio::test]
async fn waiting_claims_are_capped_per_token_but_immediate_ones_are_not() {
    let (app, state) = TestApp::with_state(limited(|s| s.polls_per_token = 1)).await;
    let machine = app.machine_id(azure_2022("poll-1")).await;
    let agent = app.agent_token(&machine).await;
    let waiting = {
        let (app, agent) = (app.clone(), agent.clone());
        tokio::spawn(async move {
            app.call(Method::POST, "/v1/agent/jobs/claim?wait=30", Some(&agent), None).await
        })
    };
    eventually("the first claim to wait", Duration::from_secs(5), || async { state.wakeups.waiting() > 0 })
        .await;
    let second = app.call(Method::POST, "/v1/agent/jobs/claim?wait=30", Some(&agent), None).await;
    assert_rate_limited(&second);
    app.claim_nothing(&agent).await;
    state.shutdown.cancel();
    assert_eq!(waiting.await.unwrap().status.as_u16(), 204);
}
