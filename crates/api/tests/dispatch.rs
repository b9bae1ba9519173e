//! The rollout dispatcher's pass (`hotpatch_app::rollouts::dispatcher::tick`) against a real PostgreSQL, on a
//! manual clock: a planned rollout installs in each machine's own window, batch after batch, and
//! moves on only on results and health; too many failures halt it; a missed window moves the
//! machine to its next one.

#![allow(clippy::unwrap_used, missing_docs)]

mod common;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use common::*;
use hotpatch_api::AppState;
use hotpatch_app::clock::Clock;
use hotpatch_app::rollouts::dispatcher::BatchEvent;
use hotpatch_app::rollouts::dispatcher::{self, Pass};
use hotpatch_scheduler::rollout::{plan_rollout, PlanWindow, RolloutMachine, RolloutOptions, RolloutRelease};
use hotpatch_store::rollouts::{self, NewRollout, RolloutState};
use serde_json::{json, Value};
use uuid::Uuid;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 19, 12, 0, 0).unwrap()
}

/// The first window after `t0`: the machines' default off-peak window, 01:00–05:00 in Berlin
/// (00:00–04:00 UTC in winter).
fn w1() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, 20, 0, 0, 0).unwrap()
}

/// The machines' windows as the planner is told them (the dispatcher reschedules with the real ones).
fn daily_window(from: DateTime<Utc>) -> PlanWindow {
    let day = from.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc();
    let start = if day >= from { day } else { day + TimeDelta::days(1) };
    PlanWindow { start, end: start + TimeDelta::hours(4) }
}

struct Fleet {
    app: TestApp,
    state: AppState,
    rollout: Uuid,
    /// (machine id, agent token), in plan order.
    machines: Vec<(String, String)>,
}

/// `n` hotpatch machines in one region with agents, the January baseline published, and a
/// rollout of it planned one machine per batch and written by the store.
async fn fleet(n: usize) -> Fleet {
    let (app, state) = TestApp::with_state(|s| s.clock = Clock::manual(t0())).await;
    let release_id = publish(&app, ws2022("baseline", true, "2025-01", "KB5000001")).await;
    let mut machines = vec![];
    for i in 0..n {
        let id = app.machine_id(azure_2022(&format!("web-{i}"))).await;
        let agent = app.agent_token(&id).await;
        machines.push((id, agent));
    }
    let release =
        hotpatch_store::releases::get(&state.pool, release_id.parse().unwrap()).await.unwrap().release;
    let release = RolloutRelease::from_catalog(&release, std::slice::from_ref(&release)).unwrap();
    let inputs: Vec<RolloutMachine> = machines.iter().map(|(id, _)| planned_machine(id)).collect();
    // One machine per batch: each batch waits for the previous one.
    let options = RolloutOptions { max_batch_percent: 1, ..RolloutOptions::default() };
    let plan =
        plan_rollout(&release, &inputs, &[], &options, t0(), |_, from| Some(daily_window(from))).unwrap();
    let id = Uuid::now_v7();
    let mut conn = state.pool.acquire().await.unwrap();
    let new = NewRollout {
        id,
        selector: &json!({}),
        automatic: false,
        created_by: None,
        deadline: t0() + TimeDelta::days(30),
        plan: &hotpatch_app::rollouts::rows(&plan).unwrap(),
    };
    rollouts::create(&mut conn, &new, t0()).await.unwrap();
    // Plan order: batch k holds the machine whose window comes k-th.
    let order: Vec<String> =
        plan.waves.iter().flat_map(|w| &w.batches).map(|b| b.machines[0].machine_id.to_string()).collect();
    machines.sort_by_key(|(id, _)| order.iter().position(|o| o == id));
    Fleet { app, state, rollout: id, machines }
}

impl Fleet {
    async fn tick(&self) -> Pass {
        dispatcher::tick(&self.state).await.unwrap().expect("no other dispatcher runs")
    }

