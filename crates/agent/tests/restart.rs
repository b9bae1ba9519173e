//! Jobs across a restart of the machine or of the agent, against a recording stand-in server:
//! a restart the job started is waited for with the lease kept and confirmed by the boot marker
//! at the agent's next start; a job an earlier run left in hand is reported, never run again.
#![allow(clippy::unwrap_used, missing_docs)]

mod mock;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::TimeDelta;
use hotpatch_agent::client::http_client;
use hotpatch_agent::executor::{Executor, ExecutorError, JobOutcome};
use hotpatch_agent::{Agent, AgentClient, AgentConfig, AgentError, Spool, Stats};
use hotpatch_domain::job::{ClaimedJob, Health, HealthStatus, Inventory, JobKind, JobResult, Outcome};
use mock::Mock;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

/// The machine as the test drives it: its boot marker, and what its executor does.
#[derive(Default)]
struct Machine {
    boot: Mutex<String>,
    runs: Mutex<Vec<Uuid>>,
    /// Runs block until this many runs were asked to (never, by default, when `hang`).
    hang: std::sync::atomic::AtomicBool,
}

impl Machine {
    fn restart(&self) {
        let mut boot = self.boot.lock().unwrap();
        *boot = format!("{}+", *boot);
    }

    fn runs(&self) -> Vec<Uuid> {
        self.runs.lock().unwrap().clone()
    }
}

/// An executor whose jobs start a restart of the machine (as a program answering
/// `"rebooted": true` does), or hang when the machine says so.
struct Restarting(Arc<Machine>);

impl Executor for Restarting {
    async fn inventory(&mut self) -> Result<Inventory, ExecutorError> {
        Ok(Inventory {
            os_build: "20348.2340".parse().unwrap(),
            reboot_pending: false,
            installed_updates: Vec::new(),
            available_updates: Vec::new(),
        })
    }

    async fn run(&mut self, job: &ClaimedJob) -> JobOutcome {
        self.0.runs.lock().unwrap().push(job.id);
        if self.0.hang.load(std::sync::atomic::Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
        JobOutcome {
            installed: vec!["KB5034439".parse().unwrap()],
            rebooted: true,
            awaits_restart: true,
            ..JobOutcome::succeeded(true)
        }
    }

    async fn health(&mut self) -> Health {
        Health { status: HealthStatus::Healthy, checks: Vec::new() }
    }

    fn boot_marker(&mut self) -> Option<String> {
        Some(self.0.boot.lock().unwrap().clone())
    }
}

struct Running {
    cancel: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
}

fn start(base: &str, dir: &Path, machine: &Arc<Machine>, restart_timeout: Duration) -> Running {
    let client = AgentClient::new(http_client().unwrap(), base, "agent-token");
    let config = AgentConfig {
        wait: Duration::from_secs(1),
        heartbeat_max: Duration::from_millis(100),
        restart_timeout,
        ..AgentConfig::default()
    };
    let agent = Agent::new(
        client,
        Restarting(machine.clone()),
        config,
        Arc::new(Stats::default()),
        Spool::open(dir).unwrap(),
    );
    let cancel = CancellationToken::new();
    let task = tokio::spawn(agent.run(cancel.clone()));
    Running { cancel, task }
}

impl Running {
    /// The agent dies where it stands (as a restart of the machine, or `kill -9`, ends it).
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }

    async fn stop(self) {
        self.cancel.cancel();
        let ended = tokio::time::timeout(Duration::from_secs(10), self.task).await.expect("stops promptly");
        assert!(ended.unwrap().is_ok());
    }
}

