//! "Assess now" and the operations clients poll (DESIGN §3): one machine or a selector, 202 with
//! `Location`, `Idempotency-Key`, collapsed assessments, `GET /v1/operations/{id}` with `?wait=`.
#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request};
use common::{azure_2022, azure_2025, id_of, listen, with, Reply, TestApp, ADMIN};
use serde_json::{json, Value};

const KEY: &str = "Idempotency-Key";

/// The machine ids an operation lists, sorted.
fn machines_of(op: &Value) -> Vec<String> {
    let mut ids: Vec<String> = op["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["machine_id"].as_str().unwrap().to_owned())
        .collect();
    ids.sort();
    ids
}

fn sorted(ids: &[&String]) -> Vec<String> {
    let mut v: Vec<String> = ids.iter().map(|s| (*s).clone()).collect();
    v.sort();
    v
}

/// `POST path` with a raw body and content type (and an optional idempotency key).
async fn post_raw(
    app: &TestApp,
    path: &str,
    token: &str,
    ct: Option<&str>,
    body: &str,
    key: Option<&str>,
) -> Reply {
    let mut b =
        Request::builder().method(Method::POST).uri(path).header("authorization", format!("Bearer {token}"));
    if let Some(ct) = ct {
        b = b.header("content-type", ct);
    }
    if let Some(k) = key {
        b = b.header(KEY, k);
    }
    app.send(b.body(Body::from(body.to_owned())).unwrap()).await
}

/// `POST /v1/assessments` with a selector and an optional idempotency key.
async fn assess_selected(app: &TestApp, token: &str, selector: Value, key: Option<&str>) -> Reply {
    let headers: Vec<(&str, HeaderValue)> =
        key.map(|k| (KEY, HeaderValue::from_str(k).unwrap())).into_iter().collect();
    app.call_with_headers(Method::POST, "/v1/assessments", Some(token), &headers, Some(selector)).await
}

/// `POST /v1/machines/{id}/assess` (no body) with an idempotency key.
async fn assess_with_key(app: &TestApp, machine: &str, token: &str, key: HeaderValue) -> Reply {
    let path = format!("/v1/machines/{machine}/assess");
    app.call_with_headers(Method::POST, &path, Some(token), &[(KEY, key)], None).await
}

/// Three machines: `web` (westeurope, env=prod team=web), `dev` (westeurope, env=dev) and `uk`
/// (uksouth, no labels).
async fn fleet(app: &TestApp) -> (String, String, String) {
    let web = app.machine_id(azure_2022("web")).await;
    let dev = app.machine_id(with(azure_2022("dev"), json!({"labels": {"env": "dev"}}))).await;
    let uk = app.machine_id(azure_2025("uk")).await;
    (web, dev, uk)
}

async fn count(app: &TestApp, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(&app.pool).await.unwrap()
}

// ---------------------------------------------------------------------------------------------
// Assess one machine.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn assessing_a_machine_answers_202_with_location_and_a_queued_operation() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let ci = app.token("ci").await;
    let r = app.call(Method::POST, &format!("/v1/machines/{machine}/assess"), Some(&ci), None).await;
    let op = r.ok(202).clone();
    let id = id_of(&op);
    assert_eq!(r.headers["location"], format!("/v1/operations/{id}"));
    assert_eq!(op["kind"], "assess");
    assert_eq!(op["status"], "queued");
    assert_eq!(op["machines"], json!({"total": 1, "succeeded": 0, "failed": 0, "pending": 1}));
    assert_eq!(op["results"].as_array().unwrap().len(), 1, "{op}");
    assert_eq!(op["results"][0]["machine_id"], machine.as_str());
    assert_eq!(op["results"][0]["state"], "queued");
    assert!(op["results"][0]["job_id"].is_string(), "{op}");
    assert_eq!(op["results_truncated"], false);
    assert!(op["created_at"].is_string(), "{op}");
    assert_eq!(op["finished_at"], Value::Null);
    // The machine has no agent: the 202 (only) says so.
    let mut op = op;
    let warnings = op.as_object_mut().unwrap().remove("warnings").unwrap();
    assert!(warnings[0].as_str().unwrap().contains("no connected agent (web-1)"), "{warnings}");
    let polled = app.get(r.headers["location"].to_str().unwrap(), &ci).await;
    assert_eq!(polled.ok(200), &op, "the Location answers the same operation");
}

