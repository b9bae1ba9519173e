//! The change feed, `GET /v1/events`, against a real PostgreSQL with the process's LISTEN loop
//! running: events written by the database's triggers reach an open stream at once, a reconnect
//! with `Last-Event-ID` replays exactly what came after, and filters and errors behave.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::*;
use hotpatch_api::AppState;
use hotpatch_app::clock::Clock;
use hotpatch_scheduler::rollout::{plan_rollout, PlanWindow, RolloutOptions, RolloutRelease};
use hotpatch_store::rollouts::{self, NewRollout};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};
use tower::ServiceExt as _;
use uuid::Uuid;

/// One event as received.
#[derive(Debug, Clone, PartialEq)]
struct Received {
    id: i64,
    event: String,
    data: Value,
}

/// An open `text/event-stream` response, read event by event.
struct Stream {
    body: Body,
    buffer: String,
}

impl Stream {
    async fn open(app: &TestApp, query: &str, last_event_id: Option<i64>) -> Stream {
        let token = app.token("reader").await;
        let mut req = Request::builder()
            .method(Method::GET)
            .uri(format!("/v1/events{query}"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"));
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", HeaderValue::from(id));
        }
        let res = app.router.clone().oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(res.status().as_u16(), 200);
        assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
        Stream { body: res.into_body(), buffer: String::new() }
    }

    /// The next event, or `None` when none comes within `within`.
    async fn next_within(&mut self, within: Duration) -> Option<Received> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Some(event) = self.parse_one() {
                return Some(event);
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame()).await.ok()?;
            let frame = frame.expect("the stream does not end").unwrap();
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(std::str::from_utf8(&data).unwrap());
            }
        }
    }

    async fn next(&mut self) -> Received {
        self.next_within(Duration::from_secs(5)).await.expect("an event within 5 s")
    }

    /// Every event arriving until `quiet` passes without one.
    async fn drain(&mut self, quiet: Duration) -> Vec<Received> {
        let mut all = vec![];
        while let Some(e) = self.next_within(quiet).await {
            all.push(e);
        }
        all
    }

    /// Takes one complete event (blank-line terminated) off the buffer; comments are skipped.
    fn parse_one(&mut self) -> Option<Received> {
        loop {
            let end = self.buffer.find("\n\n")?;
            let block: String = self.buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, None, String::new());
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("id:") {
                    id = Some(v.trim().parse::<i64>().unwrap());
                } else if let Some(v) = line.strip_prefix("event:") {
                    event = Some(v.trim().to_owned());
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if let (Some(id), Some(event)) = (id, event) {
                let data: Value = serde_json::from_str(&data).unwrap();
                assert_eq!(data["id"], id, "data carries the id: {data}");
                assert_eq!(data["type"], event.as_str(), "data carries the type: {data}");
                assert!(data["at"].as_str().is_some_and(|at| at.ends_with('Z')), "`at` in UTC: {data}");
                return Some(Received { id, event, data });
            }
        }
    }
}

/// An app with a running LISTEN loop (its change feed) and a machine with an agent.
async fn app_with_agent() -> (TestApp, AppState, String, String, tokio::sync::oneshot::Sender<()>) {
    let (app, state) = TestApp::with_state(|_| {}).await;
    let (stop, _) = listen(&app, &state).await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    (app, state, machine, agent, stop)
}

/// Runs an assessment of `machine` to success; returns the operation id.
async fn assess_to_success(app: &TestApp, machine: &str, agent: &str) -> String {
    let op = id_of(&app.assess(machine, ADMIN).await);
    let job = app.claim(agent).await;
    app.report(agent, &job, "succeeded", json!({})).await.ok(200);
    op
}

