//! The real agent end to end: `hotpatchd` and `hotpatch-agent run --executor command` running
//! the contract's test programs (`crates/agent/tests/programs/`). A fake Windows machine
//! (`fake-windows.py`, its state in a file) is assessed, takes a hotpatch now (no reboot), takes
//! a baseline through a rollout (a restart across the agent's own restart: the test writes a new
//! boot marker and starts the agent again, as a machine's restart would) and is rolled back; its
//! patch status follows. Each way a program breaks the contract fails its job, and no job is
//! left leased past its lease.

// Test helpers: a panic is the failure report.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotpatch_e2e::{random_token, AgentProcess, Launch};
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::register;
use crate::rollouts::Env;

fn program(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/agent/tests/programs").join(name)
}

/// A fake machine's files: its state, its boot marker, the agent's state directory.
struct FakeMachine {
    dir: tempfile::TempDir,
}

impl FakeMachine {
    fn new(state: Value) -> FakeMachine {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("machine.json"), state.to_string()).unwrap();
        std::fs::write(dir.path().join("boot"), "boot-1").unwrap();
        FakeMachine { dir }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// The machine restarts: a new boot marker (the agent is killed by the caller).
    fn restart(&self, n: u32) {
        std::fs::write(self.dir.path().join("boot"), format!("boot-{n}")).unwrap();
    }

    /// `hotpatch-agent run --executor command` for this machine, running `program`.
    fn agent(&self, base: &str, token: &str, program_name: &str, extra: &[&str]) -> AgentProcess {
        let program = program(program_name).display().to_string();
        let (state_dir, boot) = (self.path("agent"), self.path("boot"));
        let mut args = vec![
            "run",
            "--executor",
            "command",
            "--program",
            &program,
            "--server",
            base,
            "--state-dir",
            &state_dir,
            "--boot-marker",
            &boot,
            "--wait",
            "5",
        ];
        args.extend_from_slice(extra);
        let (machine, log) = (self.path("machine.json"), self.path("fake.log"));
        AgentProcess::start_with_env(
            &args,
            &[
                ("HOTPATCH_AGENT_TOKEN", token),
                ("FAKE_MACHINE", &machine),
                ("FAKE_BOOT_FILE", &boot),
                ("FAKE_LOG", &log),
                ("FAKE_TODAY", "2027-01-20"),
            ],
        )
    }
}

async fn start_server(dir: &Path, db_url: &str) -> Env {
    let token = random_token();
    let server = Launch::new(dir)
        .database_url(db_url)
        .admin_token(&token)
        .env("HOTPATCH_CLOCK_CONTROL", "true")
        .env("HOTPATCH_AUTOMATIC_ROLLOUTS", "false")
        .env("HOTPATCH_DISPATCH_INTERVAL_MS", "100")
        .env("HOTPATCH_OFF_PEAK_MINUTES", "1440")
        .env("HOTPATCH_ASSESSMENT_INTERVAL_SECS", "604800")
        .start()
        .await;
    let pool = sqlx::PgPool::connect(db_url).await.unwrap();
    Env { server, token, pool }
}

impl Env {
    async fn agent_token(&self, machine: &str) -> String {
        let path = format!("/v1/machines/{machine}/agent-token");
        let body = self.ok(Method::POST, &path, None, 201).await;
        body["token"].as_str().unwrap().to_owned()
    }

    /// Waits (long polls) until the operation `id` is over.
    async fn finished(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let op = self.ok(Method::GET, &format!("/v1/operations/{id}?wait=30"), None, 200).await;
            if ["succeeded", "failed", "canceled"].contains(&op["status"].as_str().unwrap_or_default()) {
                return op;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "operation not over: {op}");
        }
    }

    async fn patch_status(&self, machine: &str) -> Value {
        self.ok(Method::GET, &format!("/v1/machines/{machine}/patch-status"), None, 200).await
    }

    /// The jobs of a machine, oldest first.
    async fn jobs(&self, machine: &str) -> Vec<Job> {
        sqlx::query_as(
            "select kind, state, attempt, result, error from job where machine_id = $1 order by id",
        )
        .bind(machine.parse::<Uuid>().unwrap())
        .fetch_all(&self.pool)
        .await
        .unwrap()
    }
}