#[tokio::test]
async fn assessing_an_unknown_machine_is_404_and_a_malformed_id_400() {
    let app = TestApp::new().await;
    let id = uuid::Uuid::now_v7();
    let r = app.call(Method::POST, &format!("/v1/machines/{id}/assess"), Some(ADMIN), None).await;
    r.problem(404, "not_found");
    assert_eq!(count(&app, "select count(*) from operation").await, 0, "no operation was left behind");
    let r = app.call(Method::POST, "/v1/machines/web-1/assess", Some(ADMIN), None).await;
    r.problem(400, "validation_failed");
}

#[tokio::test]
async fn assess_takes_no_body_or_an_empty_object_and_nothing_else() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let path = format!("/v1/machines/{machine}/assess");
    post_raw(&app, &path, ADMIN, Some("application/json"), "{}", None).await.ok(202);
    post_raw(&app, &path, ADMIN, Some("application/json"), " { } ", None).await.ok(202);
    post_raw(&app, &path, ADMIN, Some("application/json"), "", None).await.ok(202);
    let r = post_raw(&app, &path, ADMIN, Some("application/json"), r#"{"x": 1}"#, None).await;
    assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], "x");
    let r = post_raw(&app, &path, ADMIN, Some("application/json"), "[]", None).await;
    assert!(r.status == 400 || r.status == 422, "an array: {} {}", r.status, r.body);
    post_raw(&app, &path, ADMIN, Some("application/json"), "{not json", None)
        .await
        .problem(400, "validation_failed");
    post_raw(&app, &path, ADMIN, Some("text/plain"), "{}", None).await.problem(415, "unsupported_media_type");
    post_raw(&app, &path, ADMIN, Some("application/x-www-form-urlencoded"), "a=1", None)
        .await
        .problem(415, "unsupported_media_type");
}

#[tokio::test]
async fn reader_cannot_assess_while_ci_operator_and_admin_can() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let path = format!("/v1/machines/{machine}/assess");
    let reader = app.token("reader").await;
    app.call(Method::POST, &path, Some(&reader), None).await.problem(403, "forbidden");
    assess_selected(&app, &reader, json!({}), None).await.problem(403, "forbidden");
    app.call(Method::POST, &path, None, None).await.problem(401, "unauthorized");
    assert_eq!(count(&app, "select count(*) from operation").await, 0, "refused requests made nothing");
    for role in ["ci", "operator", "admin"] {
        let token = app.token(role).await;
        app.call(Method::POST, &path, Some(&token), None).await.ok(202);
        assess_selected(&app, &token, json!({"machine_ids": [machine]}), None).await.ok(202);
    }
}

// ---------------------------------------------------------------------------------------------
// Idempotency-Key.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn the_same_idempotency_key_with_the_same_request_returns_the_same_operation() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let ci = app.token("ci").await;
    let key = HeaderValue::from_static("deploy-42-assess");
    let first = assess_with_key(&app, &machine, &ci, key.clone()).await.ok(202).clone();
    let second = assess_with_key(&app, &machine, &ci, key.clone()).await;
    assert_eq!(second.ok(202)["id"], first["id"]);
    assert_eq!(second.headers["location"], format!("/v1/operations/{}", id_of(&first)));
    // An empty JSON object is the same request as no body.
    let path = format!("/v1/machines/{machine}/assess");
    let third = post_raw(&app, &path, &ci, Some("application/json"), "{}", Some("deploy-42-assess")).await;
    assert_eq!(third.ok(202)["id"], first["id"]);
    assert_eq!(count(&app, "select count(*) from operation").await, 1);
    assert_eq!(count(&app, "select count(*) from job").await, 1);

    // Replayed after the work is done, it is still that operation, not a new assessment.
    let agent = app.agent_token(&machine).await;
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    let replay = assess_with_key(&app, &machine, &ci, key).await;
    assert_eq!(replay.ok(202)["id"], first["id"]);
    assert_eq!(replay.body["status"], "succeeded");
    assert_eq!(count(&app, "select count(*) from job").await, 1, "no new job");
}