    async fn view(&self) -> rollouts::RolloutView {
        let mut conn = self.state.pool.acquire().await.unwrap();
        rollouts::get(&mut conn, self.rollout, self.state.clock.now()).await.unwrap().unwrap()
    }

    async fn healthy(&self, agent: &str) {
        let r = self.app.post("/v1/agent/health", agent, json!({"status": "healthy"})).await;
        assert_eq!(r.status.as_u16(), 204, "{}", r.body);
    }
}

fn assert_install_of_the_rollout(job: &Value, rollout: Uuid) {
    assert_eq!(job["kind"], "install", "{job}");
    assert_eq!(job["payload"]["kbs"], json!(["KB5000001"]), "{job}");
    assert_eq!(job["payload"]["rollout_id"], rollout.to_string(), "{job}");
    assert_eq!(job["payload"]["requires_reboot"], true, "a baseline reboots: {job}");
}

#[tokio::test]
async fn a_rollout_installs_in_each_machines_window_batch_after_batch_and_succeeds_on_results_and_health() {
    let f = fleet(2).await;
    let [(_, first), (_, second)] = [f.machines[0].clone(), f.machines[1].clone()];

    let pass = f.tick().await;
    assert_eq!(
        (pass.opened.len(), pass.enqueued.len()),
        (1, 0),
        "the first batch opens, its window has not started"
    );
    f.app.claim_nothing(&first).await;

    f.state.clock.set(w1());
    assert_eq!(f.tick().await.enqueued.len(), 1, "the window started");
    let job = f.app.claim(&first).await;
    assert_install_of_the_rollout(&job, f.rollout);
    f.app.claim_nothing(&second).await;
    assert_eq!(f.tick().await.enqueued.len(), 0, "one job per machine and window");

    f.app
        .report(&first, &job, "succeeded", json!({"installed": ["KB5000001"], "rebooted": true}))
        .await
        .ok(200);
    let pass = f.tick().await;
    assert!(pass.events.is_empty(), "installed but not yet reported healthy: {pass:?}");
    assert_eq!(f.view().await.machines.succeeded, 1);

    f.state.clock.advance(TimeDelta::minutes(5));
    f.healthy(&first).await;
    let pass = f.tick().await;
    assert_eq!(pass.events, vec![BatchEvent::BatchSucceeded { rollout_id: f.rollout, batch_index: 1 }]);
    assert_eq!(
        (pass.opened.len(), pass.enqueued.len()),
        (1, 0),
        "the next batch opens and waits for its window"
    );

    f.state.clock.set(w1() + TimeDelta::days(1));
    assert_eq!(f.tick().await.enqueued.len(), 1);
    let job = f.app.claim(&second).await;
    assert_install_of_the_rollout(&job, f.rollout);
    f.app
        .report(&second, &job, "succeeded", json!({"installed": ["KB5000001"], "rebooted": true}))
        .await
        .ok(200);
    f.state.clock.advance(TimeDelta::minutes(5));
    f.healthy(&second).await;
    let pass = f.tick().await;
    assert!(pass.events.contains(&BatchEvent::RolloutSucceeded { rollout_id: f.rollout }), "{pass:?}");
    let view = f.view().await;
    assert_eq!(view.rollout.state, RolloutState::Succeeded);
    assert_eq!((view.machines.succeeded, view.machines.healthy), (2, 2));
}

#[tokio::test]
async fn a_failed_install_over_the_threshold_halts_the_rollout_with_a_reason() {
    let f = fleet(2).await;
    let (_, first) = f.machines[0].clone();
    f.state.clock.set(w1());
    f.tick().await;
    let job = f.app.claim(&first).await;
    f.app.report(&first, &job, "failed", json!({"error": "install failed: 0x80070643"})).await.ok(200);
    let pass = f.tick().await;
    let [BatchEvent::BatchHalted { reason, .. }] = pass.events.as_slice() else { panic!("{pass:?}") };
    assert!(reason.contains("1 of 1"), "{reason}");
    let view = f.view().await;
    assert_eq!(view.rollout.state, RolloutState::Halted);
    assert_eq!(view.rollout.halted_reason.as_deref(), Some(reason.as_str()));
    f.state.clock.set(w1() + TimeDelta::days(1));
    assert_eq!(
        f.tick().await.enqueued.len(),
        0,
        "a halted rollout starts nothing, not even in the next window"
    );
}