/// A job as the database has it: kind, state, attempt, result, error.
type Job = (String, String, i32, Option<Value>, Option<String>);

/// Waits until the machine's latest job of `kind` is in `state`.
async fn until_job(env: &Env, machine: &str, kind: &str, state: &str) -> Job {
    let started = Instant::now();
    loop {
        let jobs = env.jobs(machine).await;
        if let Some(job) = jobs.iter().rev().find(|j| j.0 == kind && j.1 == state) {
            return job.clone();
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no {kind} job {state}: {jobs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A Windows Server 2022 machine on the October 2026 baseline, offered the November hotpatch
/// and the January baseline.
fn october_machine() -> Value {
    json!({
        "os_build": "20348.3000",
        "installed_updates": [{"kb": "KB5090001", "title": "2026-10 Cumulative Update (KB5090001)",
            "classification": "security", "installed_on": "2026-10-15", "installed_by": "windows_update"}],
        "available_updates": [
            {"kb": "KB5090002", "title": "2026-11 Hotpatch (KB5090002)", "classification": "security", "requires_reboot": false},
            {"kb": "KB5100001", "title": "2027-01 Cumulative Update (KB5100001)", "classification": "security", "requires_reboot": true}],
        "boot_seen": "boot-1"
    })
}

#[tokio::test]
async fn a_machine_driven_by_its_program_is_assessed_hotpatched_rebooted_into_a_baseline_and_rolled_back() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let env = start_server(dir.path(), &db.url).await;
    env.set_clock("2026-10-10T12:00:00Z".parse().unwrap()).await;
    env.publish("baseline", "2026-10", "KB5090001", "20348.3000").await;
    let november = env.publish("hotpatch", "2026-11", "KB5090002", "20348.3030").await;
    let machine = register(&env.server, &env.token, "fake-1").await;
    let fake = FakeMachine::new(october_machine());
    let token = env.agent_token(&machine).await;
    let base = env.server.url("");
    let mut agent = fake.agent(&base, &token, "fake-windows.py", &[]);
    agent.wait_for("agent started (command executor)", Duration::from_secs(30)).await;

    // Assess: the program's inventory places the machine on the October baseline.
    let op = env.ok(Method::POST, &format!("/v1/machines/{machine}/assess"), None, 202).await;
    let op = env.finished(op["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let ps = env.patch_status(&machine).await;
    assert_eq!(ps["current_baseline"]["kb"], "KB5090001", "{ps}");
    assert_eq!(ps["os_build"], "20348.3000", "{ps}");

    // Install now: the November hotpatch, no reboot.
    let body = json!({"classifications": [], "kb_include": ["KB5090002"], "reboot": "never"});
    let op = env.ok(Method::POST, &format!("/v1/machines/{machine}/install"), Some(body), 202).await;
    let op = env.finished(op["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, _, _, result, _) = until_job(&env, &machine, "install", "succeeded").await;
    let result = result.unwrap();
    assert_eq!(
        (result["rebooted"].clone(), result["installed"].clone()),
        (json!(false), json!(["KB5090002"]))
    );
    let ps = env.patch_status(&machine).await;
    assert_eq!(ps["latest_installed"]["id"], november.as_str(), "{ps}");
    assert_eq!(ps["reboot_pending"], false, "{ps}");

    // The January baseline through a rollout: the program schedules the restart; the machine
    // restarts (a new boot marker, the agent killed) and the agent, started again, reports it.
    let january = env.publish("baseline", "2027-01", "KB5100001", "20348.3091").await;
    let body = json!({"release_id": january, "selector": {"machine_ids": [machine]}});
    let rollout = env.ok(Method::POST, "/v1/rollouts", Some(body), 201).await;
    let rollout = rollout["id"].as_str().unwrap().to_owned();
    let waiting = "the job started a restart of the machine: waiting for it";
    let drive = env.drive(&rollout, Duration::from_secs(60), |_| agent.output().contains(waiting));
    drive.await;
    fake.restart(2);
    agent.kill().await;
    let mut agent = fake.agent(&base, &token, "fake-windows.py", &[]);
    agent.wait_for("the machine restarted as the job asked", Duration::from_secs(30)).await;
    let done = env.drive(&rollout, Duration::from_secs(60), |r| r["state"] == "succeeded").await;
    assert_eq!(
        (done["counts"]["succeeded"].clone(), done["counts"]["healthy"].clone()),
        (json!(1), json!(1))
    );
    let (_, _, attempt, result, _) = until_job(&env, &machine, "install", "succeeded").await;
    assert_eq!(attempt, 1, "the install ran once, across the restart");
    assert_eq!(result.unwrap()["rebooted"], true);
    let ps = env.patch_status(&machine).await;
    assert_eq!(ps["current_baseline"]["kb"], "KB5100001", "{ps}");
    assert_eq!(ps["os_build"], "20348.3091", "rebooted into the baseline's build: {ps}");
    assert_eq!(ps["reboot_pending"], false, "{ps}");
    let runs = std::fs::read_to_string(fake.path("fake.log")).unwrap();
    let installs = runs.lines().filter(|l| l.contains("\"kind\": \"install\"")).count();
    assert_eq!(installs, 2, "the hotpatch and the baseline, each run once: {runs}");

    // Roll back: the plan's reboot is another restart across the agent's.
    let op = env.ok(Method::POST, &format!("/v1/machines/{machine}/rollback"), None, 202).await;
    agent.wait_for(waiting, Duration::from_secs(60)).await;
    fake.restart(3);
    agent.kill().await;
    let agent = fake.agent(&base, &token, "fake-windows.py", &[]);
    let op = env.finished(op["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "succeeded", "{op}");
    let (_, _, _, result, _) = until_job(&env, &machine, "rollback", "succeeded").await;
    assert_eq!(result.unwrap()["rebooted"], true);
    let ps = env.patch_status(&machine).await;
    assert_eq!(ps["current_baseline"]["kb"], "KB5090001", "back on the October baseline: {ps}");
    assert_eq!(ps["os_build"], "20348.3000", "{ps}");
    assert_eq!(ps["health"]["status"], "healthy", "{ps}");
    agent.terminate().await;
}

#[tokio::test]
async fn every_way_a_program_breaks_the_contract_fails_its_job_and_leaves_no_lease_behind() {
    let dir = tempfile::tempdir().unwrap();
    let db = hotpatch_store::testing::fresh_db().await;
    let env = start_server(dir.path(), &db.url).await;
    let base = env.server.url("");
    let cases = [
        ("fail.sh", "0x80070643"),
        ("garbage.sh", "no JSON object"),
        ("hang.sh", "did not finish within 2s and was killed"),
        ("crash.sh", "signal: 11"),
        ("exit-nonzero.sh", "exit status: 3"),
    ];
    let mut running = Vec::new();
    for (i, (program, _)) in cases.iter().enumerate() {
        let machine = register(&env.server, &env.token, &format!("broken-{i}")).await;
        let fake = FakeMachine::new(october_machine());
        let token = env.agent_token(&machine).await;
        let agent = fake.agent(&base, &token, program, &["--job-timeout", "2"]);
        running.push((machine, fake, agent));
    }
    let ids: Vec<&str> = running.iter().map(|(m, _, _)| m.as_str()).collect();
    let op = env.ok(Method::POST, "/v1/assessments", Some(json!({"machine_ids": ids})), 202).await;
    let op = env.finished(op["id"].as_str().unwrap()).await;
    assert_eq!(op["status"], "failed", "{op}");
    for ((machine, _, _), (program, reason)) in running.iter().zip(cases) {
        // The operation's job, and any periodic assessment that came due meanwhile: each one
        // failed at once with the reason, never re-leased.
        let jobs = env.jobs(machine).await;
        assert!(!jobs.is_empty(), "{program}");
        for (_, state, attempt, _, error) in jobs.iter().filter(|j| j.1 != "queued") {
            assert_eq!((state.as_str(), *attempt), ("failed", 1), "{program}: ended at once: {jobs:?}");
            let error = error.as_deref().unwrap_or_default();
            assert!(error.contains(reason), "{program}: {error}");
        }
    }
    // A periodic assessment may be running now; none may be held past its lease.
    let leased: i64 =
        sqlx::query_scalar("select count(*) from job where state = 'leased' and lease_expires_at < now()")
            .fetch_one(&env.pool)
            .await
            .unwrap();
    assert_eq!(leased, 0);
}