#[tokio::test]
async fn the_same_idempotency_key_on_a_bulk_request_ignores_key_order_and_whitespace() {
    let app = TestApp::new().await;
    fleet(&app).await;
    let ci = app.token("ci").await;
    let a = r#"{"regions": ["westeurope"], "labels": {"env": "prod", "team": "web"}}"#;
    let b = r#"{ "labels":{"team":"web","env":"prod"},"regions":["westeurope"] }"#;
    let first = post_raw(&app, "/v1/assessments", &ci, Some("application/json"), a, Some("k1")).await;
    let second = post_raw(&app, "/v1/assessments", &ci, Some("application/json"), b, Some("k1")).await;
    assert_eq!(second.ok(202)["id"], first.ok(202)["id"]);
    assert_eq!(count(&app, "select count(*) from operation").await, 1);
}

#[tokio::test]
async fn the_same_idempotency_key_with_another_request_is_422_idempotency_key_reused() {
    let app = TestApp::new().await;
    let (web, dev, _) = fleet(&app).await;
    let ci = app.token("ci").await;
    assess_selected(&app, &ci, json!({"machine_ids": [web]}), Some("nightly")).await.ok(202);
    let r = assess_selected(&app, &ci, json!({"machine_ids": [dev]}), Some("nightly")).await;
    let detail = r.problem(422, "idempotency_key_reused")["detail"].as_str().unwrap().to_owned();
    assert!(detail.contains("nightly"), "{detail}");
    let r = assess_selected(&app, &ci, json!({}), Some("nightly")).await;
    r.problem(422, "idempotency_key_reused");
    // The same key on another endpoint is another request too.
    let r = assess_with_key(&app, &web, &ci, HeaderValue::from_static("nightly")).await;
    r.problem(422, "idempotency_key_reused");
    assert_eq!(count(&app, "select count(*) from operation").await, 1);
    assert_eq!(count(&app, "select count(*) from operation_job").await, 1, "dev was never enqueued");
}

#[tokio::test]
async fn the_same_idempotency_key_from_another_token_is_another_operation() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let (one, two) = (app.token("ci").await, app.token("ci").await);
    let key = HeaderValue::from_static("build-7");
    let a = assess_with_key(&app, &machine, &one, key.clone()).await.ok(202).clone();
    let b = assess_with_key(&app, &machine, &two, key.clone()).await.ok(202).clone();
    assert_ne!(a["id"], b["id"], "keys are scoped to their token");
    assert_eq!(a["results"][0]["job_id"], b["results"][0]["job_id"], "both wait on the one queued job");
    assert_eq!(assess_with_key(&app, &machine, &one, key.clone()).await.ok(202)["id"], a["id"]);
    assert_eq!(assess_with_key(&app, &machine, &two, key).await.ok(202)["id"], b["id"]);
}

