//! The spool against a recording stand-in server: a finished job's result is delivered however
//! late, across an agent restart too, and a job whose work finished is never run again.
#![allow(clippy::unwrap_used, missing_docs)]

mod mock;

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use hotpatch_agent::client::http_client;
use hotpatch_agent::executor::{Executor, ExecutorError, JobOutcome};
use hotpatch_agent::{
    Agent, AgentClient, AgentConfig, AgentError, ExecutionLog, SimConfig, SimulatedMachine, Spool,
    SpoolError, Stats,
};
use hotpatch_domain::job::{ClaimedJob, Health, Inventory, JobKind, JobResult, Lease};
use mock::{Call, Mock};
use serde_json::Value;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// A simulated machine that notes every job it runs.
struct Counting {
    inner: SimulatedMachine,
    runs: Arc<Mutex<Vec<Uuid>>>,
}

impl Executor for Counting {
    async fn inventory(&mut self) -> Result<Inventory, ExecutorError> {
        self.inner.inventory().await
    }

    async fn run(&mut self, job: &ClaimedJob) -> JobOutcome {
        self.runs.lock().unwrap().push(job.id);
        self.inner.run(job).await
    }

    async fn health(&mut self) -> Health {
        self.inner.health().await
    }
}

struct Running {
    stats: Arc<Stats>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
}

/// An agent on the state directory `dir` against the mock at `base`; its jobs go into `runs`.
fn start(base: &str, dir: &Path, runs: &Arc<Mutex<Vec<Uuid>>>) -> Running {
    start_logged(base, dir, runs, None)
}

/// [`start`], noting finished jobs in `log` too.
fn start_logged(
    base: &str,
    dir: &Path,
    runs: &Arc<Mutex<Vec<Uuid>>>,
    execution_log: Option<ExecutionLog>,
) -> Running {
    let client = AgentClient::new(http_client().unwrap(), base, "agent-token");
    let sim =
        SimConfig { job_duration: Duration::ZERO, reboot_duration: Duration::ZERO, ..SimConfig::default() };
    let machine = Counting { inner: SimulatedMachine::new(sim), runs: runs.clone() };
    let stats = Arc::new(Stats::default());
    let config = AgentConfig { wait: Duration::from_secs(1), execution_log, ..AgentConfig::default() };
    let agent = Agent::new(client, machine, config, stats.clone(), Spool::open(dir).unwrap());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(agent.run(cancel.clone()));
    Running { stats, cancel, task }
}

impl Running {
    async fn stop(self) {
        self.cancel.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(3), self.task).await.expect("stops promptly");
        assert!(ended.unwrap().is_ok());
    }
}

/// Waits (at most 30 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..600 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn results(mock: &Mock) -> Vec<(Uuid, JobResult)> {
    mock.calls()
        .into_iter()
        .filter(|c| c.what == "result")
        .map(|c| {
            (
                serde_json::from_value(c.body["job"].clone()).unwrap(),
                serde_json::from_value(c.body["result"].clone()).unwrap(),
            )
        })
        .collect()
}

fn spooled(dir: &Path, job: Uuid) -> bool {
    dir.join("spool").join(format!("{job}.json")).exists()
}

fn reoffer(mock: &Mock, job: &ClaimedJob) -> Lease {
    let lease = Lease { id: Uuid::new_v4(), expires_at: Utc::now() + TimeDelta::seconds(30) };
    mock.jobs.lock().unwrap().push_back(ClaimedJob { lease, attempt: job.attempt + 1, ..job.clone() });
    lease
}

