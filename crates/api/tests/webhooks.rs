//! `/v1/webhooks` and their deliveries against a real PostgreSQL and receivers on 127.0.0.1: an
//! operation's completion reaches a subscribed receiver signed (the signature verifies with the
//! secret shown at creation); a failing receiver gets retries with growing backoff until the
//! attempts run out, and the delivery log shows each one. Internal targets are refused: a literal
//! internal IP at creation (every spelling), a hostname resolving to one at delivery, unless the
//! operator's allow-list holds it.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod webhook_support;

use axum::http::{Method, StatusCode};
use chrono::TimeDelta;
use common::*;
use hotpatch_app::webhooks::delivery::{self, signature, MAX_ATTEMPTS};
use serde_json::{json, Value};
use webhook_support::*;

#[tokio::test]
async fn an_operations_completion_reaches_the_receiver_signed_with_the_webhooks_secret() {
    let (app, state, machine, agent) = app_with_agent(LOOPBACK).await;
    let (url, got) = receiver(StatusCode::NO_CONTENT).await;
    let hook = subscribe(&app, &url, json!(["operation.finished"])).await;
    let secret = hook["secret"].as_str().expect("the secret, once").to_owned();
    assert_eq!(secret.len(), 64, "256 bits, hex");
    let other = subscribe(&app, &url, json!(["rollout.halted"])).await;

    let operation = finish_an_assessment(&app, &machine, &agent).await;
    let http = client(&state);
    let pass = delivery::pass(&state, &http).await.unwrap();
    assert_eq!((pass.attempted, pass.delivered), (1, 1), "{pass:?}");

    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 1, "one delivery: the other webhook wants other events");
    let (headers, body) = &received[0];
    assert_eq!(header(headers, "hotpatch-event"), "operation.finished");
    assert_eq!(header(headers, "content-type"), "application/json");
    let sig = header(headers, "hotpatch-signature");
    let t: i64 = sig.strip_prefix("t=").and_then(|r| r.split(',').next()).unwrap().parse().unwrap();
    assert_eq!(t, t0().timestamp(), "signed at the service's now");
    assert_eq!(sig, signature(&secret, t, body), "the HMAC verifies with the secret");
    assert_ne!(sig, signature("not the secret", t, body));
    let event: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(event["type"], "operation.finished", "{event}");
    assert_eq!(event["data"]["operation_id"], operation, "{event}");

    let entries = log(&app, &hook).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["state"], "succeeded", "{entries:?}");
    assert_eq!(entries[0]["last_status"], 204);
    assert_eq!(entries[0]["id"], header(headers, "hotpatch-delivery"));
    assert!(log(&app, &other).await.is_empty());

    // Delivered once: the next pass has nothing to do.
    let pass = delivery::pass(&state, &http).await.unwrap();
    assert_eq!(pass.attempted, 0);
    assert_eq!(got.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_failing_receiver_gets_retries_with_growing_backoff_until_the_attempts_run_out() {
    let (app, state, machine, agent) = app_with_agent(LOOPBACK).await;
    let (url, got) = receiver(StatusCode::INTERNAL_SERVER_ERROR).await;
    let hook = subscribe(&app, &url, json!(["operation.finished"])).await;
    finish_an_assessment(&app, &machine, &agent).await;
    let http = client(&state);

    let mut delays = vec![];
    for attempt in 1..=MAX_ATTEMPTS {
        let pass = delivery::pass(&state, &http).await.unwrap();
        assert_eq!(pass.attempted, 1, "attempt {attempt} is due");
        let entry = log(&app, &hook).await.remove(0);
        assert_eq!(entry["attempt"], attempt, "{entry}");
        assert_eq!(entry["last_status"], 500, "{entry}");
        if attempt == MAX_ATTEMPTS {
            assert_eq!(entry["state"], "failed", "out of attempts: {entry}");
            assert_eq!(entry["next_attempt_at"], Value::Null);
            break;
        }
        assert_eq!(entry["state"], "queued", "{entry}");
        let next = instant(&entry["next_attempt_at"]);
        let delay = next - state.clock.now();
        delays.push(delay);
        // Not before its time.
        assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 0, "attempt {attempt}: too early");
        state.clock.set(next);
    }
    assert_eq!(got.lock().unwrap().len(), MAX_ATTEMPTS as usize, "one request per attempt");
    // Equal jitter: attempt k waits between half and all of 5 s · 2^(k-1) (at most 10 min).
    let policy = delivery::retry_policy();
    for (i, d) in delays.iter().enumerate() {
        let full = (policy.base * (1 << i)).min(policy.max);
        assert!(*d >= full / 2 && *d <= full, "attempt {}: waited {d}, backoff {full}", i + 1);
    }
    assert!(delays.last().unwrap() > &(delays[0] * 4), "the waits grow: {delays:?}");
    // Nothing more.
    state.clock.advance(TimeDelta::hours(1));
    assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 0);
}

