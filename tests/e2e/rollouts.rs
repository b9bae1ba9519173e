//! Rollouts end to end: `hotpatchd` with a movable clock (`HOTPATCH_CLOCK_CONTROL`) and
//! `hotpatch-agent simulate` running 510 machines over three regions (two of them geo-paired),
//! availability zones and availability sets, in six time zones. The test moves the service clock
//! to the next maintenance window whenever nothing is running, so a rollout that takes weeks of
//! windows runs in seconds. One fleet goes through a year's first quarter:
//! 1. the January baseline: every machine reboots exactly once;
//! 2. the February hotpatch: no machine reboots;
//! 3. the March hotpatch with 30% of installs failing: the rollout halts in its first wave (the
//!    canary region), nothing reaches the other waves; with the failures fixed, `resume` finishes it;
//! 4. the April baseline, canceled once its first batch runs: no job is enqueued after that.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_e2e::{random_token, AgentProcess, Server};
use serde_json::{json, Value};
use sqlx::PgPool;
use uuid::Uuid;

const MACHINES: i64 = 510;
const PREFIX: &str = "ro";

/// A server with a movable clock, its admin token and its database (the command agent's test
/// uses it too).
pub(crate) struct Env {
    pub(crate) server: Server,
    pub(crate) token: String,
    pub(crate) pool: PgPool,
}

