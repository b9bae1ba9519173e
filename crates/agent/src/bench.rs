//! Load harness for the dispatch path, over HTTP like real agents:
//!
//! - [`queue`]: K concurrent agents drive a fixed number of jobs through claim → heartbeat →
//!   result as fast as the server allows (jobs/s, claim latency);
//! - [`idle`]: N agents long-poll at once (the server's memory while they wait), then jobs appear
//!   for a sample of them and each claim's answer time is measured from the enqueue request.
//!
//! Both read the server's peak RSS from its `/metrics`. Figures are printed as `name value unit`
//! lines on stdout, the shape of `../shared/limits`' output, so scripts can compute ratios.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt as _};
use hotpatch_domain::job::{JobResult, Outcome};
use rand::seq::SliceRandom as _;
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::client::{http_client, AgentClient, ClientError, FleetClient, MachineRef};
use crate::fleet::{machine_spec, raise_open_files_limit};

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

/// A registered bench machine with its agent client.
struct BenchAgent {
    id: Uuid,
    client: AgentClient,
}

/// Registers `n` machines labelled `bench=<run>` and mints their agent tokens, `concurrency` at a
/// time; prints progress to stderr.
async fn enroll(
    target: &Target,
    http: &reqwest::Client,
    run: &str,
    n: usize,
) -> Result<Vec<BenchAgent>, BenchError> {
    let fleet = FleetClient::new(http.clone(), &target.server, &target.token);
    let regions = ["uksouth".to_owned(), "eastasia".to_owned(), "westcentralus".to_owned()];
    let ws2025: BTreeSet<String> = regions.iter().cloned().collect();
    let mut machines: Vec<MachineRef> = Vec::with_capacity(n);
    for chunk in (0..n).collect::<Vec<_>>().chunks(1_000) {
        let specs: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let mut spec = machine_spec(run, i, &regions, &ws2025);
                spec.labels.insert("bench".to_owned(), run.to_owned());
                spec
            })
            .collect();
        machines.extend(fleet.import(&specs).await.map_err(failed("registering bench machines"))?);
    }
    let started = Instant::now();
    let agents: Vec<Result<BenchAgent, BenchError>> = stream::iter(machines)
        .map(|m| {
            let fleet = fleet.clone();
            let (http, server) = (http.clone(), target.server.clone());
            async move {
                let token = fleet
                    .agent_token(m.id, &format!("bench {}", m.name))
                    .await
                    .map_err(failed("minting agent tokens"))?;
                Ok(BenchAgent { id: m.id, client: AgentClient::new(http, &server, &token) })
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    let agents = agents.into_iter().collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "bench: {} machines registered with agent tokens in {:.1} s",
        agents.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(agents)
}

/// Brings the agents online before work arrives, as a fleet's agents are: each makes its first
/// call, a claim, `concurrency` at a time (a first assessment the server already queued is done
/// at once), and the server writes their last-seen marks (about once a second) before this
/// returns.
async fn connect(fleet: &[BenchAgent], concurrency: usize) -> Result<(), BenchError> {
    let started = Instant::now();
    let claims: Vec<Result<(), BenchError>> = stream::iter(fleet)
        .map(|agent| async move {
            if let Some(job) =
                agent.client.claim(Duration::ZERO).await.map_err(failed("connecting agents"))?
            {
                agent
                    .client
                    .result(job.id, &succeeded(job.lease.id))
                    .await
                    .map_err(failed("connecting agents"))?;
            }
            Ok(())
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    claims.into_iter().collect::<Result<Vec<_>, _>>()?;
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    eprintln!("bench: {} agents online in {:.1} s", fleet.len(), started.elapsed().as_secs_f64());
    Ok(())
}

/// `POST /v1/assessments` for a selector; returns the operation.
async fn assess(target: &Target, http: &reqwest::Client, selector: &Value) -> Result<Value, BenchError> {
    let response = http
        .post(format!("{}/v1/assessments", target.server))
        .bearer_auth(&target.token)
        .json(selector)
        .timeout(Duration::from_secs(120))
        .send()
        .await
        .map_err(|e| failed("requesting assessments")(e.into()))?;
    let status = response.status();
    let body: Value = response.json().await.map_err(|e| failed("reading the operation")(e.into()))?;
    if status.as_u16() != 202 {
        return Err(BenchError::Unexpected(format!("POST /v1/assessments answered {status}: {body}")));
    }
    Ok(body)
}

/// The server's `/metrics` text.
async fn server_metrics(target: &Target, http: &reqwest::Client) -> Result<String, BenchError> {
    http.get(format!("{}/metrics", target.server))
        .send()
        .await
        .map_err(|e| failed("reading /metrics")(e.into()))?
        .text()
        .await
        .map_err(|e| failed("reading /metrics")(e.into()))
}

/// The sum of a metric's samples (every label set) in a `/metrics` text; `None` if it has none.
fn metric_sum(text: &str, name: &str) -> Option<f64> {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|l| {
            let rest = l.strip_prefix(name)?;
            // `name value` or `name{labels} value`, not a longer name sharing the prefix.
            let value = match rest.strip_prefix('{') {
                Some(labelled) => labelled.split_once("} ")?.1,
                None => rest.strip_prefix(' ')?,
            };
            value.trim().parse::<f64>().ok()
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum())
}

/// The server's peak and current RSS in MiB, from its `/metrics`.
async fn server_memory(target: &Target, http: &reqwest::Client) -> Result<(f64, f64), BenchError> {
    let text = server_metrics(target, http).await?;
    let mib = |name: &str| metric_sum(&text, name).map(|b| b / (1024.0 * 1024.0));
    match (mib("process_resident_memory_peak_bytes"), mib("process_resident_memory_bytes")) {
        (Some(peak), Some(now)) => Ok((peak, now)),
        _ => Err(BenchError::Unexpected("the server's /metrics has no process memory figures".to_owned())),
    }
}

/// Agents' requests per database statement so far (the server batches claims, heartbeats and
/// results), from its `/metrics`; `None` before any.
async fn requests_per_statement(target: &Target, http: &reqwest::Client) -> Result<Option<f64>, BenchError> {
    let text = server_metrics(target, http).await?;
    Ok(metric_sum(&text, "hotpatch_agent_batched_requests_total")
        .zip(metric_sum(&text, "hotpatch_agent_batches_total"))
        .filter(|&(_, batches)| batches > 0.0)
        .map(|(requests, batches)| requests / batches))
}

/// The result of a job the bench did instantly.
fn succeeded(lease_id: Uuid) -> JobResult {
    JobResult {
        lease_id,
        outcome: Outcome::Succeeded,
        error: None,
        installed: vec![],
        rebooted: None,
        reboot_pending: None,
    }
}

/// The `q`-quantile (0–1) of sorted durations, in milliseconds.
pub fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((sorted.len() as f64 * q).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1].as_secs_f64() * 1_000.0
}

/// One figure of a run: `name value unit`, the line format of `../shared/limits`.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// Stable name, e.g. `queue_http_jobs_per_s`.
    pub name: &'static str,
    /// The value.
    pub value: f64,
    /// Its unit.
    pub unit: &'static str,
}

impl std::fmt::Display for Figure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:.2} {}", self.name, self.value, self.unit)
    }
}