#[tokio::test]
async fn an_operations_completion_reaches_an_open_stream_within_a_second() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    let mut stream = Stream::open(&app, "?types=operation.finished", None).await;
    let op = id_of(&app.assess(&machine, ADMIN).await);
    let job = app.claim(&agent).await;
    assert!(stream.next_within(Duration::from_millis(200)).await.is_none(), "not finished yet");

    let reported = Instant::now();
    app.report(&agent, &job, "succeeded", json!({})).await.ok(200);
    let event = stream.next_within(Duration::from_secs(1)).await.expect("within 1 s of the result");
    let elapsed = reported.elapsed();
    assert!(elapsed < Duration::from_secs(1), "took {elapsed:?}");
    assert_eq!(event.event, "operation.finished");
    assert_eq!(event.data["operation_id"], op.as_str());
    assert_eq!(event.data["status"], "succeeded");
    assert_eq!(event.data["kind"], "assess");
    assert_eq!(event.data["machines"], json!({"total": 1, "succeeded": 1, "failed": 0}));
    assert_eq!(instant(&event.data["at"]), instant(&app.operation(&op).await["finished_at"]));
}

#[tokio::test]
async fn a_failed_job_finishes_its_operation_as_failed_and_only_once() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    let mut stream = Stream::open(&app, "?types=operation.finished", None).await;
    let op = id_of(&app.assess(&machine, ADMIN).await);
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "failed", json!({"error": "wuauserv stopped"})).await.ok(200);
    // The same result again (idempotent) changes nothing.
    app.report(&agent, &job, "failed", json!({"error": "wuauserv stopped"})).await;
    let events = stream.drain(Duration::from_millis(500)).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].data["operation_id"], op.as_str());
    assert_eq!(events[0].data["status"], "failed");
}

#[tokio::test]
async fn reconnecting_with_last_event_id_replays_exactly_the_events_after_it_then_continues_live() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    for _ in 0..3 {
        assess_to_success(&app, &machine, &agent).await;
        app.post("/v1/agent/inventory", &agent, inventory()).await.ok(204);
    }
    let mut from_start = Stream::open(&app, "?after=0", None).await;
    let all = from_start.drain(Duration::from_millis(500)).await;
    assert!(all.len() >= 6, "3 operations and 3 status changes at least: {all:?}");
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "increasing ids: {all:?}");

    let mark = all[2].id;
    let mut resumed = Stream::open(&app, "", Some(mark)).await;
    let replayed = resumed.drain(Duration::from_millis(500)).await;
    assert_eq!(replayed, all[3..].to_vec(), "exactly the events after {mark}, in order");

    // Live after the replay: the next event, once.
    let op = assess_to_success(&app, &machine, &agent).await;
    let live = resumed.drain(Duration::from_millis(500)).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0].data["operation_id"], op.as_str());
    assert!(live[0].id > all.last().unwrap().id);
    // The same through `?after=` (a client that cannot set headers).
    let mut by_param = Stream::open(&app, &format!("?after={mark}"), None).await;
    let replayed = by_param.drain(Duration::from_millis(500)).await;
    assert_eq!(replayed[..replayed.len() - 1], all[3..], "the replay, then the live one");
    assert_eq!(replayed.last().unwrap(), &live[0]);
}

#[tokio::test]
async fn events_written_while_a_stream_replays_arrive_once_and_in_order() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    for _ in 0..3 {
        assess_to_success(&app, &machine, &agent).await;
    }
    let mut stream = Stream::open(&app, "?after=0&types=operation.finished", None).await;
    // Written before the first byte of the replay is read.
    for _ in 0..3 {
        assess_to_success(&app, &machine, &agent).await;
    }
    let events = stream.drain(Duration::from_millis(700)).await;
    assert_eq!(events.len(), 6, "{events:?}");
    assert!(events.windows(2).all(|w| w[0].id < w[1].id), "{events:?}");
}

#[tokio::test]
async fn a_type_filter_sends_only_those_types() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    let mut stream = Stream::open(&app, "?types=machine.status_changed,agent.connected", None).await;
    assess_to_success(&app, &machine, &agent).await;
    app.post("/v1/agent/inventory", &agent, inventory()).await.ok(204);
    let events = stream.drain(Duration::from_millis(500)).await;
    let types: Vec<&str> = events.iter().map(|e| e.event.as_str()).collect();
    assert!(!types.is_empty(), "the inventory is a status change");
    assert!(types.iter().all(|t| ["machine.status_changed", "agent.connected"].contains(t)), "{types:?}");
}

