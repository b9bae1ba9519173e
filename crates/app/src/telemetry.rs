//! This process's metrics, through the `metrics` facade and `metrics-exporter-prometheus` (the
//! text format, histograms and label escaping are the crate's, not ours).
//!
//! Each [`App`] owns its recorder rather than installing a global one: one process runs one
//! `App`, and tests that start many in one process each see their own counts. Code records inside [`Telemetry::record`], which makes the
//! `App`'s recorder the current one for the `metrics` macros. Labels are bounded by construction:
//! fixed names (duties, job kinds and states, outcomes), route templates, status codes.
//!
//! Counts that live in PostgreSQL (jobs in flight, rollouts) are read when `/metrics` is scraped
//! ([`render`]), not by a duty: the statements read only unfinished rows through
//! partial indexes (see `hotpatch_store::stats`), cost nothing while nobody scrapes, and give the
//! value at the scrape rather than one a period old. Agents connected and lost need every agent's
//! row, so the liveness duty's leader counts them seldom instead (see [`AGENT_COUNT_EVERY`]).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use hotpatch_store::stats;
use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, Unit};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle, PrometheusRecorder};

use crate::App;

/// Upper bounds (seconds) of the request latency buckets (the ones `/metrics` always had).
const HTTP_BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];
/// Upper bounds (seconds) of the other durations: claims, duty passes.
const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// How long a scrape waits for each of its queries (Prometheus gives a whole scrape 10 s).
pub const SCRAPE_QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the liveness leader counts agents connected and lost (a pass over every agent's row).
pub const AGENT_COUNT_EVERY: Duration = Duration::from_secs(15);

/// The job kinds and active states, so a series at zero is exposed rather than missing.
const JOB_KINDS: [&str; 4] = ["assess", "install", "rollback", "reboot"];
const ACTIVE_JOB_STATES: [&str; 2] = ["queued", "leased"];
const ROLLOUT_STATES: [&str; 5] = ["running", "paused", "halted", "canceled", "succeeded"];
const INSTALL_STATES: [&str; 5] = ["pending", "queued", "succeeded", "failed", "canceled"];

/// The recorder of one [`App`] and the handle that renders it.
pub struct Telemetry {
    recorder: PrometheusRecorder,
    handle: PrometheusHandle,
    /// When this process last counted agents (see [`AGENT_COUNT_EVERY`]).
    agents_counted: Mutex<Option<Instant>>,
}

impl std::fmt::Debug for Telemetry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Telemetry")
    }
}

impl Default for Telemetry {
    fn default() -> Self {
        Telemetry::new()
    }
}

impl Telemetry {
    /// A recorder with every metric described.
    pub fn new() -> Telemetry {
        let builder = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("hotpatch_http_request_duration_seconds".into()),
                &HTTP_BUCKETS,
            )
            .and_then(|b| b.set_buckets(&BUCKETS));
        // Only an empty bucket list is refused, and neither is empty.
        let builder = builder.unwrap_or_else(|_| PrometheusBuilder::new());
        let recorder = builder.build_recorder();
        let handle = recorder.handle();
        let telemetry = Telemetry { recorder, handle, agents_counted: Mutex::new(None) };
        telemetry.record(describe);
        telemetry
    }

    /// Runs `f` with this recorder as the one the `metrics` macros record to.
    pub fn record<T>(&self, f: impl FnOnce() -> T) -> T {
        metrics::with_local_recorder(&self.recorder, f)
    }

    /// Whether agents are to be counted now (the first time, then every [`AGENT_COUNT_EVERY`]);
    /// `true` takes the turn.
    pub(crate) fn agents_count_due(&self) -> bool {
        let mut last = self.agents_counted.lock().unwrap_or_else(PoisonError::into_inner);
        let due = last.is_none_or(|t| t.elapsed() >= AGENT_COUNT_EVERY);
        if due {
            *last = Some(Instant::now());
        }
        due
    }

    /// Drains histogram samples into their buckets; run every few seconds so memory stays
    /// bounded between scrapes.
    pub fn upkeep(&self) {
        self.handle.run_upkeep();
    }
}