#[tokio::test]
async fn webhooks_are_created_listed_read_and_deleted_by_operators() {
    let app = TestApp::new().await;
    let hook =
        subscribe(&app, "https://ops.example.com/hotpatch", json!(["rollout.halted", "agent.lost"])).await;
    assert_eq!(hook["event_types"], json!(["agent.lost", "rollout.halted"]));
    let id = id_of(&hook);
    let listed = app.get("/v1/webhooks", ADMIN).await.ok(200).clone();
    assert_eq!(listed["items"].as_array().unwrap().len(), 1);
    assert!(listed["items"][0].get("secret").is_none(), "the secret is shown once: {listed}");
    let one = app.get(&format!("/v1/webhooks/{id}"), ADMIN).await.ok(200).clone();
    assert_eq!(one["url"], "https://ops.example.com/hotpatch");
    assert!(one.get("secret").is_none());

    let reader = app.token("reader").await;
    app.get("/v1/webhooks", &reader).await.problem(403, "forbidden");
    assert_eq!(app.delete(&format!("/v1/webhooks/{id}"), ADMIN).await.status.as_u16(), 204);
    app.get(&format!("/v1/webhooks/{id}"), ADMIN).await.problem(404, "not_found");
    app.delete(&format!("/v1/webhooks/{id}"), ADMIN).await.problem(404, "not_found");
    app.get(&format!("/v1/webhooks/{id}/deliveries"), ADMIN).await.problem(404, "not_found");
}

#[tokio::test]
async fn an_invalid_webhook_is_422_naming_the_field() {
    let app = TestApp::new().await;
    let cases = [
        (json!({"url": "ftp://x.example", "event_types": ["agent.lost"]}), "url"),
        (json!({"url": "http://", "event_types": ["agent.lost"]}), "url"),
        (json!({"url": "https://x.example", "event_types": []}), "event_types"),
        (
            json!({"url": "https://x.example", "event_types": ["agent.lost", "machine.deleted"]}),
            "event_types[1]",
        ),
        (
            json!({"url": "https://x.example", "event_types": ["agent.lost"], "description": "a\u{7}"}),
            "description",
        ),
    ];
    for (body, field) in cases {
        let r = app.post("/v1/webhooks", ADMIN, body.clone()).await;
        let p = r.problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], field, "{body}: {p}");
    }
}

#[tokio::test]
async fn an_internal_address_in_any_spelling_is_422_naming_the_url() {
    let app = TestApp::new().await;
    for url in [
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://0x7f000001/hook",
        "http://2130706433/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.5:8080/",
        "http://172.16.0.1/",
        "http://192.168.1.1/",
        "http://100.64.0.1/",
        "http://[fd00::1]/",
        "http://[fe80::1]/",
        "http://0.0.0.0:8080/",
        "http://224.0.0.1/",
    ] {
        let r = app.post("/v1/webhooks", ADMIN, json!({"url": url, "event_types": ["agent.lost"]})).await;
        let p = r.problem(422, "validation_failed");
        assert_eq!(p["errors"][0]["field"], "url", "{url}: {p}");
        let message = p["errors"][0]["message"].as_str().unwrap();
        assert!(message.contains("internal addresses"), "{url}: {message}");
    }
    // A hostname is judged when it is resolved, at each delivery.
    let r = app.post(
        "/v1/webhooks",
        ADMIN,
        json!({"url": "http://localhost:9/h", "event_types": ["agent.lost"]}),
    );
    r.await.ok(201);
}

#[tokio::test]
async fn the_allow_list_admits_internal_addresses_and_odd_spellings_are_stored_normalised() {
    let (app, ..) = app_with_agent(LOOPBACK).await;
    let hook = subscribe(&app, "http://0x7f000001:9/hook", json!(["agent.lost"])).await;
    assert_eq!(hook["url"], "http://127.0.0.1:9/hook");
    let r =
        app.post("/v1/webhooks", ADMIN, json!({"url": "http://10.0.0.1/", "event_types": ["agent.lost"]}));
    r.await.problem(422, "validation_failed");
}

#[tokio::test]
async fn a_hostname_resolving_to_loopback_is_refused_at_delivery_and_the_receiver_gets_nothing() {
    let (app, state, machine, agent) = app_with_agent("").await;
    let (url, got) = receiver(StatusCode::NO_CONTENT).await;
    let url = url.replace("127.0.0.1", "localhost");
    let hook = subscribe(
        &app,
        &format!("{}?token=secret", url.replace("http://", "http://user:pw@")),
        json!(["operation.finished"]),
    )
    .await;
    finish_an_assessment(&app, &machine, &agent).await;

    let pass = delivery::pass(&state, &client(&state)).await.unwrap();
    assert_eq!((pass.attempted, pass.delivered), (1, 0), "{pass:?}");
    assert!(got.lock().unwrap().is_empty(), "nothing reached the receiver");
    let entry = log(&app, &hook).await.remove(0);
    assert_eq!(entry["state"], "queued", "retried like other failures: {entry}");
    assert_eq!(entry["last_status"], Value::Null);
    let error = entry["last_error"].as_str().unwrap();
    assert!(error.starts_with("refuses internal address 127.0.0.1"), "{error}");
    assert!(!error.contains("pw") && !error.contains("token"), "no credentials in the log: {error}");
}