#[tokio::test]
async fn an_inventory_is_one_status_change_of_its_machine() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    let mut stream = Stream::open(&app, "?types=machine.status_changed", None).await;
    app.post("/v1/agent/inventory", &agent, inventory()).await.ok(204);
    let events = stream.drain(Duration::from_millis(500)).await;
    assert_eq!(events.len(), 1, "inventory, patch state and liveness in one transaction: {events:?}");
    assert_eq!(events[0].data["machine_id"], machine.as_str());
    assert_eq!(events[0].data["change"], "inventory");
}

#[tokio::test]
async fn an_agent_heard_from_for_the_first_time_is_connected() {
    let (app, _state, machine, agent, _stop) = app_with_agent().await;
    let mut stream = Stream::open(&app, "?types=agent.connected", None).await;
    app.post("/v1/agent/health", &agent, json!({"status": "healthy"})).await.ok(204);
    let event = stream.next().await;
    assert_eq!(event.data["machine_id"], machine.as_str());
}

#[tokio::test]
async fn an_unknown_type_a_bad_id_or_an_unknown_parameter_is_a_400() {
    let app = TestApp::new().await;
    for query in ["?types=machine.exploded", "?types=", "?after=x", "?since=3"] {
        let r = app.get(&format!("/v1/events{query}"), ADMIN).await;
        r.problem(400, "validation_failed");
    }
    let r = app
        .call_with_headers(
            Method::GET,
            "/v1/events",
            Some(ADMIN),
            &[("last-event-id", HeaderValue::from_static("-4"))],
            None,
        )
        .await;
    r.problem(400, "validation_failed");
}

#[tokio::test]
async fn the_feed_needs_a_token_and_not_an_agents() {
    let app = TestApp::new().await;
    app.call(Method::GET, "/v1/events", None, None).await.problem(401, "unauthorized");
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    app.get("/v1/events", &agent).await.problem(403, "forbidden");
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 19, 12, 0, 0).unwrap()
}

#[tokio::test]
async fn a_rollout_halted_by_a_failed_install_is_an_event_with_its_reason() {
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0())).await;
    let (_stop, _) = listen(&app, &state).await;
    let release_id = publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let machine = app.machine_id(azure_2022("web-1")).await;
    let agent = app.agent_token(&machine).await;
    let release =
        hotpatch_store::releases::get(&state.pool, release_id.parse().unwrap()).await.unwrap().release;
    let release = RolloutRelease::from_catalog(&release, std::slice::from_ref(&release)).unwrap();
    let input = planned_machine(&machine);
    let window = Utc.with_ymd_and_hms(2025, 1, 20, 0, 0, 0).unwrap();
    let plan = plan_rollout(&release, &[input], &[], &RolloutOptions::default(), t0(), |_, _| {
        Some(PlanWindow { start: window, end: window + TimeDelta::hours(4) })
    })
    .unwrap();
    let rollout = Uuid::now_v7();
    let new = NewRollout {
        id: rollout,
        selector: &json!({}),
        automatic: false,
        created_by: None,
        deadline: t0() + TimeDelta::days(30),
        plan: &hotpatch_app::rollouts::rows(&plan).unwrap(),
    };
    rollouts::create(&mut state.pool.acquire().await.unwrap(), &new, t0()).await.unwrap();

    let mut stream = Stream::open(&app, "?types=rollout.halted,rollout.progressed", None).await;
    state.clock.set(window);
    hotpatch_app::rollouts::dispatcher::tick(&state).await.unwrap();
    let job = app.claim(&agent).await;
    app.report(&agent, &job, "failed", json!({"error": "install failed: 0x80070643"})).await.ok(200);
    hotpatch_app::rollouts::dispatcher::tick(&state).await.unwrap();

    let events = stream.drain(Duration::from_millis(500)).await;
    let halted: Vec<&Received> = events.iter().filter(|e| e.event == "rollout.halted").collect();
    assert_eq!(halted.len(), 1, "{events:?}");
    assert_eq!(halted[0].data["rollout_id"], rollout.to_string());
    assert!(halted[0].data["reason"].as_str().unwrap().contains("1 of 1"), "{:?}", halted[0]);

    // Canceling it is progress to a final state.
    app.post(&format!("/v1/rollouts/{rollout}/cancel"), ADMIN, json!({})).await;
    let event = stream.next().await;
    assert_eq!(event.event, "rollout.progressed");
    assert_eq!(event.data["state"], "canceled");
    assert_eq!(event.data["previous_state"], "halted");
}