#[tokio::test]
async fn an_invalid_idempotency_key_is_400_and_makes_nothing() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let too_long = "k".repeat(256);
    for (what, value) in [
        ("empty", HeaderValue::from_static("")),
        ("blank", HeaderValue::from_static("   ")),
        ("256 characters", HeaderValue::from_str(&too_long).unwrap()),
        ("non-ASCII", HeaderValue::from_bytes("schlüssel".as_bytes()).unwrap()),
        ("with a space inside", HeaderValue::from_static("a b")),
        ("with a tab inside", HeaderValue::from_bytes(b"a\tb").unwrap()),
    ] {
        let r = assess_with_key(&app, &machine, ADMIN, value.clone()).await;
        assert_eq!(r.status, 400, "{what}: {}", r.body);
        let p = r.problem(400, "validation_failed");
        assert_eq!(p["errors"][0]["field"], KEY, "{what}: {p}");
        let headers = [(KEY, value)];
        let r = app
            .call_with_headers(Method::POST, "/v1/assessments", Some(ADMIN), &headers, Some(json!({})))
            .await;
        assert_eq!(r.status, 400, "bulk, {what}: {}", r.body);
    }
    assert_eq!(count(&app, "select count(*) from operation").await, 0);
    let longest = "k".repeat(255);
    assess_with_key(&app, &machine, ADMIN, HeaderValue::from_str(&longest).unwrap()).await.ok(202);
}

// ---------------------------------------------------------------------------------------------
// Bulk assessments.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn a_bulk_assessment_selects_machines_whose_every_given_part_matches() {
    let app = TestApp::new().await;
    let (web, dev, uk) = fleet(&app).await;
    let ci = app.token("ci").await;
    let cases: Vec<(Value, Vec<String>)> = vec![
        (json!({"labels": {"env": "prod"}}), sorted(&[&web])),
        (json!({"labels": {"env": "prod", "team": "web"}}), sorted(&[&web])),
        (json!({"regions": ["westeurope"]}), sorted(&[&web, &dev])),
        (json!({"regions": ["uksouth", "westeurope"]}), sorted(&[&web, &dev, &uk])),
        (json!({"machine_ids": [web, uk]}), sorted(&[&web, &uk])),
        (json!({"machine_ids": [web, dev], "labels": {"env": "dev"}}), sorted(&[&dev])),
        (json!({"regions": ["westeurope"], "labels": {"env": "dev"}}), sorted(&[&dev])),
        (json!({"machine_ids": [web, dev, uk], "regions": ["uksouth"]}), sorted(&[&uk])),
        (json!({}), sorted(&[&web, &dev, &uk])),
        (json!({"labels": {}}), sorted(&[&web, &dev, &uk])),
    ];
    for (selector, expected) in cases {
        let r = assess_selected(&app, &ci, selector.clone(), None).await;
        let op = r.ok(202);
        assert_eq!(r.headers["location"], format!("/v1/operations/{}", id_of(op)));
        assert_eq!(op["kind"], "assess");
        assert_eq!(machines_of(op), expected, "{selector}");
        assert_eq!(op["machines"]["total"], expected.len(), "{selector}");
        assert_eq!(op["machines"]["pending"], expected.len(), "{selector}");
    }
}

