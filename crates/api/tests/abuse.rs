//! What a hostile or careless client can send: made-up methods (metrics stay bounded), a scrape
//! without the metrics token, a revoked token used at once or left streaming, a body left unread
//! by an early refusal, names with invisible formatting characters, dates outside 0001–9999.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request};
use common::*;
use http_body_util::BodyExt as _;
use serde_json::json;
use tower::ServiceExt as _;

async fn metrics(app: &TestApp, token: Option<&str>) -> (u16, String) {
    let mut req = Request::builder().uri("/metrics");
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let res = app.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
    let status = res.status().as_u16();
    let body = res.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8_lossy(&body).into_owned())
}

#[tokio::test]
async fn made_up_methods_add_no_metric_series() {
    let app = TestApp::new().await;
    for i in 0..50 {
        let method = Method::from_bytes(format!("PROBE{i}").as_bytes()).unwrap();
        let r = app.call(method, "/v1/machines", Some(ADMIN), None).await;
        assert!(r.status.is_client_error(), "{}", r.status);
    }
    let (status, text) = metrics(&app, None).await;
    assert_eq!(status, 200);
    assert!(!text.contains("PROBE"), "a made-up method became a label");
    assert!(text.contains("method=\"_OTHER\""), "made-up methods are counted as _OTHER");
}

#[tokio::test]
async fn metrics_need_the_metrics_token_when_one_is_set() {
    let (app, _) = TestApp::with_state(|s| *s = s.clone().with_metrics_token(Some("scrape-secret"))).await;
    assert_eq!(metrics(&app, None).await.0, 401);
    assert_eq!(metrics(&app, Some("scrape-secreT")).await.0, 401);
    assert_eq!(metrics(&app, Some(ADMIN)).await.0, 401, "an API token is not the metrics token");
    let (status, text) = metrics(&app, Some("scrape-secret")).await;
    assert_eq!(status, 200);
    assert!(text.contains("hotpatch_http_requests_total"));
}

#[tokio::test]
async fn a_revoked_token_is_refused_by_the_very_next_request() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    // With notifications flowing, verified credentials are cached: the case that let requests
    // through after the 204.
    let (_stop, _) = listen(&app, &state).await;
    for _ in 0..20 {
        let created = app.post("/v1/tokens", ADMIN, json!({"name": "short-lived", "role": "reader"})).await;
        let body = created.ok(201);
        let (id, token) =
            (body["id"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned());
        app.get("/v1/machines", &token).await.ok(200);
        app.get("/v1/machines", &token).await.ok(200);
        assert_eq!(app.delete(&format!("/v1/tokens/{id}"), ADMIN).await.status.as_u16(), 204);
        app.get("/v1/machines", &token).await.problem(401, "unauthorized");
    }
}

#[tokio::test]
async fn a_revoked_tokens_event_stream_ends() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let (_stop, _) = listen(&app, &state).await;
    let created = app.post("/v1/tokens", ADMIN, json!({"name": "portal", "role": "reader"})).await;
    let body = created.ok(201);
    let (id, token) = (body["id"].as_str().unwrap().to_owned(), body["token"].as_str().unwrap().to_owned());
    let req = Request::builder()
        .uri("/v1/events")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let res = app.router.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status().as_u16(), 200);
    let mut stream = res.into_body();

    assert_eq!(app.delete(&format!("/v1/tokens/{id}"), ADMIN).await.status.as_u16(), 204);
    // The stream ends (keep-alive comments may come first); a bound so a failure does not hang.
    let ended = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(frame) = stream.frame().await {
            frame.unwrap();
        }
    })
    .await;
    assert!(ended.is_ok(), "the revoked token's stream is still open");
}

#[tokio::test]
async fn a_post_refused_before_its_body_is_read_closes_the_connection() {
    let app = TestApp::new().await;
    let send = |token: Option<&'static str>| {
        let mut req = Request::builder()
            .method(Method::POST)
            .uri("/v1/machines")
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        req.body(Body::from(azure_2022("keep-alive-1").to_string())).unwrap()
    };
    let refused = app.send(send(None)).await;
    refused.problem(401, "unauthorized");
    assert_eq!(refused.headers[header::CONNECTION], "close", "the unread body is still on the connection");

    let reader = app.token("reader").await;
    let reader: &'static str = Box::leak(reader.into_boxed_str());
    let forbidden = app.send(send(Some(reader))).await;
    forbidden.problem(403, "forbidden");
    assert_eq!(forbidden.headers[header::CONNECTION], "close");

    let created = app.send(send(Some(ADMIN))).await;
    created.ok(201);
    assert!(created.headers.get(header::CONNECTION).is_none(), "a read body keeps the connection");
    let get = app.get("/v1/machines", ADMIN).await;
    assert!(get.headers.get(header::CONNECTION).is_none(), "no body, nothing to close for");
}

#[tokio::test]
async fn names_with_bidi_overrides_or_zero_width_characters_are_refused() {
    let app = TestApp::new().await;
    for name in ["web\u{202E}1", "web\u{200B}1", "\u{FEFF}web-2", "web\u{2066}3"] {
        let r = app.post("/v1/machines", ADMIN, azure_2022(name)).await;
        let problem = r.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "name", "{problem}");
        let r = app.post("/v1/tokens", ADMIN, json!({"name": name, "role": "reader"})).await;
        r.problem(422, "validation_failed");
    }
    app.post("/v1/machines", ADMIN, azure_2022("サーバー-1")).await.ok(201);
}

#[tokio::test]
async fn dates_outside_years_0001_to_9999_are_refused() {
    let app = TestApp::new().await;
    for at in
        ["+10000-01-01T00:00:00Z", "-0001-01-01T00:00:00Z", "0000-06-01T00:00:00Z", "+275760-09-13T00:00:00Z"]
    {
        let r = app.post("/v1/tokens", ADMIN, json!({"name": "t", "role": "reader", "expires_at": at})).await;
        let problem = r.problem(422, "validation_failed");
        assert_eq!(problem["errors"][0]["field"], "expires_at", "{problem}");
    }
    let id = app.machine_id(azure_2022("dated-1")).await;
    let r = app.get(&format!("/v1/machines/{id}/patch-status?at=%2B10000-01-01T00:00:00Z"), ADMIN).await;
    r.problem(400, "validation_failed");
    // A plain date is a common spelling of an instant: its midnight UTC.
    app.get(&format!("/v1/machines/{id}/patch-status?at=2025-03-01"), ADMIN).await.ok(200);
    let r = app
        .post(
            "/v1/tokens",
            ADMIN,
            json!({"name": "t", "role": "reader", "expires_at": "9999-12-31T00:00:00Z"}),
        )
        .await;
    assert_eq!(r.ok(201)["expires_at"], "9999-12-31T00:00:00Z");
}
