//! The agent loop against a recording stand-in server: what it sends, in which order, and how
//! it reacts to lost leases, refused tokens, server errors and cancellation.
#![allow(clippy::unwrap_used, missing_docs)]

mod mock;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::TimeDelta;
use hotpatch_agent::client::http_client;
use hotpatch_agent::{
    Agent, AgentClient, AgentConfig, AgentError, SimConfig, SimulatedMachine, Spool, Stats,
};
use hotpatch_domain::job::{Health, HealthStatus, Inventory, JobKind, JobResult, Outcome};
use mock::Mock;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Running {
    mock: Arc<Mock>,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    task: JoinHandle<Result<(), AgentError>>,
}

async fn start(mock: Mock, job_duration: Duration) -> Running {
    let mock = Arc::new(mock);
    let base = mock::serve(mock.clone()).await;
    let client = AgentClient::new(http_client().unwrap(), &base, "agent-token");
    let sim = SimConfig { job_duration, reboot_duration: Duration::ZERO, ..SimConfig::default() };
    let stats = Arc::new(Stats::default());
    let config = AgentConfig {
        wait: Duration::from_secs(1),
        shutdown_grace: Duration::from_millis(600),
        ..AgentConfig::default()
    };
    let agent = Agent::new(client, SimulatedMachine::new(sim), config, stats.clone(), Spool::in_memory());
    let cancel = CancellationToken::new();
    let task = tokio::spawn(agent.run(cancel.clone()));
    Running { mock, stats, cancel, task }
}

impl Running {
    async fn stop(self) -> Result<(), AgentError> {
        self.cancel.cancel();
        tokio::time::timeout(Duration::from_secs(3), self.task)
            .await
            .expect("the agent stops promptly")
            .unwrap()
    }
}

fn result_of(mock: &Mock) -> JobResult {
    let call = mock.calls().into_iter().find(|c| c.what == "result").unwrap();
    serde_json::from_value(call.body["result"].clone()).unwrap()
}

#[tokio::test]
async fn an_assessment_sends_the_inventory_then_the_result_under_its_lease() {
    let mock = Mock::default();
    let job = mock.push_job(JobKind::Assess, json!({}), TimeDelta::seconds(30));
    let run = start(mock, Duration::ZERO).await;
    run.mock.wait_for("result").await;
    let whats: Vec<_> = run.mock.whats().into_iter().filter(|w| *w != "claim").collect();
    assert_eq!(whats, ["inventory", "result"]);
    let inventory = run.mock.calls().into_iter().find(|c| c.what == "inventory").unwrap();
    assert_eq!(inventory.token, "agent-token");
    let inventory: Inventory = serde_json::from_value(inventory.body).unwrap();
    assert!(!inventory.available_updates.is_empty());
    let result = result_of(&run.mock);
    assert_eq!((result.lease_id, result.outcome), (job.lease.id, Outcome::Succeeded));
    assert_eq!(run.stats.progress().done, 1);
    assert!(run.stop().await.is_ok());
}

#[tokio::test]
async fn an_install_heartbeats_while_it_runs_then_sends_the_inventory_the_result_and_the_health() {
    let mock = Mock::default();
    let job = mock.push_job(JobKind::Install, Value::Null, TimeDelta::milliseconds(900));
    let run = start(mock, Duration::from_millis(800)).await;
    run.mock.wait_for("health").await;
    let whats: Vec<_> = run.mock.whats().into_iter().filter(|w| *w != "claim").collect();
    assert!(whats.len() >= 4 && whats[..whats.len() - 3].iter().all(|w| *w == "heartbeat"), "{whats:?}");
    // The inventory goes first: the machine's recorded state has moved when the rollout sees the result.
    assert_eq!(&whats[whats.len() - 3..], ["inventory", "result", "health"]);
    let beat = run.mock.calls().into_iter().find(|c| c.what == "heartbeat").unwrap();
    assert_eq!(beat.body, json!({"lease_id": job.lease.id}));
    let result = result_of(&run.mock);
    assert_eq!(result.outcome, Outcome::Succeeded);
    assert!(!result.installed.is_empty());
    let health: Health =
        serde_json::from_value(run.mock.calls().into_iter().find(|c| c.what == "health").unwrap().body)
            .unwrap();
    assert_eq!(health.status, HealthStatus::Healthy);
    assert!(run.stop().await.is_ok());
}

#[tokio::test]
async fn a_lost_lease_drops_the_job_without_a_result_and_the_agent_claims_again() {
    let mock = Mock::default();
    mock.lose_leases.store(true, Ordering::Relaxed);
    mock.push_job(JobKind::Reboot, Value::Null, TimeDelta::milliseconds(600));
    let run = start(mock, Duration::from_secs(5)).await;
    run.mock.wait_for("heartbeat").await;
    let claims = run.mock.claims.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(run.mock.claims.load(Ordering::Relaxed) > claims, "back to claiming");
    assert!(!run.mock.whats().contains(&"result"));
    assert_eq!(run.stats.progress().running, 0);
    assert!(run.stop().await.is_ok());
}

#[tokio::test]
async fn a_refused_token_stops_the_agent_with_an_error() {
    let mock = Mock::default();
    mock.claim_errors.lock().unwrap().push_back(401);
    let run = start(mock, Duration::ZERO).await;
    let ended = tokio::time::timeout(Duration::from_secs(3), run.task).await.unwrap().unwrap();
    assert!(matches!(ended, Err(AgentError::Unauthorized(_))), "{ended:?}");
    assert_eq!(run.stats.progress().connected, 0);
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff_until_a_job_comes() {
    let mock = Mock::default();
    mock.claim_errors.lock().unwrap().extend([503, 500]);
    mock.push_job(JobKind::Assess, Value::Null, TimeDelta::seconds(30));
    let run = start(mock, Duration::ZERO).await;
    run.mock.wait_for("result").await;
    assert!(run.mock.claim_errors.lock().unwrap().is_empty());
    assert!(run.mock.claims.load(Ordering::Relaxed) >= 3);
    assert_eq!(run.stats.progress().connected, 1);
    assert!(run.stop().await.is_ok());
}

#[tokio::test]
async fn cancelling_an_idle_agent_stops_it_at_once() {
    let run = start(Mock::default(), Duration::ZERO).await;
    run.mock.wait_for("claim").await;
    let started = std::time::Instant::now();
    assert!(run.stop().await.is_ok());
    assert!(started.elapsed() < Duration::from_secs(1));
}

async fn until_running(stats: &Stats) {
    for _ in 0..100 {
        if stats.progress().running == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("no job started");
}

#[tokio::test]
async fn a_job_that_ends_within_the_shutdown_grace_is_still_reported() {
    let mock = Mock::default();
    mock.push_job(JobKind::Assess, Value::Null, TimeDelta::seconds(30));
    let run = start(mock, Duration::from_millis(200)).await;
    until_running(&run.stats).await;
    let mock = run.mock.clone();
    assert!(run.stop().await.is_ok());
    assert!(mock.whats().ends_with(&["inventory", "result"]), "{:?}", mock.whats());
}

#[tokio::test]
async fn a_job_still_running_when_the_shutdown_grace_ends_is_dropped() {
    let mock = Mock::default();
    mock.push_job(JobKind::Reboot, Value::Null, TimeDelta::seconds(30));
    let run = start(mock, Duration::from_secs(30)).await;
    until_running(&run.stats).await;
    let (mock, stats) = (run.mock.clone(), run.stats.clone());
    let started = std::time::Instant::now();
    assert!(run.stop().await.is_ok());
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(!mock.whats().contains(&"result"));
    assert_eq!(stats.progress().running, 0);
}
