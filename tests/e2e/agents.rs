//! The dispatch path end to end: `hotpatchd` and `hotpatch-agent` processes talking HTTP,
//! PostgreSQL's queue and LISTEN/NOTIFY between them.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotpatch_e2e::{random_token, start_fresh, AgentProcess, Launch, Server, Started};
use serde_json::{json, Value};

use crate::register;

async fn send(_: &Server, token: &str, req: reqwest::RequestBuilder) -> (u16, Value) {
    let response = req.bearer_auth(token).send().await.expect("a response");
    let status = response.status().as_u16();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// `hotpatch-agent run` for one machine whose jobs take `job_ms` milliseconds, keeping its
/// spool and finished-job record in `state_dir`.
fn agent(base: &str, token: &str, job_ms: &str, state_dir: &Path) -> AgentProcess {
    let state_dir = state_dir.to_str().expect("a UTF-8 temporary path");
    AgentProcess::start_with_env(
        &[
            "run",
            "--executor",
            "simulated",
            "--server",
            base,
            "--job-duration-ms",
            job_ms,
            "--wait",
            "5",
            "--state-dir",
            state_dir,
        ],
        &[("HOTPATCH_AGENT_TOKEN", token)],
    )
}

/// Polls the operation with `?wait=30` until it is over; panics after `timeout`.
async fn wait_for_operation(server: &Server, token: &str, id: &str, timeout: Duration) -> Value {
    let started = std::time::Instant::now();
    loop {
        let url = server.url(&format!("/v1/operations/{id}?wait=30"));
        let (status, op) = send(server, token, server.http().get(url)).await;
        assert_eq!(status, 200, "{op}");
        if ["succeeded", "failed", "canceled"].contains(&op["status"].as_str().unwrap_or_default()) {
            return op;
        }
        assert!(started.elapsed() < timeout, "operation not finished within {timeout:?}: {op}");
    }
}

#[tokio::test]
async fn assess_now_for_a_simulated_fleet_of_200_returns_fresh_assessments() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let server = Launch::new(dir.path()).database_url(&db.url).admin_token(&token).start().await;
    let base = server.url("");
    let mut fleet = AgentProcess::start(&[
        "simulate",
        "--server",
        &base,
        "--token",
        &token,
        "--machines",
        "200",
        "--prefix",
        "e2e",
        "--job-duration-ms",
        "50",
    ]);
    fleet.wait_for("simulate: ready 200 machines", Duration::from_secs(120)).await;

    let asked_at: DateTime<Utc> = Utc::now();
    let key = format!("ci-run-{}", random_token());
    let selector = json!({ "labels": { "sim": "e2e" } });
    let assess =
        || server.http().post(server.url("/v1/assessments")).header("Idempotency-Key", &key).json(&selector);
    let (status, op) = send(&server, &token, assess()).await;
    assert_eq!(status, 202, "{op}");
    assert_eq!(op["machines"]["total"], 200, "{op}");
    // A retry of the same request (a CI job restarted) gets the same operation.
    let (status, again) = send(&server, &token, assess()).await;
    assert_eq!(status, 202, "{again}");
    assert_eq!(again["id"], op["id"]);

    let id = op["id"].as_str().expect("an operation id");
    let done = wait_for_operation(&server, &token, id, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["machines"]["succeeded"], 200, "{done}");

    let (status, list) =
        send(&server, &token, server.http().get(server.url("/v1/machines?label=sim:e2e&limit=1000"))).await;
    assert_eq!(status, 200, "{list}");
    let ids: Vec<&str> =
        list["items"].as_array().expect("items").iter().filter_map(|m| m["id"].as_str()).collect();
    assert_eq!(ids.len(), 200);
    for machine in ids {
        let url = server.url(&format!("/v1/machines/{machine}/patch-status"));
        let (status, ps) = send(&server, &token, server.http().get(url)).await;
        assert_eq!(status, 200, "{ps}");
        let assessed: DateTime<Utc> = ps["last_assessment_at"]
            .as_str()
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no last_assessment_at: {ps}"));
        // The server and this test read the same clock; a second of slack for rounding.
        assert!(
            assessed >= asked_at - chrono::TimeDelta::seconds(1),
            "{machine}: stale assessment {assessed} < {asked_at}"
        );
        assert_eq!(ps["agent"]["connected"], true, "{ps}");
        assert!(ps["os_build"].is_string(), "{ps}");
    }
    let (status, _) = fleet.terminate().await;
    assert!(status.is_some_and(|s| s.success()), "the simulator did not stop cleanly on SIGTERM");
}

#[tokio::test]
async fn a_job_whose_agent_is_killed_is_re_leased_after_expiry_and_finishes_once() {
    let Started { server, token, dir: _dir, db: _db } = start_fresh(&[("HOTPATCH_LEASE_SECS", "5")]).await;
    let machine = register(&server, &token, "crashy-1").await;
    let (status, agent_token) =
        send(&server, &token, server.http().post(server.url(&format!("/v1/machines/{machine}/agent-token"))))
            .await;
    assert_eq!(status, 201, "{agent_token}");
    let agent_token = agent_token["token"].as_str().expect("a token").to_owned();
    let base = server.url("");

    // An agent whose jobs take a minute: it will be killed holding the lease. The fresh agent
    // restarts on the same state directory (the lock dies with the process).
    let state = tempfile::tempdir().expect("a temporary state directory");
    let slow = agent(&base, &agent_token, "60000", state.path());
    let url = server.url(&format!("/v1/machines/{machine}/assess"));
    let (status, op) = send(&server, &token, server.http().post(url)).await;
    assert_eq!(status, 202, "{op}");
    // The machine's first periodic assessment is due 0–5 minutes after its token was issued, so
    // it may show up in the history too; the operation's job is the one under test.
    let job_id = op["results"][0]["job_id"].clone();
    assert!(job_id.is_string(), "{op}");
    let history = server.url(&format!("/v1/machines/{machine}/update-history"));
    let started = std::time::Instant::now();
    loop {
        let (_, h) = send(&server, &token, server.http().get(&history)).await;
        let ours = h["items"].as_array().into_iter().flatten().find(|j| j["job_id"] == job_id);
        if ours.is_some_and(|j| j["state"] == "leased") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "the job was never claimed: {h}\n{}",
            slow.output()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    slow.kill().await;

    // A fresh agent for the same machine picks the job up once the dead one's lease expires.
    let fresh = agent(&base, &agent_token, "100", state.path());
    let id = op["id"].as_str().expect("an operation id");
    let done = wait_for_operation(&server, &token, id, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "succeeded", "{done}\n{}", fresh.output());
    let (_, h) = send(&server, &token, server.http().get(&history)).await;
    let jobs: Vec<&Value> =
        h["items"].as_array().expect("items").iter().filter(|j| j["job_id"] == job_id).collect();
    assert_eq!(jobs.len(), 1, "one job, run once to completion: {h}");
    assert_eq!(jobs[0]["state"], "succeeded", "{h}");
    assert_eq!(jobs[0]["attempt"], 2, "the second lease finished it: {h}");
    drop(fresh);
}