#[tokio::test]
async fn a_bulk_assessment_naming_an_unknown_machine_is_422_naming_it_and_makes_nothing() {
    let app = TestApp::new().await;
    let (web, _, _) = fleet(&app).await;
    let unknown = uuid::Uuid::now_v7().to_string();
    let r = assess_selected(&app, ADMIN, json!({"machine_ids": [web, unknown]}), None).await;
    let p = r.problem(422, "validation_failed");
    assert_eq!(p["errors"][0]["field"], "machine_ids");
    let message = p["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains(&unknown), "{message}");
    assert!(!message.contains(&web), "names only the unknown one: {message}");
    assert_eq!(count(&app, "select count(*) from operation").await, 0);
    assert_eq!(count(&app, "select count(*) from job").await, 0, "web was not enqueued");
}

#[tokio::test]
async fn a_selector_that_names_no_machine_is_422() {
    let app = TestApp::new().await;
    let (web, _, _) = fleet(&app).await;
    for selector in [
        json!({"labels": {"env": "staging"}}),
        json!({"regions": ["eastasia"]}),
        json!({"regions": []}),
        json!({"machine_ids": []}),
        json!({"labels": {"env": "prod"}, "regions": ["uksouth"]}),
        json!({"machine_ids": [web], "labels": {"env": "dev"}}),
    ] {
        let r = assess_selected(&app, ADMIN, selector.clone(), None).await;
        assert_eq!(r.status, 422, "{selector}: {}", r.body);
        r.problem(422, "validation_failed");
    }
    assert_eq!(count(&app, "select count(*) from operation").await, 0);
}

#[tokio::test]
async fn an_empty_fleet_has_nothing_to_assess() {
    let app = TestApp::new().await;
    assess_selected(&app, ADMIN, json!({}), None).await.problem(422, "validation_failed");
}

#[tokio::test]
async fn a_malformed_selector_is_refused_naming_the_field() {
    let app = TestApp::new().await;
    fleet(&app).await;
    for (selector, field) in [
        (json!({"hosts": ["web"]}), "hosts"),
        (json!({"machine_ids": ["web"]}), "machine_ids[0]"),
        (json!({"labels": {"env": 1}}), "labels.env"),
        (json!({"regions": "westeurope"}), "regions"),
    ] {
        let r = assess_selected(&app, ADMIN, selector.clone(), None).await;
        assert_eq!(r.status, 422, "{selector}: {}", r.body);
        assert_eq!(r.problem(422, "validation_failed")["errors"][0]["field"], field, "{selector}");
    }
    let r = post_raw(&app, "/v1/assessments", ADMIN, Some("text/plain"), "{}", None).await;
    r.problem(415, "unsupported_media_type");
    let r = post_raw(&app, "/v1/assessments", ADMIN, None, "", None).await;
    r.problem(415, "unsupported_media_type");
    post_raw(&app, "/v1/assessments", ADMIN, Some("application/json"), "{", None)
        .await
        .problem(400, "validation_failed");
}

#[tokio::test]
async fn a_second_assessment_while_one_is_queued_collapses_into_it() {
    let app = TestApp::new().await;
    let (web, dev, _) = fleet(&app).await;
    let ci = app.token("ci").await;
    let one = app.assess(&web, &ci).await;
    let bulk = assess_selected(&app, &ci, json!({"machine_ids": [web, dev]}), None).await.ok(202).clone();
    assert_ne!(one["id"], bulk["id"], "two operations");
    let job_of = |op: &Value, machine: &str| -> Value {
        op["results"].as_array().unwrap().iter().find(|r| r["machine_id"] == machine).unwrap()["job_id"]
            .clone()
    };
    assert_eq!(job_of(&bulk, &web), job_of(&one, &web), "web's queued job is shared");
    let again = app.assess(&web, ADMIN).await;
    assert_eq!(job_of(&again, &web), job_of(&one, &web));
    assert_eq!(count(&app, "select count(*) from job").await, 2, "one job for web, one for dev");

    // Both operations follow the shared job.
    let agent = app.agent_token(&web).await;
    let job = app.claim(&agent).await;
    assert_eq!(job["id"], job_of(&one, &web));
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    assert_eq!(app.operation(&id_of(&one)).await["status"], "succeeded");
    let bulk_now = app.operation(&id_of(&bulk)).await;
    assert_eq!(bulk_now["status"], "running", "web's part is done, dev's queued: {bulk_now}");
    assert_eq!(bulk_now["machines"], json!({"total": 2, "succeeded": 1, "failed": 0, "pending": 1}));

    // Once the job is no longer queued, the next request gets a new one.
    let next = app.assess(&web, &ci).await;
    assert_ne!(job_of(&next, &web), job_of(&one, &web));
}

#[tokio::test]
async fn an_assessment_while_the_previous_one_runs_queues_a_new_job() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    let first = app.assess(&machine, ADMIN).await;
    let job = app.claim(&agent).await;
    let second = app.assess(&machine, ADMIN).await;
    assert_ne!(second["results"][0]["job_id"], first["results"][0]["job_id"]);
    assert_eq!(second["status"], "queued");
    assert_eq!(app.operation(&id_of(&first)).await["status"], "running");
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    let next = app.claim(&agent).await;
    assert_eq!(next["id"], second["results"][0]["job_id"]);
}

