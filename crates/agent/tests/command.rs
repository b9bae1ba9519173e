//! The command executor against the contract's test programs (`tests/programs/`): each kind
//! runs the program with the job on stdin and reads its answer; each way a program can break
//! the contract is a failed job with the reason and the ends of its output.
#![allow(clippy::unwrap_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hotpatch_agent::boot::BootMarker;
use hotpatch_agent::executor::Executor;
use hotpatch_agent::{CommandConfig, CommandExecutor};
use hotpatch_domain::job::{ClaimedJob, HealthStatus, JobKind, Lease, Outcome};
use serde_json::{json, Value};
use uuid::Uuid;

fn programs() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/programs")
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/agent/fixtures")
}

fn job(kind: JobKind, payload: Value) -> ClaimedJob {
    ClaimedJob {
        id: Uuid::new_v4(),
        kind,
        machine_id: Uuid::new_v4(),
        attempt: 1,
        payload,
        lease: Lease { id: Uuid::new_v4(), expires_at: chrono::Utc::now() + chrono::TimeDelta::seconds(60) },
    }
}

/// A job from the shared fixtures (`deploy/agent/fixtures/jobs/<name>.json`).
fn fixture_job(name: &str) -> ClaimedJob {
    let text = std::fs::read_to_string(fixtures().join("jobs").join(format!("{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// An executor running `program` from `tests/programs`, its state directory in `dir`.
fn executor(program: &str, dir: &Path, timeout: Duration) -> CommandExecutor {
    CommandExecutor::new(CommandConfig {
        job_timeout: timeout,
        read_timeout: timeout,
        state_dir: Some(dir.to_owned()),
        ..CommandConfig::new(programs().join(program))
    })
}

/// A fake Windows machine (`fake-windows.py`) in `dir`: its state, boot file and log.
struct Fake {
    dir: tempfile::TempDir,
}

impl Fake {
    fn new() -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let state = json!({
            "os_build": "20348.2402",
            "installed_updates": [{"kb": "KB5037000", "installed_on": "2024-04-10", "installed_by": "windows_update"}],
            "available_updates": [
                {"kb": "KB5040001", "title": "2024-07 Cumulative Update (KB5040001)", "classification": "security", "requires_reboot": true},
                {"kb": "KB5040007", "title": "2024-05 Hotpatch (KB5040007)", "classification": "security", "requires_reboot": false}],
            "boot_seen": "boot-1"
        });
        std::fs::write(dir.path().join("machine.json"), state.to_string()).unwrap();
        std::fs::write(dir.path().join("boot"), "boot-1").unwrap();
        Fake { dir }
    }

    fn executor(&self) -> CommandExecutor {
        let path = |name: &str| self.dir.path().join(name).display().to_string();
        let env = [("FAKE_MACHINE", "machine.json"), ("FAKE_BOOT_FILE", "boot"), ("FAKE_LOG", "log.jsonl")];
        CommandExecutor::new(CommandConfig {
            env: env.iter().map(|(k, f)| (k.to_string(), path(f))).collect(),
            boot: BootMarker::File(self.dir.path().join("boot")),
            state_dir: Some(self.dir.path().join("program")),
            ..CommandConfig::new(programs().join("fake-windows.py"))
        })
    }

    fn log(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(self.dir.path().join("log.jsonl")).unwrap();
        text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
    }
}

#[tokio::test]
async fn each_kind_runs_the_program_with_the_job_on_stdin_and_reads_its_answer() {
    let fake = Fake::new();
    let mut exec = fake.executor();

    let assess = fixture_job("assess");
    let o = exec.run(&assess).await;
    assert_eq!(o.outcome, Outcome::Succeeded, "{o:?}");
    let inventory = o.inventory.unwrap();
    assert_eq!(inventory.os_build.to_string(), "20348.2402");
    assert_eq!(inventory.available_updates.len(), 2);

    let hotpatch = fixture_job("install-hotpatch");
    let o = exec.run(&hotpatch).await;
    assert_eq!((o.outcome, o.rebooted, o.awaits_restart), (Outcome::Succeeded, false, false), "{o:?}");
    assert_eq!(o.installed, ["KB5040007".parse().unwrap()]);
    assert_eq!(exec.inventory().await.unwrap().os_build.to_string(), "20348.2461", "a hotpatch, in place");

    let baseline = fixture_job("install-baseline-reboot");
    let o = exec.run(&baseline).await;
    assert!(o.rebooted && o.awaits_restart, "a restart the program scheduled is awaited: {o:?}");
    assert_eq!(exec.boot_marker().as_deref(), Some("boot-1"));
    std::fs::write(fake.dir.path().join("boot"), "boot-2").unwrap();
    assert_eq!(exec.boot_marker().as_deref(), Some("boot-2"));
    let after = exec.inventory().await.unwrap();
    assert_eq!(after.os_build.to_string(), "20348.2582", "the baseline's build after the restart");
    assert!(!after.reboot_pending);

    assert_eq!(exec.health().await.status, HealthStatus::Healthy);

    // What the program was given: the kind as its last argument and in the environment, the
    // job id, a deadline and a directory of its own.
    let log = fake.log();
    let install = log.iter().find(|l| l["kind"] == "install").unwrap();
    assert_eq!(install["job_id"], json!(hotpatch.id));
    assert_eq!(install["env"]["HOTPATCH_KIND"], "install");
    assert_eq!(install["env"]["HOTPATCH_JOB_ID"], json!(hotpatch.id));
    let deadline: chrono::DateTime<chrono::Utc> =
        install["env"]["HOTPATCH_DEADLINE"].as_str().unwrap().parse().unwrap();
    assert!(deadline > chrono::Utc::now());
    assert!(install["env"]["HOTPATCH_STATE_DIR"].as_str().unwrap().ends_with("program"));
    let reads: Vec<_> = log.iter().filter(|l| l["kind"] == "inventory").collect();
    assert!(reads.iter().all(|l| l["env"].get("HOTPATCH_JOB_ID").is_none()), "reads carry no job");
}

#[tokio::test]
async fn a_failure_the_program_reports_is_the_jobs_failure() {
    let dir = tempfile::tempdir().unwrap();
    let o =
        executor("fail.sh", dir.path(), Duration::from_secs(30)).run(&job(JobKind::Install, json!({}))).await;
    assert_eq!(o.outcome, Outcome::Failed);
    assert!(o.error.unwrap().contains("0x80070643"));
}

#[tokio::test]
async fn garbage_on_stdout_fails_the_job_with_the_output_kept() {
    let dir = tempfile::tempdir().unwrap();
    let o = executor("garbage.sh", dir.path(), Duration::from_secs(30))
        .run(&job(JobKind::Assess, json!({})))
        .await;
    assert_eq!(o.outcome, Outcome::Failed);
    let error = o.error.unwrap();
    assert!(error.contains("no JSON object"), "{error}");
    assert!(error.contains("--- stderr (end) ---") && error.contains("--- stdout (end) ---"), "{error}");
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_job_even_with_a_valid_answer() {
    let dir = tempfile::tempdir().unwrap();
    let o = executor("exit-nonzero.sh", dir.path(), Duration::from_secs(30))
        .run(&job(JobKind::Install, json!({})))
        .await;
    assert_eq!(o.outcome, Outcome::Failed);
    assert!(o.error.unwrap().contains("exit status: 3"));
}

#[tokio::test]
async fn a_crash_fails_the_job_with_its_signal() {
    let dir = tempfile::tempdir().unwrap();
    let o =
        executor("crash.sh", dir.path(), Duration::from_secs(30)).run(&job(JobKind::Reboot, json!({}))).await;
    assert_eq!(o.outcome, Outcome::Failed);
    let error = o.error.unwrap();
    assert!(error.contains("signal: 11"), "{error}");
    assert!(error.contains("segmentation fault ahead"), "stderr kept: {error}");
}

#[tokio::test]
async fn log_lines_before_the_answer_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let mut exec = executor("noisy.sh", dir.path(), Duration::from_secs(30));
    let o = exec.run(&job(JobKind::Assess, json!({}))).await;
    assert_eq!(o.outcome, Outcome::Succeeded, "{o:?}");
    assert!(o.inventory.is_some());
    assert_eq!(exec.health().await.status, HealthStatus::Healthy);
    assert_eq!(exec.inventory().await.unwrap().os_build.to_string(), "20348.2402");
}

/// Whether process `pid` is gone (or a zombie waiting to be reaped).
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

async fn killed_with_its_children(dir: &Path) {
    for file in ["hang.pid", "hang-child.pid"] {
        let pid = std::fs::read_to_string(dir.join(file)).unwrap();
        let pid = pid.trim();
        let started = Instant::now();
        while !gone(pid) {
            assert!(started.elapsed() < Duration::from_secs(10), "{file} {pid} still runs");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test]
async fn a_program_that_hangs_is_killed_at_the_deadline_with_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let o = executor("hang.sh", dir.path(), Duration::from_millis(1500))
        .run(&job(JobKind::Assess, json!({})))
        .await;
    assert_eq!(o.outcome, Outcome::Failed);
    let error = o.error.unwrap();
    assert!(error.contains("did not finish within 1s and was killed"), "{error}");
    assert!(error.contains("this will take a while"), "stderr kept: {error}");
    killed_with_its_children(dir.path()).await;
}

#[tokio::test]
async fn an_installs_maximum_duration_is_its_deadline() {
    let dir = tempfile::tempdir().unwrap();
    // The default limit is long; the payload's PT1S wins.
    let mut exec = executor("hang.sh", dir.path(), Duration::from_secs(3600));
    let install = job(JobKind::Install, json!({"maximum_duration": "PT1S"}));
    assert_eq!(exec.time_limit(&install), Duration::from_secs(1));
    let o = exec.run(&install).await;
    assert!(o.error.unwrap().contains("within 1s"));
    killed_with_its_children(dir.path()).await;
}

#[tokio::test]
async fn a_run_abandoned_midway_kills_the_program_and_its_children() {
    let dir = tempfile::tempdir().unwrap();
    let mut exec = executor("hang.sh", dir.path(), Duration::from_secs(3600));
    let assess = job(JobKind::Assess, json!({}));
    // A lost lease drops the run's future: the program must not live on.
    let abandoned = tokio::time::timeout(Duration::from_millis(800), exec.run(&assess)).await;
    assert!(abandoned.is_err());
    killed_with_its_children(dir.path()).await;
}

#[tokio::test]
async fn a_program_that_cannot_start_fails_the_job_and_an_unreadable_health_is_unhealthy() {
    let dir = tempfile::tempdir().unwrap();
    let mut exec = executor("no-such-program", dir.path(), Duration::from_secs(30));
    let o = exec.run(&job(JobKind::Assess, json!({}))).await;
    assert!(o.error.unwrap().contains("cannot start"));
    assert!(exec.inventory().await.unwrap_err().to_string().contains("cannot start"));
    let health = exec.health().await;
    assert_eq!(health.status, HealthStatus::Unhealthy);
    assert!(health.checks[0].detail.as_deref().unwrap().contains("cannot start"));
    let garbage = executor("garbage.sh", dir.path(), Duration::from_secs(30)).health().await;
    assert_eq!(garbage.status, HealthStatus::Unhealthy);
}

#[test]
fn the_shared_selection_fixtures_hold_for_the_linux_test_machine() {
    let out = std::process::Command::new(programs().join("check-selection.sh")).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
