//! The service side: `hotpatchd` on a fresh database with a movable clock and automatic rollouts
//! off, six simulated machines (`hotpatch-agent simulate`), and the API calls the test makes
//! behind the browser's back (publishing a release, a reader token, moving the clock).

use std::time::{Duration, Instant};

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_e2e::{start_fresh, AgentProcess, Started};
use reqwest::Method;
use serde_json::{json, Value};

/// Name prefix and `sim` label of the simulated machines.
pub const PREFIX: &str = "web";
const MACHINES: usize = 6;
/// The service clock's start: the day the January 2027 baseline comes out, after it.
const START: &str = "2027-01-14T19:00:00Z";

/// The running service and fleet.
pub struct Fleet {
    started: Started,
    agents: Option<AgentProcess>,
    /// The service's base URL.
    pub base: String,
    /// Its admin token.
    pub token: String,
}

impl Fleet {
    /// Starts the service, sets its clock and waits for the fleet to be registered and assessed.
    pub async fn start() -> Fleet {
        let started =
            start_fresh(&[("HOTPATCH_CLOCK_CONTROL", "true"), ("HOTPATCH_AUTOMATIC_ROLLOUTS", "false")])
                .await;
        let base = started.server.url("").trim_end_matches('/').to_owned();
        let token = started.token.clone();
        let mut fleet = Fleet { started, agents: None, base, token };
        fleet.set_clock(START.parse().unwrap()).await;
        let mut agents = AgentProcess::start(&[
            "simulate",
            "--server",
            &fleet.base,
            "--token",
            &fleet.token,
            "--machines",
            &MACHINES.to_string(),
            "--prefix",
            PREFIX,
            "--regions",
            "westeurope,eastus",
            "--job-duration-ms",
            "20",
            "--reboot-ms",
            "50",
            "--wait",
            "30",
            "--seed",
            "11",
        ]);
        agents.wait_for(&format!("simulate: ready {MACHINES} machines"), Duration::from_secs(120)).await;
        fleet.agents = Some(agents);
        fleet
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut req = self
            .started
            .server
            .http()
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let response = req.send().await.expect("an answer");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    async fn ok(&self, method: Method, path: &str, body: Option<Value>, want: u16) -> Value {
        let (status, body) = self.call(method, path, body).await;
        assert_eq!(status, want, "{path}: {body}");
        body
    }

    async fn now(&self) -> DateTime<Utc> {
        let clock = self.ok(Method::GET, "/v1/admin/clock", None, 200).await;
        clock["now"].as_str().and_then(|t| t.parse().ok()).expect("the clock's now")
    }

    async fn set_clock(&self, at: DateTime<Utc>) {
        self.ok(Method::PUT, "/v1/admin/clock", Some(json!({ "now": at })), 200).await;
    }

    /// Publishes the January 2027 baseline of Windows Server 2022; its id.
    pub async fn publish_baseline(&self) -> String {
        let spec = json!({ "os": "windows_server_2022", "kind": "baseline", "planned": true, "month": "2027-01",
            "kb": "KB5100001", "build": "20348.3091", "released_at": "2027-01-14T18:00:00Z" });
        let release = self.ok(Method::POST, "/v1/releases", Some(spec), 201).await;
        release["id"].as_str().unwrap().to_owned()
    }

    /// A new token of `role`.
    pub async fn token(&self, role: &str) -> String {
        let body = json!({ "name": format!("console {role}"), "role": role });
        self.ok(Method::POST, "/v1/tokens", Some(body), 201).await["token"].as_str().unwrap().to_owned()
    }

    /// The rollout's state.
    pub async fn rollout_state(&self, id: &str) -> String {
        let r = self.ok(Method::GET, &format!("/v1/rollouts/{id}"), None, 200).await;
        r["state"].as_str().unwrap_or_default().to_owned()
    }

    /// Moves the clock into the machines' windows until a batch of the rollout succeeded.
    pub async fn drive_until_a_batch_succeeds(&self, id: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            let r = self.ok(Method::GET, &format!("/v1/rollouts/{id}"), None, 200).await;
            let batches = r["waves"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|w| w["batches"].as_array().into_iter().flatten());
            if batches.clone().any(|b| b["state"] == "succeeded") {
                return;
            }
            assert!(
                started.elapsed() < timeout,
                "no batch succeeded within {timeout:?}: {r}\n{}",
                self.agents.as_ref().map(AgentProcess::output).unwrap_or_default()
            );
            let next: Option<DateTime<Utc>> = r["next_install_at"].as_str().and_then(|t| t.parse().ok());
            if let (0, Some(next)) = (r["counts"]["queued"].as_i64().unwrap_or(-1), next) {
                if next > self.now().await {
                    self.set_clock(next + TimeDelta::minutes(1)).await;
                }
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the fleet and the service.
    pub async fn stop(self) {
        if let Some(agents) = self.agents {
            agents.kill().await;
        }
        let (status, log) = self.started.server.terminate().await;
        assert!(status.success(), "hotpatchd exited {status}:\n{log}");
    }
}