#[tokio::test]
async fn a_hostname_resolving_to_an_allowed_address_is_delivered() {
    let (app, state, machine, agent) = app_with_agent(LOOPBACK).await;
    let (url, got) = receiver(StatusCode::NO_CONTENT).await;
    let hook = subscribe(&app, &url.replace("127.0.0.1", "localhost"), json!(["operation.finished"])).await;
    finish_an_assessment(&app, &machine, &agent).await;
    let pass = delivery::pass(&state, &client(&state)).await.unwrap();
    assert_eq!((pass.attempted, pass.delivered), (1, 1), "{pass:?}");
    assert_eq!(got.lock().unwrap().len(), 1);
    assert_eq!(log(&app, &hook).await[0]["state"], "succeeded");
}

#[tokio::test]
async fn a_webhook_is_changed_tested_and_a_delivery_sent_again() {
    let (app, state, machine, agent) = app_with_agent(LOOPBACK).await;
    let (url, got) = receiver(StatusCode::NO_CONTENT).await;
    let hook = subscribe(&app, &url, json!(["rollout.halted"])).await;
    let secret = hook["secret"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/{}", hook["id"].as_str().unwrap());
    let patch = |body: Value| app.call(Method::PATCH, &path, Some(ADMIN), Some(body));

    // Changed: the fields given, checked as at creation; the secret stays secret.
    let changed =
        patch(json!({"event_types": ["operation.finished"], "description": "ops"})).await.ok(200).clone();
    assert_eq!(
        (&changed["event_types"], &changed["description"]),
        (&json!(["operation.finished"]), &json!("ops"))
    );
    assert_eq!(changed["url"], hook["url"]);
    assert!(changed.get("secret").is_none(), "{changed}");
    let cleared = patch(json!({"description": null})).await.ok(200).clone();
    assert_eq!(
        (&cleared["description"], &cleared["event_types"]),
        (&Value::Null, &json!(["operation.finished"]))
    );
    patch(json!({"url": "http://10.1.2.3/hook"})).await.problem(422, "validation_failed");
    patch(json!({"event_types": ["nope"]})).await.problem(422, "validation_failed");
    patch(json!({"secret": "mine"})).await.problem(422, "validation_failed");
    app.call(
        Method::PATCH,
        "/v1/webhooks/01900000-0000-7000-8000-000000000000",
        Some(ADMIN),
        Some(json!({})),
    )
    .await
    .problem(404, "not_found");

    // A test event, signed, at once, outside the delivery log.
    let test = app.post(&format!("{path}/test"), ADMIN, json!({})).await.ok(200).clone();
    assert_eq!((&test["delivered"], &test["status"]), (&json!(true), &json!(204)), "{test}");
    {
        let received = got.lock().unwrap();
        let (headers, body) = &received[0];
        assert_eq!(header(headers, "hotpatch-event"), "webhook.test");
        let sig = header(headers, "hotpatch-signature");
        assert_eq!(sig, signature(&secret, t0().timestamp(), body));
    }
    assert!(log(&app, &hook).await.is_empty(), "a test is not a delivery");

    // A delivered event sent again, with a fresh set of attempts.
    finish_an_assessment(&app, &machine, &agent).await;
    let http = client(&state);
    assert_eq!(delivery::pass(&state, &http).await.unwrap().delivered, 1);
    let delivered = log(&app, &hook).await.remove(0);
    let again = format!("{path}/deliveries/{}/redeliver", delivered["id"].as_str().unwrap());
    let queued = app.post(&again, ADMIN, json!({})).await.ok(200).clone();
    assert_eq!((&queued["state"], &queued["attempt"]), (&json!("queued"), &json!(0)), "{queued}");
    app.post(&again, ADMIN, json!({})).await.problem(409, "conflict");
    assert_eq!(delivery::pass(&state, &http).await.unwrap().delivered, 1);
    let received = got.lock().unwrap().clone();
    assert_eq!(received.len(), 3, "the test, the delivery and its redelivery");
    assert_eq!(header(&received[2].0, "hotpatch-delivery"), delivered["id"].as_str().unwrap());
    app.post(&format!("{path}/deliveries/01900000-0000-7000-8000-000000000000/redeliver"), ADMIN, json!({}))
        .await
        .problem(404, "not_found");
    let reader = app.token("reader").await;
    app.post(&format!("{path}/test"), &reader, json!({})).await.problem(403, "forbidden");
}