/// Waits (at most 20 s) until `done` holds.
async fn until(what: &str, done: impl Fn() -> bool) {
    for _ in 0..400 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

fn results(mock: &Mock) -> Vec<JobResult> {
    let calls = mock.calls().into_iter().filter(|c| c.what == "result");
    calls.map(|c| serde_json::from_value(c.body["result"].clone()).unwrap()).collect()
}

/// Offers `job` again under a new lease (as the server does once the old one expired).
fn reoffer(mock: &Mock, job: &ClaimedJob) -> hotpatch_domain::job::Lease {
    let lease = hotpatch_domain::job::Lease {
        id: Uuid::new_v4(),
        expires_at: chrono::Utc::now() + TimeDelta::seconds(30),
    };
    mock.jobs.lock().unwrap().push_back(ClaimedJob { lease, attempt: job.attempt + 1, ..job.clone() });
    lease
}

fn count(mock: &Mock, what: &str) -> usize {
    mock.calls().iter().filter(|c| c.what == what).count()
}

const LONG: Duration = Duration::from_secs(600);

/// An agent in the middle of a job of `kind` whose executor never answers: the moment a crash of
/// the agent or of the machine comes.
struct Hung {
    mock: Arc<Mock>,
    job: ClaimedJob,
    base: String,
    dir: tempfile::TempDir,
    machine: Arc<Machine>,
    agent: Running,
}

async fn hung(kind: JobKind) -> Hung {
    let mock = Arc::new(Mock::default());
    let job = mock.push_job(kind, json!({}), TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let machine = Arc::new(Machine::default());
    machine.hang.store(true, std::sync::atomic::Ordering::Relaxed);
    let agent = start(&base, dir.path(), &machine, LONG);
    until("the job to run", || machine.runs().len() == 1).await;
    Hung { mock, job, base, dir, machine, agent }
}

#[tokio::test]
async fn a_restart_the_job_started_is_reported_after_it_happened_and_the_job_is_not_run_again() {
    let mock = Arc::new(Mock::default());
    let job = mock.push_job(JobKind::Install, json!({"reboot": "if_required"}), TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let machine = Arc::new(Machine::default());
    let agent = start(&base, dir.path(), &machine, LONG);
    until("the job to run", || machine.runs().len() == 1).await;
    assert!(dir.path().join("in-hand.json").exists(), "the job in hand is on disk while it runs");
    // Waiting for the restart: the lease is kept, nothing is reported, nothing else is claimed.
    let claims = count(&mock, "claim");
    until("heartbeats while waiting", || count(&mock, "heartbeat") >= 3).await;
    assert!(results(&mock).is_empty(), "no result before the restart happened");
    assert_eq!(count(&mock, "claim"), claims, "no new job while the machine is about to restart");

    machine.restart();
    agent.kill().await;
    let agent = start(&base, dir.path(), &machine, LONG);
    mock.wait_for("result").await;
    mock.wait_for("health").await;
    let sent = results(&mock);
    assert_eq!(sent.len(), 1);
    let r = &sent[0];
    assert_eq!((r.lease_id, r.outcome), (job.lease.id, Outcome::Succeeded));
    assert_eq!((r.rebooted, r.reboot_pending), (Some(true), Some(false)));
    assert_eq!(r.installed, ["KB5034439".parse().unwrap()]);
    let reports: Vec<_> =
        mock.whats().into_iter().filter(|w| ["inventory", "result", "health"].contains(w)).collect();
    assert_eq!(reports, ["inventory", "result", "health"], "a fresh inventory goes first");
    assert_eq!(machine.runs(), [job.id], "run once");
    assert!(!dir.path().join("in-hand.json").exists());
    agent.stop().await;
}

#[tokio::test]
async fn an_agent_restarted_while_the_machine_has_not_restarted_reports_the_job_failed() {
    let mock = Arc::new(Mock::default());
    let job = mock.push_job(JobKind::Reboot, json!({}), TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let machine = Arc::new(Machine::default());
    let agent = start(&base, dir.path(), &machine, LONG);
    until("the job to run", || machine.runs().len() == 1).await;
    agent.stop().await;
    assert!(dir.path().join("in-hand.json").exists(), "a stop while waiting keeps the job in hand");
    let agent = start(&base, dir.path(), &machine, LONG);
    mock.wait_for("result").await;
    let r = &results(&mock)[0];
    assert_eq!((r.lease_id, r.outcome), (job.lease.id, Outcome::Failed));
    assert!(r.error.as_deref().unwrap().contains("has not restarted"), "{r:?}");
    assert_eq!(machine.runs(), [job.id]);
    agent.stop().await;
}

#[tokio::test]
async fn a_restart_that_never_comes_fails_the_job_at_the_timeout() {
    let mock = Arc::new(Mock::default());
    let job = mock.push_job(JobKind::Install, json!({}), TimeDelta::seconds(30));
    let base = mock::serve(mock.clone()).await;
    let dir = tempfile::tempdir().unwrap();
    let machine = Arc::new(Machine::default());
    let agent = start(&base, dir.path(), &machine, Duration::from_millis(500));
    mock.wait_for("result").await;
    let r = &results(&mock)[0];
    assert_eq!((r.lease_id, r.outcome, r.rebooted), (job.lease.id, Outcome::Failed, Some(false)));
    assert!(r.error.as_deref().unwrap().contains("did not restart within"), "{r:?}");
    until("the job in hand to be let go", || !dir.path().join("in-hand.json").exists()).await;
    agent.stop().await;
}

#[tokio::test]
async fn a_job_in_hand_when_the_agent_died_is_left_to_its_lease_and_runs_again_when_offered() {
    let Hung { mock, job, base, dir, machine, agent } = hung(JobKind::Install).await;
    agent.kill().await;
    // Its work did not finish: nothing is reported; the server re-offers it after the lease.
    machine.hang.store(false, std::sync::atomic::Ordering::Relaxed);
    let agent = start(&base, dir.path(), &machine, LONG);
    until("the job in hand to be let go", || !dir.path().join("in-hand.json").exists()).await;
    assert!(results(&mock).is_empty(), "an unfinished job is not reported: {:?}", mock.whats());
    let lease = reoffer(&mock, &job);
    until("the job to run again", || machine.runs().len() == 2).await;
    assert_eq!(machine.runs(), [job.id, job.id], "run again when offered again");
    until("a heartbeat under the new lease", || {
        mock.calls().iter().any(|c| c.what == "heartbeat" && c.body["lease_id"] == json!(lease.id))
    })
    .await;
    agent.kill().await;
}

#[tokio::test]
async fn a_reboot_job_cut_short_by_the_restart_it_asked_for_succeeded() {
    let Hung { mock, job, base, dir, machine, agent } = hung(JobKind::Reboot).await;
    // The machine went down under the program, before it could answer.
    machine.restart();
    agent.kill().await;
    let agent = start(&base, dir.path(), &machine, LONG);
    mock.wait_for("health").await;
    let r = &results(&mock)[0];
    assert_eq!((r.lease_id, r.outcome, r.rebooted), (job.lease.id, Outcome::Succeeded, Some(true)));
    agent.stop().await;
}

#[tokio::test]
async fn an_install_cut_short_by_a_restart_is_not_reported() {
    let Hung { mock, base, dir, machine, agent, .. } = hung(JobKind::Install).await;
    machine.restart();
    agent.kill().await;
    let agent = start(&base, dir.path(), &machine, LONG);
    until("the job in hand to be let go", || !dir.path().join("in-hand.json").exists()).await;
    assert!(results(&mock).is_empty(), "left to its lease: {:?}", mock.whats());
    agent.stop().await;
}