fn figure(name: &'static str, value: f64, unit: &'static str) -> Figure {
    Figure { name, value, unit }
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
/// concurrent agents work through them (claim with `wait=0`, heartbeat, result): each worker
/// plays the agent of one machine after another, as a fleet's agents would take turns.
pub async fn queue(target: &Target, agents: usize, jobs: usize) -> Result<QueueReport, BenchError> {
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
                    agent.client.heartbeat(job.id, job.lease.id).await.map_err(failed("heartbeat"))?;
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
        figure("queue_http_jobs_per_s", jobs_per_second, "jobs/s"),
        figure("queue_http_claim_p50", p50, "ms"),
        figure("queue_http_claim_p99", p99, "ms"),
        figure("queue_server_peak_rss", peak, "MiB"),
        figure("queue_server_agent_requests_per_statement", per_statement, "requests"),
    ];
    Ok(QueueReport { jobs_per_second, claim_p50_ms: p50, claim_p99_ms: p99, figures })
}

/// Figures of an [`idle`] run.
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
    // When each machine's job was asked for, and how long until its claim answered.
    let asked: Arc<Mutex<std::collections::HashMap<Uuid, Instant>>> = Arc::default();
    let woke: Arc<Mutex<Vec<Duration>>> = Arc::default();
    let waiting = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(fleet.len());
    for agent in fleet {
        let (cancel, asked, woke, waiting) = (cancel.clone(), asked.clone(), woke.clone(), waiting.clone());
        tasks.push(tokio::spawn(async move {
            let mut first = true;
            loop {
                if first {
                    waiting.fetch_add(1, Ordering::Relaxed);
                    first = false;
                }
                let claim = tokio::select! {
                    () = cancel.cancelled() => return,
                    c = agent.client.claim(Duration::from_secs(60)) => c,
                };
                match claim {
                    Ok(Some(job)) => {
                        if let Some(t) =
                            asked.lock().unwrap_or_else(PoisonError::into_inner).remove(&agent.id)
                        {
                            woke.lock().unwrap_or_else(PoisonError::into_inner).push(t.elapsed());
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
        }));
        // Spread the connections' opening a little: 10,000 connects at once overflow the accept queue.
        if tasks.len() % 500 == 0 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Every agent has sent its first claim; give the server a moment to park them all.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, rss_waiting) = server_memory(target, &http).await?;
    eprintln!(
        "bench: {} agents long-polling; server RSS {rss_waiting:.1} MiB",
        waiting.load(Ordering::Relaxed)
    );

    let mut rng = rand::thread_rng();
    for round in 0..rounds {
        let chosen: Vec<Uuid> = ids.choose_multiple(&mut rng, sample.min(ids.len())).copied().collect();
        {
            let now = Instant::now();
            let mut asked = asked.lock().unwrap_or_else(PoisonError::into_inner);
            for id in &chosen {
                asked.insert(*id, now);
            }
        }
        assess(target, &http, &json!({ "machine_ids": chosen })).await?;
        let deadline = Instant::now() + Duration::from_secs(30);
        while !asked.lock().unwrap_or_else(PoisonError::into_inner).is_empty() && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let missing = asked.lock().unwrap_or_else(PoisonError::into_inner).len();
        if missing > 0 {
            return Err(BenchError::Unexpected(format!(
                "round {round}: {missing} claims did not answer within 30 s"
            )));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    cancel.cancel();
    let mut woke = std::mem::take(&mut *woke.lock().unwrap_or_else(PoisonError::into_inner));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metric_sums_its_label_sets_and_ignores_longer_names() {
        let text = "# HELP x\nhotpatch_agent_batches_total{request=\"claim\"} 3\n\
                    hotpatch_agent_batches_total{request=\"result\"} 4\n\
                    hotpatch_agent_batches_total_other 100\nprocess_resident_memory_bytes 2048\n";
        assert_eq!(metric_sum(text, "hotpatch_agent_batches_total"), Some(7.0));
        assert_eq!(metric_sum(text, "process_resident_memory_bytes"), Some(2048.0));
        assert_eq!(metric_sum(text, "absent"), None);
    }

    #[test]
    fn quantiles_pick_the_rank_at_or_above() {
        let d: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(quantile_ms(&d, 0.5), 50.0);
        assert_eq!(quantile_ms(&d, 0.99), 99.0);
        assert_eq!(quantile_ms(&d, 1.0), 100.0);
        assert!(quantile_ms(&[], 0.5).is_nan());
    }
}
