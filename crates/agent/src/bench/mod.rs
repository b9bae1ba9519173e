//! Load harness for the dispatch path, over HTTP like real agents:
//!
//! - [`queue`]: K concurrent agents drive a fixed number of jobs through claim → heartbeat →
//!   result as fast as the server allows (jobs/s, claim latency);
//! - [`idle()`]: N agents long-poll at once (the server's memory while they wait), then jobs appear
//!   for a sample of them and each claim's answer time is measured from the enqueue request.
//!
//! Both read the server's peak RSS from its `/metrics`. Figures are printed as `name value unit`
//! lines on stdout, the shape of `../shared/limits`' output, so scripts can compute ratios.

mod figures;
mod idle;
mod metrics;
mod setup;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::client::{http_client, ClientError};
use crate::fleet::raise_open_files_limit;

use figures::figure;
pub use figures::{quantile_ms, Figure};
pub use idle::{idle, IdleReport};
use metrics::{requests_per_statement, server_memory};
use setup::{assess, connect, enroll, succeeded};

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// A call to the server failed.
    #[error("{what}: {source}")]
    Client {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: ClientError,
    },
    /// The server answered something the benchmark did not expect.
    #[error("{0}")]
    Unexpected(String),
}

fn failed(what: &str) -> impl FnOnce(ClientError) -> BenchError + '_ {
    move |source| BenchError::Client { what: what.to_owned(), source }
}

/// Where the server is and who the harness is (an operator token or above).
#[derive(Debug, Clone)]
pub struct Target {
    /// Base URL of `hotpatchd`.
    pub server: String,
    /// Operator (or admin) token.
    pub token: String,
}

/// Figures of a [`queue`] run.
#[derive(Debug, Clone)]
pub struct QueueReport {
    /// Jobs completed per second.
    pub jobs_per_second: f64,
    /// Median claim latency.
    pub claim_p50_ms: f64,
    /// 99th percentile claim latency.
    pub claim_p99_ms: f64,
    /// Every figure of the run, to print.
    pub figures: Vec<Figure>,
}

/// Registers `jobs` machines, queues one assessment each with one request, then lets `agents`
/// concurrent agents work through them (claim with `wait=0`, a heartbeat when `heartbeat`,
/// result): each worker plays the agent of one machine after another, as a fleet's agents
/// would take turns. Without the heartbeat a job is what the agent makes of one that ends
/// before its first heartbeat is due.
pub async fn queue(
    target: &Target,
    agents: usize,
    jobs: usize,
    heartbeat: bool,
) -> Result<QueueReport, BenchError> {
    raise_open_files_limit();
    let http = http_client().map_err(failed("building the HTTP client"))?;
    let run = format!("bq{}", &Uuid::now_v7().simple().to_string()[20..]);
    let fleet = Arc::new(enroll(target, &http, &run, jobs).await?);
    connect(&fleet, agents).await?;
    let started = Instant::now();
    let op = assess(target, &http, &json!({ "labels": { "bench": run } })).await?;
    eprintln!("bench: {} jobs queued in {:.2} s", op["machines"]["total"], started.elapsed().as_secs_f64());

    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(jobs)));
    let started = Instant::now();
    let workers: Vec<_> = (0..agents)
        .map(|_| {
            let (fleet, next, latencies) = (fleet.clone(), next.clone(), latencies.clone());
            tokio::spawn(async move {
                let mut mine = Vec::new();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(agent) = fleet.get(i) else { break };
                    let t = Instant::now();
                    let job = agent.client.claim(Duration::ZERO).await.map_err(failed("claiming"))?;
                    mine.push(t.elapsed());
                    let job = job
                        .ok_or_else(|| BenchError::Unexpected(format!("no job for machine {}", agent.id)))?;
                    if heartbeat {
                        agent.client.heartbeat(job.id, job.lease.id).await.map_err(failed("heartbeat"))?;
                    }
                    agent
                        .client
                        .result(job.id, &succeeded(job.lease.id))
                        .await
                        .map_err(failed("reporting the result"))?;
                }
                latencies.lock().unwrap_or_else(PoisonError::into_inner).extend(mine);
                Ok::<(), BenchError>(())
            })
        })
        .collect();
    for w in workers {
        w.await.map_err(|e| BenchError::Unexpected(format!("a worker panicked: {e}")))??;
    }
    let elapsed = started.elapsed();
    let mut latencies = std::mem::take(&mut *latencies.lock().unwrap_or_else(PoisonError::into_inner));
    latencies.sort();
    let (jobs_per_second, p50, p99) =
        (jobs as f64 / elapsed.as_secs_f64(), quantile_ms(&latencies, 0.50), quantile_ms(&latencies, 0.99));
    let (peak, _) = server_memory(target, &http).await?;
    let per_statement = requests_per_statement(target, &http).await?.unwrap_or(f64::NAN);
    let figures = vec![
        figure("queue_http_jobs", jobs as f64, "jobs"),
        figure("queue_http_agents", agents as f64, "agents"),
        figure("queue_http_requests_per_job", if heartbeat { 3.0 } else { 2.0 }, "requests"),
        figure("queue_http_jobs_per_s", jobs_per_second, "jobs/s"),
        figure("queue_http_claim_p50", p50, "ms"),
        figure("queue_http_claim_p99", p99, "ms"),
        figure("queue_server_peak_rss", peak, "MiB"),
        figure("queue_server_agent_requests_per_statement", per_statement, "requests"),
    ];
    Ok(QueueReport { jobs_per_second, claim_p50_ms: p50, claim_p99_ms: p99, figures })
}
