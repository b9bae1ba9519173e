//! The committed `api/openapi.json` must be what the code generates.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::PathBuf;

#[test]
fn committed_openapi_json_matches_the_code() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../api/openapi.json");
    let generated = hotpatch_api::openapi::document_json();
    if std::env::var_os("UPDATE_OPENAPI").is_some() {
        std::fs::write(&path, &generated).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "api/openapi.json is out of date: regenerate it with `UPDATE_OPENAPI=1 cargo test -p hotpatch-api --test openapi`"
    );
}

#[test]
fn every_v1_operation_declares_bearer_auth() {
    let doc = serde_json::to_value(hotpatch_api::openapi::document()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !path.starts_with("/v1/") {
            continue;
        }
        for (method, op) in item.as_object().unwrap() {
            // Calendar feeds are for calendar apps, which cannot send a token: the secret in
            // the URL is the credential.
            if path.starts_with("/v1/feeds/") {
                assert!(!op["security"].to_string().contains("bearer"), "{method} {path} asks for a token");
                continue;
            }
            assert!(op["security"].to_string().contains("bearer"), "{method} {path} lacks bearer security");
        }
    }
}

mod common;

#[tokio::test]
async fn the_spec_docs_and_metrics_are_served_without_a_token() {
    let app = common::TestApp::new().await;
    let spec = app.call(axum::http::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(spec.ok(200)["info"]["title"], "hotpatch");
    let docs = app.call(axum::http::Method::GET, "/docs", None, None).await;
    assert_eq!(docs.status, 200);
    assert!(docs.headers["content-type"].to_str().unwrap().starts_with("text/html"));
    // Air-gapped: the page loads its viewer from this server and the browser may fetch nothing
    // from another host.
    let page = docs.body.as_str().unwrap();
    assert!(page.contains(r#"src="/docs/rapidoc-min.js""#) && page.contains(r#"spec-url="/openapi.json""#));
    assert!(!page.contains("http://") && !page.contains("https://"), "{page}");
    let csp = docs.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.starts_with("default-src 'self'") && !csp.contains("http"), "{csp}");
    let script = app.call(axum::http::Method::GET, "/docs/rapidoc-min.js", None, None).await;
    assert_eq!(script.status, 200);
    assert!(script.headers["content-type"].to_str().unwrap().starts_with("text/javascript"));
    let vendored = include_str!("../assets/rapidoc-min.js");
    assert!(script
        .body
        .as_str()
        .is_some_and(|b| b.len() == vendored.len() && b.starts_with("/*! RapiDoc 9.3.8")));
    app.call(axum::http::Method::GET, "/healthz", None, None).await.ok(200);
    assert_eq!(app.call(axum::http::Method::GET, "/readyz", None, None).await.ok(200)["status"], "ok");
    let metrics = app.call(axum::http::Method::GET, "/metrics", None, None).await;
    assert_eq!(metrics.status, 200);
    let text = metrics.body.as_str().unwrap();
    assert!(
        text.contains(r#"hotpatch_http_requests_total{method="GET",route="/readyz",status="200"} 1"#),
        "{text}"
    );
}

#[test]
fn every_error_answer_is_a_problem_document_and_every_v1_operation_declares_the_shared_ones() {
    let doc = serde_json::to_value(hotpatch_api::openapi::document()).unwrap();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let responses = op["responses"].as_object().unwrap();
            for (status, response) in responses {
                if status.starts_with('4') || status.starts_with('5') {
                    let types: Vec<&String> = response["content"].as_object().unwrap().keys().collect();
                    assert_eq!(types, ["application/problem+json"], "{method} {path} {status}");
                }
            }
            let shared: &[&str] = if path.starts_with("/v1/feeds/") {
                // No token: the feed's URL is its credential.
                &["429", "500", "503"]
            } else if path.starts_with("/v1/") {
                &["401", "403", "429", "500", "503"]
            } else {
                &["500", "503"]
            };
            for status in shared {
                assert!(responses.contains_key(*status), "{method} {path} lacks {status}");
            }
        }
    }
}

#[test]
fn no_schema_is_an_all_of_a_response_could_not_satisfy() {
    // utoipa writes `#[serde(flatten)]` as allOf; with a part refusing unknown fields no answer
    // validates, so the document flattens them into one object.
    let json = hotpatch_api::openapi::document_json();
    assert!(!json.contains("\"allOf\""), "an allOf is left in the document");
}