/// The Prometheus text of everything `app` recorded, after the scrape-time figures are read. A
/// query that fails or takes longer than [`SCRAPE_QUERY_TIMEOUT`] leaves its gauges as they were
/// (and counts in `hotpatch_scrape_query_failures_total`): the rest is still served.
pub async fn render(app: &App) -> String {
    let now = app.clock.now();
    let jobs = tokio::time::timeout(
        SCRAPE_QUERY_TIMEOUT,
        stats::active_jobs(&app.pool, now, app.settings.agent_silence),
    )
    .await;
    let rollouts = tokio::time::timeout(SCRAPE_QUERY_TIMEOUT, stats::rollouts(&app.pool, now)).await;
    app.telemetry.record(|| {
        match jobs {
            Ok(Ok(rows)) => set_jobs(&rows, now),
            Ok(Err(e)) => scrape_query_failed("jobs", &e),
            Err(_) => scrape_query_failed("jobs", &"timed out"),
        }
        match rollouts {
            Ok(Ok(rows)) => set_rollouts(&rows),
            Ok(Err(e)) => scrape_query_failed("rollouts", &e),
            Err(_) => scrape_query_failed("rollouts", &"timed out"),
        }
        set_process(app);
    });
    app.telemetry.handle.render()
}

fn scrape_query_failed(query: &'static str, e: &dyn std::fmt::Display) {
    tracing::warn!(error = %e, query, "a /metrics query failed; its gauges keep their last values");
    counter!("hotpatch_scrape_query_failures_total", "query" => query).increment(1);
}

fn set_jobs(rows: &[stats::ActiveJobs], now: DateTime<Utc>) {
    let mut by: HashMap<(&str, &str), i64> = HashMap::new();
    let (mut due, mut oldest, mut oldest_connected) = (0, None, None);
    for r in rows {
        by.insert((r.kind.as_str(), r.state.as_str()), r.jobs);
        due += r.due;
        oldest = earliest(oldest, r.oldest_due);
        oldest_connected = earliest(oldest_connected, r.oldest_due_connected);
    }
    for kind in JOB_KINDS {
        for state in ACTIVE_JOB_STATES {
            let n = by.get(&(kind, state)).copied().unwrap_or(0);
            gauge!("hotpatch_jobs", "kind" => kind, "state" => state).set(n as f64);
        }
    }
    gauge!("hotpatch_queue_depth").set(due as f64);
    let age =
        |t: Option<DateTime<Utc>>| t.map_or(0.0, |t| (now - t).num_milliseconds().max(0) as f64 / 1000.0);
    gauge!("hotpatch_queue_oldest_age_seconds").set(age(oldest));
    gauge!("hotpatch_queue_oldest_connected_age_seconds").set(age(oldest_connected));
}

fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

fn set_rollouts(rows: &[stats::RolloutCount]) {
    let count = |series: &str, state: &str| {
        rows.iter().find(|r| r.series == series && r.state == state).map_or(0, |r| r.count) as f64
    };
    for state in ROLLOUT_STATES {
        gauge!("hotpatch_rollouts", "state" => state).set(count("rollout", state));
    }
    for state in INSTALL_STATES {
        gauge!("hotpatch_rollout_machines", "state" => state).set(count("machine", state));
    }
    gauge!("hotpatch_rollouts_overdue").set(count("overdue", ""));
}