// ---------------------------------------------------------------------------------------------
// GET /v1/operations/{id}.
// ---------------------------------------------------------------------------------------------

#[tokio::test]
async fn getting_an_unknown_operation_is_404_and_bad_parameters_400() {
    let app = TestApp::new().await;
    let id = uuid::Uuid::now_v7();
    app.get(&format!("/v1/operations/{id}"), ADMIN).await.problem(404, "not_found");
    app.get(&format!("/v1/operations/{id}?wait=1"), ADMIN).await.problem(404, "not_found");
    app.get("/v1/operations/op-1", ADMIN).await.problem(400, "validation_failed");
    let machine = app.machine_id(azure_2022("web-1")).await;
    let op = id_of(&app.assess(&machine, ADMIN).await);
    for (query, field) in
        [("wait=31", "wait"), ("wait=-1", "wait"), ("wait=abc", "wait"), ("since=1", "since")]
    {
        let r = app.get(&format!("/v1/operations/{op}?{query}"), ADMIN).await;
        assert_eq!(r.problem(400, "validation_failed")["errors"][0]["field"], field, "?{query}");
    }
    app.get(&format!("/v1/operations/{op}?wait=0"), ADMIN).await.ok(200);
}

#[tokio::test]
async fn waiting_on_a_finished_operation_answers_at_once() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    let op = id_of(&app.assess(&machine, ADMIN).await);
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    let started = Instant::now();
    let r = app.get(&format!("/v1/operations/{op}?wait=2"), ADMIN).await;
    assert_eq!(r.ok(200)["status"], "succeeded");
    assert!(started.elapsed() < Duration::from_millis(1500), "took {:?}", started.elapsed());
}

#[tokio::test]
async fn waiting_on_an_operation_that_does_not_change_answers_when_the_wait_ends() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let op = id_of(&app.assess(&machine, ADMIN).await);
    let started = Instant::now();
    let r = app.get(&format!("/v1/operations/{op}?wait=1"), ADMIN).await;
    assert_eq!(r.ok(200)["status"], "queued");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(900) && waited < Duration::from_secs(10), "{waited:?}");
}

#[tokio::test]
async fn waiting_on_an_operation_answers_when_its_job_changes() {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let app = Arc::new(app);
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    let op = id_of(&app.assess(&machine, ADMIN).await);
    let (stop, listener) = listen(&app, &state).await;
    let waiting = {
        let (app, op) = (app.clone(), op.clone());
        tokio::spawn(async move { app.get(&format!("/v1/operations/{op}?wait=20"), ADMIN).await })
    };
    // Operation long-polls poll the operation's progress; give this one time to start waiting.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!waiting.is_finished(), "answered before anything changed");
    app.claim(&agent).await;
    let r =
        tokio::time::timeout(Duration::from_secs(8), waiting).await.expect("answered on the change").unwrap();
    assert_eq!(r.ok(200)["status"], "running");
    let _ = stop.send(());
    listener.await.unwrap();
}