#[tokio::test]
async fn a_result_the_server_fails_for_a_while_is_retried_past_any_cap_and_the_job_runs_once() {
    let mock = Arc::new(Mock::default());
    // More failures than the old cap of five tries would have survived.
    mock.result_errors.lock().unwrap().extend([503, 503, 500, 429, 503]);
    let job = mock.push_job(JobKind::Install, Value::Null, TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::default();
    let run = start(&base, dir.path(), &runs);
    mock.wait_for("result").await;
    assert!(spooled(dir.path(), job.id), "kept on disk while undelivered");
    until("the result to be accepted", || run.stats.progress().done == 1).await;
    mock.wait_for("health").await;
    assert!(!spooled(dir.path(), job.id), "settled entries leave the spool");
    let sent = results(&mock);
    assert_eq!(sent.len(), 6);
    assert!(sent.iter().all(|(id, r)| *id == job.id && r.lease_id == job.lease.id && *r == sent[0].1));
    let whats: Vec<&str> = mock.whats().into_iter().filter(|w| !["claim", "heartbeat"].contains(w)).collect();
    assert_eq!(whats.first(), Some(&"inventory"), "the inventory once, before the result: {whats:?}");
    assert_eq!(whats.iter().filter(|w| **w == "inventory").count(), 1);
    assert_eq!(*runs.lock().unwrap(), [job.id]);
    run.stop().await;
}

#[tokio::test]
async fn a_result_left_by_a_stopped_agent_is_delivered_by_the_next_one_before_it_claims() {
    let mock = Arc::new(Mock::default());
    mock.fail_results.store(true, Ordering::Relaxed);
    let job = mock.push_job(JobKind::Assess, Value::Null, TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::default();
    let first = start(&base, dir.path(), &runs);
    mock.wait_for("result").await;
    first.stop().await;
    assert!(spooled(dir.path(), job.id));

    mock.fail_results.store(false, Ordering::Relaxed);
    let before = mock.calls().len();
    let second = start(&base, dir.path(), &runs);
    until("the spooled result to be accepted", || second.stats.progress().done == 1).await;
    let after: Vec<Call> = mock.calls().split_off(before);
    assert_eq!(after[0].what, "result", "drained before the first claim: {:?}", mock.whats());
    assert_eq!(after[0].body["result"]["lease_id"], serde_json::json!(job.lease.id));
    assert!(!after.iter().any(|c| c.what == "inventory"), "the inventory was delivered by the first agent");
    assert!(!spooled(dir.path(), job.id));
    assert_eq!(*runs.lock().unwrap(), [job.id], "the job ran once");
    second.stop().await;
}

#[tokio::test]
async fn a_job_offered_again_after_its_work_finished_is_reported_again_not_run() {
    let mock = Arc::new(Mock::default());
    // The report was late: the server re-queued the job and refuses the first lease.
    mock.result_errors.lock().unwrap().push_back(409);
    let job = mock.push_job(JobKind::Install, Value::Null, TimeDelta::seconds(30));
    let second_lease = reoffer(&mock, &job);
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let runs = Arc::default();
    let log_path = dir.path().join("executions.log");
    let log = ExecutionLog::open(&log_path).unwrap();
    let run = start_logged(&base, dir.path(), &runs, Some(log.clone()));
    until("the result under the new lease", || run.stats.progress().done == 1).await;
    let sent = results(&mock);
    assert_eq!(sent.iter().map(|(_, r)| r.lease_id).collect::<Vec<_>>(), [job.lease.id, second_lease.id]);
    assert_eq!(sent[1].1, JobResult { lease_id: second_lease.id, ..sent[0].1.clone() }, "the kept result");
    // The health goes after the accepted result too: a rollout counts only a report that comes
    // after the job ended.
    until("the health after the kept result", || {
        let whats: Vec<&str> =
            mock.whats().into_iter().filter(|w| !["claim", "heartbeat"].contains(w)).collect();
        whats.ends_with(&["result", "health"]) && whats.iter().filter(|w| **w == "result").count() == 2
    })
    .await;
    assert_eq!(run.stats.leases_lost.load(Ordering::Relaxed), 1);
    run.stop().await;

    // The record is on disk: a restarted agent offered the job once more does not run it either.
    let third_lease = reoffer(&mock, &job);
    let again = start_logged(&base, dir.path(), &runs, Some(log));
    until("the result under the third lease", || again.stats.progress().done == 1).await;
    assert_eq!(results(&mock).last().unwrap().1.lease_id, third_lease.id);
    assert_eq!(*runs.lock().unwrap(), [job.id], "the job ran once");
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert_eq!(logged, format!("{} install succeeded {}\n", job.id, job.attempt), "logged once");
    again.stop().await;
}

#[tokio::test]
async fn torn_and_garbage_state_files_are_set_aside_and_the_agent_works_on() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("spool")).unwrap();
    let torn = dir.path().join("spool").join(format!("{}.json", Uuid::new_v4()));
    std::fs::write(&torn, b"{\"format\": 1, \"job_id\": \"").unwrap();
    std::fs::write(dir.path().join("finished.json"), b"\x00\x01 not json").unwrap();
    let mock = Arc::new(Mock::default());
    let job = mock.push_job(JobKind::Assess, Value::Null, TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let runs = Arc::default();
    let run = start(&base, dir.path(), &runs);
    until("the job to be reported", || run.stats.progress().done == 1).await;
    assert!(!torn.exists());
    let mut aside = torn.into_os_string();
    aside.push(".corrupt");
    assert!(Path::new(&aside).exists(), "kept for a person to look at");
    assert_eq!(*runs.lock().unwrap(), [job.id]);
    run.stop().await;
}

#[test]
fn a_second_agent_on_a_state_directory_in_use_is_refused_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let _first = Spool::open(dir.path()).unwrap();
    let second = Spool::open(dir.path()).unwrap_err();
    assert!(matches!(second, SpoolError::Locked(_)), "{second:?}");
    let text = second.to_string();
    assert!(
        text.contains("in use by another agent") && text.contains(&dir.path().display().to_string()),
        "{text}"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hotpatch-agent"))
        .args(["run", "--executor", "simulated", "--server", "http://127.0.0.1:9", "--state-dir"])
        .arg(dir.path())
        .env("HOTPATCH_AGENT_TOKEN", "t")
        .env("HOTPATCH_LOG", "error")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("in use by another agent"), "{stderr}");
}
