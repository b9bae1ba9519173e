//! Webhook receivers do not hold each other up, and a receiver that keeps failing is disabled:
//! against a real PostgreSQL and receivers on 127.0.0.1. A slow receiver holds only its own
//! lane (a fast one's delivery is written while the slow one still waits); five failures in a
//! row over a day disable a webhook (no new deliveries) until an operator enables it again.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;
mod webhook_support;

use std::sync::Arc;

use axum::http::StatusCode;
use chrono::TimeDelta;
use common::*;
use hotpatch_app::webhooks::delivery;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use webhook_support::*;

#[tokio::test]
async fn a_slow_receiver_does_not_delay_another_receivers_delivery_in_the_same_pass() {
    let (app, state, machine, agent) = app_with_agent(LOOPBACK).await;
    let gate = Arc::new(Semaphore::new(0));
    let (slow_url, slow_got) = gated_receiver(StatusCode::NO_CONTENT, gate.clone()).await;
    let (fast_url, fast_got) = receiver(StatusCode::NO_CONTENT).await;
    let slow = subscribe(&app, &slow_url, json!(["operation.finished"])).await;
    let fast = subscribe(&app, &fast_url, json!(["operation.finished"])).await;
    finish_an_assessment(&app, &machine, &agent).await;

    let running = {
        let state = state.clone();
        tokio::spawn(async move { delivery::pass(&state, &client(&state)).await.unwrap() })
    };
    // The fast receiver's outcome is written while the slow receiver still holds its answer.
    let mut fast_state = Value::Null;
    for _ in 0..500 {
        fast_state = log(&app, &fast).await[0]["state"].clone();
        if fast_state == "succeeded" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert_eq!(fast_state, "succeeded");
    assert_eq!(fast_got.lock().unwrap().len(), 1);
    assert_eq!(log(&app, &slow).await[0]["state"], "delivering", "the slow one is still waiting");
    assert!(!running.is_finished());

    gate.add_permits(1);
    let pass = running.await.unwrap();
    assert_eq!((pass.attempted, pass.delivered), (2, 2), "{pass:?}");
    assert_eq!(slow_got.lock().unwrap().len(), 1);
    assert_eq!(log(&app, &slow).await[0]["state"], "succeeded");
}

#[tokio::test]
async fn a_webhook_failing_five_times_over_a_day_is_disabled_until_an_operator_enables_it() {
    let (app, state, machine, agent) = app_with_agent(LOOPBACK).await;
    let (url, got) = receiver(StatusCode::SERVICE_UNAVAILABLE).await;
    let hook = subscribe(&app, &url, json!(["operation.finished"])).await;
    let path = format!("/v1/webhooks/{}", id_of(&hook));
    assert_eq!(hook["disabled_at"], Value::Null);
    finish_an_assessment(&app, &machine, &agent).await;
    let http = client(&state);

    // Attempts at 0, 6, 12, 18 h: four failures over 18 hours are not enough.
    for attempt in 1..=4 {
        assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 1, "attempt {attempt}");
        assert_eq!(app.get(&path, ADMIN).await.ok(200)["disabled_at"], Value::Null, "attempt {attempt}");
        state.clock.advance(TimeDelta::hours(6));
    }
    // The fifth, 24 h after the first: disabled.
    assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 1);
    let disabled = app.get(&path, ADMIN).await.ok(200).clone();
    assert_eq!(instant(&disabled["disabled_at"]), state.clock.now(), "{disabled}");
    let reason = disabled["disabled_reason"].as_str().unwrap();
    assert!(reason.starts_with("5 failed deliveries in a row"), "{reason}");
    assert_eq!(got.lock().unwrap().len(), 5);

    // No new deliveries, and the queued one waits.
    finish_an_assessment(&app, &machine, &agent).await;
    state.clock.advance(TimeDelta::hours(1));
    assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 0);
    assert_eq!(log(&app, &hook).await.len(), 1, "no delivery for the second event");

    // Enabling is an operator's write; it resets the record.
    let reader = app.token("reader").await;
    app.post(&format!("{path}/enable"), &reader, json!({})).await.problem(403, "forbidden");
    let enabled = app.post(&format!("{path}/enable"), ADMIN, json!({})).await.ok(200).clone();
    assert_eq!(
        (enabled["disabled_at"].clone(), enabled["disabled_reason"].clone()),
        (Value::Null, Value::Null)
    );
    assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 1, "the queued one resumes");
    state.clock.advance(TimeDelta::hours(30));
    assert_eq!(delivery::pass(&state, &http).await.unwrap().attempted, 1);
    assert_eq!(
        app.get(&path, ADMIN).await.ok(200)["disabled_at"],
        Value::Null,
        "two failures since enabling"
    );
    app.post(&format!("/v1/webhooks/{}/enable", uuid::Uuid::now_v7()), ADMIN, json!({}))
        .await
        .problem(404, "not_found");
}