/// What this process holds in memory: the pool, the patch status cache, the agent protocol's
/// batches, long polls, and its resident memory (Linux `/proc/self/status`).
fn set_process(app: &App) {
    let (size, idle) = (app.pool.size(), app.pool.num_idle());
    gauge!("hotpatch_db_pool_connections", "state" => "idle").set(idle as f64);
    gauge!("hotpatch_db_pool_connections", "state" => "in_use").set(size.saturating_sub(idle as u32) as f64);
    gauge!("hotpatch_db_pool_max_connections").set(app.pool.options().get_max_connections() as f64);

    let cache = app.status_cache.stats();
    counter!("hotpatch_status_cache_hits_total").absolute(cache.hits);
    counter!("hotpatch_status_cache_misses_total").absolute(cache.misses);
    gauge!("hotpatch_status_cache_bytes").set(cache.bytes as f64);

    for (request, (batches, requests)) in app.agent_batches.counts() {
        counter!("hotpatch_agent_batches_total", "request" => request).absolute(batches);
        counter!("hotpatch_agent_batched_requests_total", "request" => request).absolute(requests);
    }
    gauge!("hotpatch_long_poll_keys").set(app.wakeups.waiting() as f64);

    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    if let Some(v) = kib("VmRSS:") {
        gauge!("process_resident_memory_bytes").set((v * 1024) as f64);
    }
    if let Some(v) = kib("VmHWM:") {
        gauge!("process_resident_memory_peak_bytes").set((v * 1024) as f64);
    }
}

/// Counts one finished pass of `duty`: its outcome (`Ok(None)`: another replica holds its lock),
/// duration, the time it ended, and for the singleton duties whether this replica led it.
pub(crate) fn duty_pass<T, E>(duty: &'static str, took: Duration, outcome: &Result<Option<T>, E>) {
    let label = match outcome {
        Ok(Some(_)) => "done",
        Ok(None) => "skipped",
        Err(_) => "failed",
    };
    counter!("hotpatch_duty_passes_total", "duty" => duty, "outcome" => label).increment(1);
    if outcome.is_err() {
        counter!("hotpatch_duty_failures_total", "duty" => duty).increment(1);
    }
    metrics::histogram!("hotpatch_duty_duration_seconds", "duty" => duty).record(took.as_secs_f64());
    // Wall time, not the service clock: Prometheus compares it with its own `time()`.
    let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    gauge!("hotpatch_duty_last_run_timestamp_seconds", "duty" => duty).set(wall.as_secs_f64());
    if crate::duties::SINGLETONS.contains(&duty) {
        // A failed pass may have failed before or after taking the lock: counted as not leading.
        let leads = matches!(outcome, Ok(Some(_)));
        gauge!("hotpatch_leader", "duty" => duty).set(if leads { 1.0 } else { 0.0 });
    }
}

