//! The idle benchmark: many agents long-poll at once (the server's memory while they wait), then
//! jobs appear for a sample of them and each claim's answer time is measured from the enqueue
//! request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rand::seq::SliceRandom as _;
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::figures::{figure, quantile_ms, Figure};
use super::metrics::server_memory;
use super::setup::{assess, enroll, succeeded, BenchAgent};
use super::{failed, BenchError, Target};
use crate::client::http_client;
use crate::fleet::raise_open_files_limit;

/// Figures of an [`idle()`] run.
#[derive(Debug, Clone)]
pub struct IdleReport {
    /// Server RSS while every agent waited.
    pub rss_waiting_mib: f64,
    /// Median time from enqueue to the claim's answer.
    pub wake_p50_ms: f64,
    /// 99th percentile of the same.
    pub wake_p99_ms: f64,
    /// Every figure of the run, to print.
    pub figures: Vec<Figure>,
}

/// What the waiting agents and the rounds share.
#[derive(Default)]
struct Wakes {
    /// When each machine's job was asked for, until its claim answers.
    asked: Mutex<HashMap<Uuid, Instant>>,
    /// How long each claim took to answer, from the request that asked for its job.
    woke: Mutex<Vec<Duration>>,
    /// Agents that have sent their first claim.
    waiting: AtomicUsize,
}

/// Registers `agents` machines whose agents all long-poll (`wait=60`), reads the server's memory
/// once they wait, then `rounds` times queues assessments for `sample` random machines in one
/// request and measures, for each, the time from sending that request to its claim answering.
pub async fn idle(
    target: &Target,
    agents: usize,
    rounds: usize,
    sample: usize,
) -> Result<IdleReport, BenchError> {
    raise_open_files_limit();
    let http = http_client().map_err(failed("building the HTTP client"))?;
    let run = format!("bi{}", &Uuid::now_v7().simple().to_string()[20..]);
    let fleet = enroll(target, &http, &run, agents).await?;
    let ids: Vec<Uuid> = fleet.iter().map(|a| a.id).collect();
    let cancel = CancellationToken::new();
    let wakes = Arc::new(Wakes::default());
    let tasks = start_waiting(fleet, &cancel, &wakes).await;
    // Every agent has sent its first claim; give the server a moment to park them all.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, rss_waiting) = server_memory(target, &http).await?;
    eprintln!(
        "bench: {} agents long-polling; server RSS {rss_waiting:.1} MiB",
        wakes.waiting.load(Ordering::Relaxed)
    );

    let mut rng = rand::thread_rng();
    for round in 0..rounds {
        let chosen: Vec<Uuid> = ids.choose_multiple(&mut rng, sample.min(ids.len())).copied().collect();
        wake_round(round, target, &http, chosen, &wakes).await?;
    }
    cancel.cancel();
    let mut woke = std::mem::take(&mut *wakes.woke.lock().unwrap_or_else(PoisonError::into_inner));
    woke.sort();
    let (peak, _) = server_memory(target, &http).await?;
    let (p50, p99) = (quantile_ms(&woke, 0.50), quantile_ms(&woke, 0.99));
    let figures = vec![
        figure("idle_agents", agents as f64, "agents"),
        figure("idle_server_rss_waiting", rss_waiting, "MiB"),
        figure("idle_server_peak_rss", peak, "MiB"),
        figure("idle_claim_wake_samples", woke.len() as f64, "claims"),
        figure("idle_claim_wake_p50", p50, "ms"),
        figure("idle_claim_wake_p99", p99, "ms"),
    ];
    let report = IdleReport { rss_waiting_mib: rss_waiting, wake_p50_ms: p50, wake_p99_ms: p99, figures };
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    Ok(report)
}

/// Starts one long-polling task per agent, until `cancel`.
async fn start_waiting(
    fleet: Vec<BenchAgent>,
    cancel: &CancellationToken,
    wakes: &Arc<Wakes>,
) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::with_capacity(fleet.len());
    for agent in fleet {
        tasks.push(tokio::spawn(long_poll(agent, cancel.clone(), wakes.clone())));
        // Spread the connections' opening a little: 10,000 connects at once overflow the accept queue.
        if tasks.len() % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    tasks
}

/// One agent: claims with `wait=60` again and again, noting how long a job it was waited for
/// took to reach it, and reports every job succeeded.
async fn long_poll(agent: BenchAgent, cancel: CancellationToken, wakes: Arc<Wakes>) {
    wakes.waiting.fetch_add(1, Ordering::Relaxed);
    loop {
        let claim = tokio::select! {
            () = cancel.cancelled() => return,
            c = agent.client.claim(Duration::from_secs(60)) => c,
        };
        match claim {
            Ok(Some(job)) => {
                if let Some(t) = wakes.asked.lock().unwrap_or_else(PoisonError::into_inner).remove(&agent.id)
                {
                    wakes.woke.lock().unwrap_or_else(PoisonError::into_inner).push(t.elapsed());
                }
                let _ = agent.client.result(job.id, &succeeded(job.lease.id)).await;
            }
            Ok(None) => {}
            Err(e) => {
                eprintln!("bench: claim failed: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
}

/// Queues assessments for the `chosen` machines in one request and waits up to 30 s for every
/// one of their claims to answer.
async fn wake_round(
    round: usize,
    target: &Target,
    http: &reqwest::Client,
    chosen: Vec<Uuid>,
    wakes: &Wakes,
) -> Result<(), BenchError> {
    {
        let now = Instant::now();
        let mut asked = wakes.asked.lock().unwrap_or_else(PoisonError::into_inner);
        for id in &chosen {
            asked.insert(*id, now);
        }
    }
    assess(target, http, &json!({ "machine_ids": chosen })).await?;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !wakes.asked.lock().unwrap_or_else(PoisonError::into_inner).is_empty() && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let missing = wakes.asked.lock().unwrap_or_else(PoisonError::into_inner).len();
    if missing > 0 {
        return Err(BenchError::Unexpected(format!(
            "round {round}: {missing} claims did not answer within 30 s"
        )));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(())
}