#[tokio::test]
async fn an_install_not_claimed_in_its_window_is_canceled_and_moved_to_the_next_window() {
    let f = fleet(1).await;
    let (machine, agent) = f.machines[0].clone();
    f.state.clock.set(w1());
    assert_eq!(f.tick().await.enqueued.len(), 1);
    // The agent is away until the window has closed.
    f.state.clock.set(w1() + TimeDelta::hours(4));
    let pass = f.tick().await;
    assert_eq!((pass.rescheduled.len(), pass.enqueued.len()), (1, 0), "{pass:?}");
    f.app.claim_nothing(&agent).await;
    let mine = rollouts::machine_rollout(&f.state.pool, machine.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(mine.window_start, w1() + TimeDelta::days(1), "the next daily window");
    assert_eq!(mine.attempts, 2);
    let status = f.app.get(&format!("/v1/machines/{machine}/patch-status"), ADMIN).await.ok(200).clone();
    assert_eq!(status["rollout"]["id"], f.rollout.to_string(), "{status}");
    assert_eq!(
        (&status["rollout"]["state"], &status["rollout"]["install_state"]),
        (&json!("running"), &json!("pending"))
    );
    assert_eq!(
        instant(&status["rollout"]["window_start"]),
        mine.window_start,
        "patch status shows the planned window"
    );
    assert_eq!(status["rollout"]["windows_tried"], 2);
    f.state.clock.set(mine.window_start);
    assert_eq!(f.tick().await.enqueued.len(), 1, "retried in the next window");
    assert_install_of_the_rollout(&f.app.claim(&agent).await, f.rollout);
}

#[tokio::test]
async fn after_the_clock_skipped_weeks_a_missed_machine_installs_in_the_window_in_progress_in_one_step() {
    let f = fleet(1).await;
    let (machine, agent) = f.machines[0].clone();
    assert_eq!(f.tick().await.opened.len(), 1, "the batch opens before its window");
    // The service was away for three weeks (or its clock moved): it is back an hour into a window.
    let window = w1() + TimeDelta::days(21);
    f.state.clock.set(window + TimeDelta::hours(1));
    let pass = f.tick().await;
    assert_eq!(pass.rescheduled.len(), 1, "{pass:?}");
    let mine = rollouts::machine_rollout(&f.state.pool, machine.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(
        (mine.window_start, mine.window_end),
        (window, window + TimeDelta::hours(4)),
        "the window in progress, not tomorrow's nor one of the weeks gone by"
    );
    let detail = f.app.get(&format!("/v1/rollouts/{}", f.rollout), ADMIN).await.ok(200).clone();
    assert_eq!(instant(&detail["next_install_at"]), window + TimeDelta::hours(1), "now, not in the past");
    assert_eq!(f.tick().await.enqueued.len(), 1, "it installs in this window");
    assert_install_of_the_rollout(&f.app.claim(&agent).await, f.rollout);

    // With less than an hour of the window left, the next one.
    let f = fleet(1).await;
    let (machine, _) = f.machines[0].clone();
    f.tick().await;
    f.state.clock.set(window + TimeDelta::hours(3) + TimeDelta::minutes(30));
    assert_eq!(f.tick().await.rescheduled.len(), 1);
    let mine = rollouts::machine_rollout(&f.state.pool, machine.parse().unwrap()).await.unwrap().unwrap();
    assert_eq!(mine.window_start, window + TimeDelta::days(1));
}