impl Env {
    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.server.http().request(method, self.server.url(path)).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("a response");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn ok(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        want: u16,
    ) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert_eq!(status, want, "{path}: {body}");
        body
    }

    pub(crate) async fn now(&self) -> DateTime<Utc> {
        let clock = self.ok(reqwest::Method::GET, "/v1/admin/clock", None, 200).await;
        clock["now"].as_str().and_then(|t| t.parse().ok()).expect("the clock's now")
    }

    pub(crate) async fn set_clock(&self, at: DateTime<Utc>) {
        let body = json!({ "now": at });
        let clock = self.ok(reqwest::Method::PUT, "/v1/admin/clock", Some(body), 200).await;
        assert_eq!(clock["controllable"], true);
    }

    /// Publishes a Windows Server 2022 release of `month`, released on the 14th; the clock is
    /// moved to the release first when it is behind.
    pub(crate) async fn publish(&self, kind: &str, month: &str, kb: &str, build: &str) -> String {
        let released: DateTime<Utc> = format!("{month}-14T18:00:00Z").parse().unwrap();
        if self.now().await < released {
            self.set_clock(released + TimeDelta::hours(1)).await;
        }
        let spec = json!({ "os": "windows_server_2022", "kind": kind, "planned": true, "month": month,
            "kb": kb, "build": build, "released_at": released });
        let release = self.ok(reqwest::Method::POST, "/v1/releases", Some(spec), 201).await;
        assert!(release.get("automatic_rollout_id").is_none(), "automatic rollouts are off here: {release}");
        release["id"].as_str().unwrap().to_owned()
    }

    /// Starts the rollout of `release` to the simulated fleet: northeurope is the canary wave,
    /// machines outside sets go a zone at a time, sets an update domain at a time.
    async fn start_rollout(&self, release: &str) -> String {
        let body = json!({ "release_id": release, "selector": { "labels": { "sim": PREFIX } },
            "options": { "max_batch_percent": 100, "region_order": ["northeurope"] } });
        let rollout = self.ok(reqwest::Method::POST, "/v1/rollouts", Some(body), 201).await;
        assert_eq!(rollout["machine_count"], MACHINES, "every simulated machine is planned: {rollout}");
        let waves = rollout["waves"].as_array().unwrap();
        assert_eq!(waves.len(), 3, "canary, then eastus and westus apart (geo-paired): {rollout}");
        assert_eq!(waves[0]["regions"], json!(["northeurope"]), "{rollout}");
        rollout["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn rollout(&self, id: &str) -> Value {
        self.ok(reqwest::Method::GET, &format!("/v1/rollouts/{id}"), None, 200).await
    }

    /// Runs the rollout until `done` holds: whenever no install is queued or running and a machine
    /// of an open batch waits for its window, the clock moves into that window. Panics when the
    /// rollout ends otherwise or `done` does not come within `timeout`.
    pub(crate) async fn drive(&self, id: &str, timeout: Duration, done: impl Fn(&Value) -> bool) -> Value {
        let started = Instant::now();
        loop {
            let r = self.rollout(id).await;
            if done(&r) {
                return r;
            }
            let state = r["state"].as_str().unwrap_or_default();
            assert!(!["succeeded", "canceled", "halted"].contains(&state), "rollout ended {state}: {r}");
            assert!(started.elapsed() < timeout, "rollout not done within {timeout:?}: {r}");
            let next: Option<DateTime<Utc>> = r["next_install_at"].as_str().and_then(|t| t.parse().ok());
            if let (0, Some(next)) = (r["counts"]["queued"].as_i64().unwrap_or(-1), next) {
                if next > self.now().await {
                    // A minute in: windows are a day long, so the machine has the rest of it.
                    self.set_clock(next + TimeDelta::minutes(1)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Per machine of the rollout: (succeeded install jobs, of those that rebooted).
    async fn installs(&self, rollout: &str) -> Vec<(i64, i64)> {
        sqlx::query_as(
            "select count(*) filter (where state = 'succeeded'),
                    count(*) filter (where state = 'succeeded' and (result->>'rebooted')::boolean)
             from job where rollout_id = $1 and kind = 'install' group by machine_id",
        )
        .bind(rollout.parse::<Uuid>().unwrap())
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }

    async fn jobs_of(&self, rollout: &str) -> i64 {
        sqlx::query_scalar("select count(*) from job where rollout_id = $1")
            .bind(rollout.parse::<Uuid>().unwrap())
            .fetch_one(&self.pool)
            .await
            .unwrap()
    }
}

fn simulate(base: &str, token: &str, fail_rate: &str) -> AgentProcess {
    AgentProcess::start(&[
        "simulate",
        "--server",
        base,
        "--token",
        token,
        "--machines",
        &MACHINES.to_string(),
        "--prefix",
        PREFIX,
        "--regions",
        "northeurope,eastus,westus",
        "--job-duration-ms",
        "20",
        "--reboot-ms",
        "50",
        "--wait",
        "30",
        "--fail-rate",
        fail_rate,
        "--seed",
        "7",
    ])
}

fn succeeded(r: &Value) -> bool {
    r["state"] == "succeeded"
}

#[tokio::test]
async fn a_quarter_of_rollouts_over_510_simulated_machines_with_a_movable_clock() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let server = hotpatch_e2e::Launch::new(dir.path())
        .database_url(&db.url)
        .admin_token(&token)
        .env("HOTPATCH_CLOCK_CONTROL", "true")
        .env("HOTPATCH_AUTOMATIC_ROLLOUTS", "false")
        .env("HOTPATCH_DISPATCH_INTERVAL_MS", "100")
        // A whole-day window: every machine of a batch is in its window a minute after the
        // earliest one opens, whatever its time zone.
        .env("HOTPATCH_OFF_PEAK_MINUTES", "1440")
        .env("HOTPATCH_ASSESSMENT_INTERVAL_SECS", "604800")
        .start()
        .await;
    let env = Env { server, token, pool: db.pool.clone() };
    env.set_clock("2027-01-10T12:00:00Z".parse().unwrap()).await;
    let base = env.server.url("");
    let ready = format!("simulate: ready {MACHINES} machines");
    let mut fleet = simulate(&base, &env.token, "0");
    fleet.wait_for(&ready, Duration::from_secs(180)).await;

    // 1. The January baseline: one reboot per machine.
    let january = env.publish("baseline", "2027-01", "KB5100001", "20348.3091").await;
    let rollout = env.start_rollout(&january).await;
    let done = env.drive(&rollout, Duration::from_secs(240), succeeded).await;
    assert_eq!(done["counts"]["succeeded"], MACHINES, "{done}");
    assert_eq!(done["counts"]["healthy"], MACHINES, "{done}");
    let installs = env.installs(&rollout).await;
    assert_eq!(installs.len() as i64, MACHINES, "an install on every machine");
    assert!(installs.iter().all(|&i| i == (1, 1)), "one install and one reboot per machine: {installs:?}");

    // The inventory sent after each install moved every machine to the baseline.
    let (_, machines) =
        env.call(reqwest::Method::GET, &format!("/v1/machines?label=sim:{PREFIX}&limit=5"), None).await;
    for m in machines["items"].as_array().unwrap() {
        let ps = env
            .ok(
                reqwest::Method::GET,
                &format!("/v1/machines/{}/patch-status", m["id"].as_str().unwrap()),
                None,
                200,
            )
            .await;
        assert_eq!(ps["current_baseline"]["kb"], "KB5100001", "{ps}");
        assert_eq!(ps["os_build"], "20348.3091", "rebooted into the baseline's build: {ps}");
        assert_eq!(ps["rollout"], Value::Null, "the rollout is over: {ps}");
    }

    // 2. The February hotpatch: nobody reboots.
    let february = env.publish("hotpatch", "2027-02", "KB5100002", "20348.3120").await;
    let rollout = env.start_rollout(&february).await;
    let done = env.drive(&rollout, Duration::from_secs(240), succeeded).await;
    assert_eq!(done["counts"]["succeeded"], MACHINES, "{done}");
    let installs = env.installs(&rollout).await;
    assert_eq!(installs.len() as i64, MACHINES);
    assert!(installs.iter().all(|&i| i == (1, 0)), "one install and no reboot per machine: {installs:?}");

    // 3. The March hotpatch while 30% of installs fail: halted in the canary wave.
    fleet.terminate().await;
    let mut fleet = simulate(&base, &env.token, "0.3");
    fleet.wait_for(&ready, Duration::from_secs(180)).await;
    let march = env.publish("hotpatch", "2027-03", "KB5100003", "20348.3150").await;
    let rollout = env.start_rollout(&march).await;
    let halted = env.drive(&rollout, Duration::from_secs(240), |r| r["state"] == "halted").await;
    assert!(halted["halted_reason"].as_str().is_some_and(|r| !r.is_empty()), "{halted}");
    let waves = halted["waves"].as_array().unwrap();
    assert!(waves[0]["counts"]["failed"].as_i64().unwrap() > 0, "{halted}");
    for later in &waves[1..] {
        let c = &later["counts"];
        assert_eq!(c["pending"], c["total"], "nothing reached the later waves: {halted}");
    }
    let before = env.jobs_of(&rollout).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.jobs_of(&rollout).await, before, "a halted rollout enqueues nothing");

    // Fixed: the machines install again; resume goes on to the end.
    fleet.terminate().await;
    let mut fleet = simulate(&base, &env.token, "0");
    fleet.wait_for(&ready, Duration::from_secs(180)).await;
    env.ok(reqwest::Method::POST, &format!("/v1/rollouts/{rollout}/resume"), Some(json!({})), 200).await;
    let done = env.drive(&rollout, Duration::from_secs(240), succeeded).await;
    assert_eq!(done["counts"]["succeeded"], MACHINES, "{done}");
    let installs = env.installs(&rollout).await;
    assert!(installs.iter().all(|&(ok, rebooted)| ok == 1 && rebooted == 0), "{installs:?}");

    // 4. The April baseline, canceled while its first batch installs: no new job after that.
    let april = env.publish("baseline", "2027-04", "KB5100004", "20348.3200").await;
    let rollout = env.start_rollout(&april).await;
    let running =
        env.drive(&rollout, Duration::from_secs(120), |r| r["counts"]["succeeded"].as_i64() > Some(0)).await;
    assert!(running["counts"]["pending"].as_i64() > Some(0), "{running}");
    let canceled =
        env.ok(reqwest::Method::POST, &format!("/v1/rollouts/{rollout}/cancel"), Some(json!({})), 200).await;
    assert_eq!(canceled["state"], "canceled", "{canceled}");
    let jobs = env.jobs_of(&rollout).await;
    // Later windows come and go: still no job.
    let now = env.now().await;
    for day in 1..=3 {
        env.set_clock(now + TimeDelta::days(day)).await;
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    assert_eq!(env.jobs_of(&rollout).await, jobs, "a canceled rollout enqueues nothing");
    let queued: i64 =
        sqlx::query_scalar("select count(*) from job where rollout_id = $1 and state = 'queued'")
            .bind(rollout.parse::<Uuid>().unwrap())
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(queued, 0, "its queued jobs were canceled");
    // Only the installs agents held at the cancel ran to their end.
    let after = env.rollout(&rollout).await;
    let ended =
        |r: &Value| r["counts"]["succeeded"].as_i64().unwrap() + r["counts"]["failed"].as_i64().unwrap();
    let in_flight = canceled["counts"]["queued"].as_i64().unwrap();
    assert!(ended(&after) <= ended(&canceled) + in_flight, "{after}");
    assert_eq!(after["counts"]["canceled"].as_i64().unwrap() + ended(&after), MACHINES, "{after}");

    let (status, _) = fleet.terminate().await;
    assert!(status.is_some_and(|s| s.success()), "the simulator did not stop cleanly");
}