#[tokio::test]
async fn an_operation_fails_when_its_agent_reports_failure_with_the_error_in_its_results() {
    let app = TestApp::new().await;
    let (web, dev, _) = fleet(&app).await;
    let op = assess_selected(&app, ADMIN, json!({"machine_ids": [web, dev]}), None).await.ok(202).clone();
    let (agent_web, agent_dev) = (app.agent_token(&web).await, app.agent_token(&dev).await);
    let job = app.claim(&agent_web).await;
    app.report(&agent_web, &job, "succeeded", json!({})).await.ok(200);
    let job = app.claim(&agent_dev).await;
    let error = "Windows Update service is disabled";
    app.report(&agent_dev, &job, "failed", json!({"error": error})).await.ok(200);

    let seen = app.operation(&id_of(&op)).await;
    assert_eq!(seen["status"], "failed", "{seen}");
    assert_eq!(seen["machines"], json!({"total": 2, "succeeded": 1, "failed": 1, "pending": 0}));
    assert!(seen["finished_at"].is_string(), "{seen}");
    let first = &seen["results"][0];
    assert_eq!(first["machine_id"], dev.as_str(), "failures first: {seen}");
    assert_eq!(first["state"], "failed");
    assert_eq!(first["error"], error);
    assert!(first["finished_at"].is_string());
    assert_eq!(seen["results"][1]["state"], "succeeded");
    assert!(seen["results"][1].get("error").is_none_or(Value::is_null), "{seen}");
}

#[tokio::test]
async fn every_human_role_can_read_an_operation_and_an_agent_cannot() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let path = format!("/v1/operations/{}", id_of(&app.assess(&machine, ADMIN).await));
    for role in ["reader", "ci", "operator", "admin"] {
        let token = app.token(role).await;
        assert_eq!(app.get(&path, &token).await.ok(200)["kind"], "assess", "{role}");
    }
    let agent = app.agent_token(&machine).await;
    app.get(&path, &agent).await.problem(403, "forbidden");
    app.call(Method::GET, &path, None, None).await.problem(401, "unauthorized");
}

// ---------------------------------------------------------------------------------------------
// Concurrent requests and edge cases of the body and the key.
// ---------------------------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_requests_with_one_idempotency_key_make_one_operation() {
    let app = Arc::new(TestApp::new().await);
    let machine = app.machine_id(azure_2022("web-1")).await;
    let ci = app.token("ci").await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, machine, ci) = (app.clone(), machine.clone(), ci.clone());
            tokio::spawn(async move {
                assess_with_key(&app, &machine, &ci, HeaderValue::from_static("race")).await.ok(202)["id"]
                    .clone()
            })
        })
        .collect();
    let mut ids = Vec::new();
    for t in tasks {
        ids.push(t.await.unwrap());
    }
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_eq!(count(&app, "select count(*) from operation").await, 1);
    assert_eq!(count(&app, "select count(*) from job").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_assessments_of_one_machine_share_one_queued_job() {
    let app = Arc::new(TestApp::new().await);
    let machine = app.machine_id(azure_2022("web-1")).await;
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let (app, machine) = (app.clone(), machine.clone());
            tokio::spawn(async move { app.assess(&machine, ADMIN).await["results"][0]["job_id"].clone() })
        })
        .collect();
    let mut jobs = Vec::new();
    for t in tasks {
        jobs.push(t.await.unwrap());
    }
    assert!(jobs.iter().all(|j| *j == jobs[0]), "{jobs:?}");
    assert_eq!(count(&app, "select count(*) from operation").await, 8);
    assert_eq!(count(&app, "select count(*) from job").await, 1);
}

#[tokio::test]
async fn an_idempotency_key_whose_request_failed_can_be_used_again() {
    let app = TestApp::new().await;
    let (web, _, _) = fleet(&app).await;
    let unknown = uuid::Uuid::now_v7();
    let r = assess_selected(&app, ADMIN, json!({"machine_ids": [unknown]}), Some("retry-me")).await;
    r.problem(422, "validation_failed");
    let r = assess_selected(&app, ADMIN, json!({"machine_ids": [web]}), Some("retry-me")).await;
    assert_eq!(machines_of(r.ok(202)), [web]);
}

#[tokio::test]
async fn assess_with_a_body_but_no_content_type_is_refused() {
    let app = TestApp::new().await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let path = format!("/v1/machines/{machine}/assess");
    let r = post_raw(&app, &path, ADMIN, None, r#"{"x": 1}"#, None).await;
    r.problem(415, "unsupported_media_type");
    assert_eq!(count(&app, "select count(*) from operation").await, 0);
}