/// Describes every metric (HELP lines) and exposes the zero of each counter whose labels are
/// known in advance, so dashboards and alerts see `0` rather than nothing.
fn describe() {
    describe_counter!(
        "hotpatch_http_requests_total",
        "HTTP requests served, by method, route template and status."
    );
    describe_histogram!(
        "hotpatch_http_request_duration_seconds",
        Unit::Seconds,
        "Time to answer, by method, route template and status."
    );
    describe_gauge!("hotpatch_jobs", "Jobs in flight (queued or leased), by kind and state.");
    describe_gauge!("hotpatch_queue_depth", "Queued jobs claimable now (their run_after passed).");
    describe_gauge!(
        "hotpatch_queue_oldest_age_seconds",
        Unit::Seconds,
        "How long the oldest claimable job has been claimable (0: none)."
    );
    describe_gauge!(
        "hotpatch_queue_oldest_connected_age_seconds",
        Unit::Seconds,
        "The same, among jobs whose machine's agent is connected: a job waiting while its agent calls."
    );
    describe_counter!(
        "hotpatch_leases_expired_total",
        "Expired leases reclaimed by the reaper: requeued, or failed out of attempts."
    );
    describe_counter!(
        "hotpatch_jobs_expired_total",
        "Queued jobs ended `expired`: no agent claimed them within the job time-to-live."
    );
    describe_histogram!(
        "hotpatch_claim_duration_seconds",
        Unit::Seconds,
        "Time from an agent's claim reaching the batcher to its answer (without the long-poll wait), by whether a job was claimed."
    );
    describe_counter!(
        "hotpatch_jobs_finished_total",
        "Jobs finished by an agent's result, by kind and outcome."
    );
    describe_counter!("hotpatch_agents_lost_total", "Agents reported lost (silent for two minutes).");
    describe_gauge!(
        "hotpatch_agents",
        "Agents connected and lost, counted by the replica leading agent_liveness (0 on the others: use max)."
    );
    describe_gauge!("hotpatch_rollouts", "Rollouts by state.");
    describe_gauge!("hotpatch_rollout_machines", "Machines of unfinished rollouts, by install state.");
    describe_gauge!("hotpatch_rollouts_overdue", "Unfinished rollouts past their deadline.");
    describe_counter!("hotpatch_webhook_deliveries_total", "Webhook delivery attempts, by outcome.");
    describe_counter!(
        "hotpatch_duty_passes_total",
        "Passes of each background duty, by outcome (skipped: another replica leads)."
    );
    describe_counter!("hotpatch_duty_failures_total", "Failed passes of each background duty.");
    describe_histogram!(
        "hotpatch_duty_duration_seconds",
        Unit::Seconds,
        "Duration of each background duty's passes."
    );
    describe_gauge!(
        "hotpatch_duty_last_run_timestamp_seconds",
        Unit::Seconds,
        "Unix time at which each background duty last finished a pass."
    );
    describe_gauge!(
        "hotpatch_leader",
        "1 while this replica holds the duty's singleton lock (as of its last pass)."
    );
    describe_counter!("hotpatch_status_cache_hits_total", "Patch status answers served from memory.");
    describe_counter!(
        "hotpatch_status_cache_misses_total",
        "Patch status answers computed (none kept, or not current)."
    );
    describe_gauge!("hotpatch_status_cache_bytes", Unit::Bytes, "Memory of the kept patch status answers.");
    describe_gauge!("hotpatch_db_pool_connections", "Database pool connections, idle and in use.");
    describe_gauge!("hotpatch_db_pool_max_connections", "The database pool's maximum size.");
    describe_counter!(
        "hotpatch_agent_batches_total",
        "Statements that answered agents' requests, by request."
    );
    describe_counter!(
        "hotpatch_agent_batched_requests_total",
        "Agents' requests answered by those statements."
    );
    describe_gauge!(
        "hotpatch_long_poll_keys",
        "Machines and operations with a long-poll waiting in this process."
    );
    describe_counter!("hotpatch_scrape_query_failures_total", "Scrape-time queries that failed, by query.");
    describe_gauge!("process_resident_memory_bytes", Unit::Bytes, "Resident memory.");
    describe_gauge!("process_resident_memory_peak_bytes", Unit::Bytes, "Peak resident memory since start.");

    for outcome in ["requeued", "failed"] {
        counter!("hotpatch_leases_expired_total", "outcome" => outcome).absolute(0);
    }
    counter!("hotpatch_agents_lost_total").absolute(0);
    counter!("hotpatch_jobs_expired_total").absolute(0);
    for outcome in WEBHOOK_OUTCOMES {
        counter!("hotpatch_webhook_deliveries_total", "outcome" => outcome).absolute(0);
    }
    for duty in crate::duties::NAMES {
        counter!("hotpatch_duty_failures_total", "duty" => duty).absolute(0);
        for outcome in ["done", "skipped", "failed"] {
            counter!("hotpatch_duty_passes_total", "duty" => duty, "outcome" => outcome).absolute(0);
        }
    }
    for duty in crate::duties::SINGLETONS {
        gauge!("hotpatch_leader", "duty" => duty).set(0.0);
    }
    for state in ["connected", "lost"] {
        gauge!("hotpatch_agents", "state" => state).set(0.0);
    }
}

/// How a webhook delivery attempt ended: delivered; failed and queued again; failed for good
/// (its last attempt).
pub(crate) const WEBHOOK_OUTCOMES: [&str; 3] = ["delivered", "retrying", "failed"];

/// Counts agents connected and lost (see [`AGENT_COUNT_EVERY`]); `None`: this replica does not
/// lead liveness, so it shows 0.
pub(crate) fn set_agents(counts: Option<stats::AgentCounts>) {
    let c = counts.unwrap_or_default();
    gauge!("hotpatch_agents", "state" => "connected").set(c.connected as f64);
    gauge!("hotpatch_agents", "state" => "lost").set(c.lost as f64);
}
