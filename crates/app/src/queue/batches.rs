//! The agent protocol's claims, heartbeats and results on their way to the database in batches
//! (see [`super::batch`]): the agents of a fleet calling at once cost one statement per batch,
//! and each request keeps the answer it would get alone.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::TimeDelta;
use hotpatch_domain::job::{ClaimedJob, JobKind, JobResult, JobState, Lease};
use hotpatch_store::jobs::{self, ClaimRequest, Completion, Fence, LeaseRef, ResultRequest};
use hotpatch_store::StoreError;
use uuid::Uuid;

use super::batch::{Batcher, Dropped};
use crate::error::AppError;
use crate::App;

/// Batches at most in flight per kind of request, each on a connection of its own: two, so one
/// batch can fill while the other waits for its commit (or a row lock). More runners make smaller
/// batches: `bench/dispatch.sh queue` (64 agents, 2 cores) did 2,700–3,300 jobs/s with 1 or 2,
/// 2,200–2,400 with 4 and 1,700–2,300 with 8.
const BATCH_RUNNERS: usize = 2;
/// Requests at most in one statement.
const BATCH_MAX: usize = 128;

/// The agent protocol's claims, heartbeats and results, sent to the database in batches (see
/// [`super::batch`]): the agents of a fleet calling at once cost one statement per batch.
#[derive(Debug)]
pub struct Batches {
    claims: Arc<Batcher<Uuid, Stored<Option<ClaimedJob>>>>,
    heartbeats: Arc<Batcher<LeaseRef, Stored<Result<Lease, Fence>>>>,
    results: Arc<Batcher<ResultOf, Stored<Result<Done, Fence>>>>,
}

/// A database answer to one request of a batch.
type Stored<T> = Result<T, StoreError>;
/// Requests with their position in the batch.
type Numbered<T> = Vec<(usize, T)>;

impl Default for Batches {
    fn default() -> Self {
        Batches {
            claims: Arc::new(Batcher::new(BATCH_RUNNERS, BATCH_MAX)),
            heartbeats: Arc::new(Batcher::new(BATCH_RUNNERS, BATCH_MAX)),
            results: Arc::new(Batcher::new(BATCH_RUNNERS, BATCH_MAX)),
        }
    }
}

/// A result to record: the job, the agent's machine, and what it reported.
#[derive(Debug)]
pub(crate) struct ResultOf {
    job_id: Uuid,
    machine_id: Uuid,
    result: JobResult,
}

/// How a result ended its job.
#[derive(Debug, Clone, Copy)]
pub struct Done {
    /// The job's kind.
    pub kind: JobKind,
    /// Its final state.
    pub state: JobState,
    /// `false`: the same result was already recorded, nothing changed.
    pub recorded: bool,
}

impl Batches {
    /// Batches run so far and the requests they carried, by kind of request (for `/metrics`).
    pub fn counts(&self) -> [(&'static str, (u64, u64)); 3] {
        [
            ("claim", self.claims.counts()),
            ("heartbeat", self.heartbeats.counts()),
            ("result", self.results.counts()),
        ]
    }

    /// The machine's next job under a new lease, or `None`: [`jobs::claim`], batched.
    pub async fn claim(&self, app: &App, machine_id: Uuid) -> Result<Option<ClaimedJob>, AppError> {
        let app_ = app.clone();
        let run = move |machines| claims(app_.clone(), machines);
        let started = std::time::Instant::now();
        let claimed = self.claims.submit(machine_id, run).await.map_err(dropped)??;
        let outcome = if claimed.is_some() { "job" } else { "none" };
        app.telemetry.record(|| {
            metrics::histogram!("hotpatch_claim_duration_seconds", "outcome" => outcome)
                .record(started.elapsed().as_secs_f64());
        });
        Ok(claimed)
    }

    /// Confirms or extends a lease: [`jobs::heartbeat`], batched.
    pub async fn heartbeat(&self, app: &App, lease: LeaseRef) -> Result<Result<Lease, Fence>, AppError> {
        let app_ = app.clone();
        let run = move |leases| heartbeats(app_.clone(), leases);
        Ok(self.heartbeats.submit(lease, run).await.map_err(dropped)??)
    }

    /// Records a result: [`jobs::complete`], batched.
    pub async fn result(
        &self,
        app: &App,
        job_id: Uuid,
        machine_id: Uuid,
        result: JobResult,
    ) -> Result<Result<Done, Fence>, AppError> {
        let app_ = app.clone();
        let run = move |results| results_of(app_.clone(), results);
        let request = ResultOf { job_id, machine_id, result };
        let answer = self.results.submit(request, run).await.map_err(dropped)??;
        if let Ok(Done { kind, state, recorded: true }) = answer {
            let (kind, outcome): (&'static str, &'static str) = (kind.into(), state.into());
            app.telemetry.record(|| {
                metrics::counter!("hotpatch_jobs_finished_total", "kind" => kind, "outcome" => outcome)
                    .increment(1);
            });
        }
        Ok(answer)
    }
}

fn dropped(e: Dropped) -> AppError {
    AppError::Internal(e.to_string())
}

/// Splits `items` into the first of each key (they go in one statement) and the repeats (each
/// goes alone after it, so a statement never names one row twice), remembering positions.
fn first_of_each<T, K: std::hash::Hash + Eq>(
    items: Vec<T>,
    key: impl Fn(&T) -> K,
) -> (Numbered<T>, Numbered<T>) {
    let mut seen = HashSet::with_capacity(items.len());
    items.into_iter().enumerate().partition(|(_, item)| seen.insert(key(item)))
}

/// Puts answers back in request order.
fn in_order<A>(n: usize, answers: impl IntoIterator<Item = (usize, A)>) -> Vec<A> {
    let mut slots: Vec<Option<A>> = (0..n).map(|_| None).collect();
    for (i, a) in answers {
        slots[i] = Some(a);
    }
    slots.into_iter().map(|a| a.expect("every request answered")).collect()
}

/// Claims for a batch of machines: one statement for the distinct ones; a repeated machine (two
/// claims of one agent at once) and, if the statement fails, every request, go one by one.
async fn claims(app: App, machines: Vec<Uuid>) -> Vec<Stored<Option<ClaimedJob>>> {
    let (now, ttl) = (app.clock.now(), app.settings.lease_ttl);
    let n = machines.len();
    let (firsts, repeats) = first_of_each(machines, |m| *m);
    let requests: Vec<ClaimRequest> =
        firsts.iter().map(|&(_, machine_id)| ClaimRequest { machine_id, lease_id: Uuid::new_v4() }).collect();
    let mut answers = Vec::with_capacity(n);
    match jobs::claim_many(&app.pool, &requests, now, ttl).await {
        Ok(claimed) => {
            let mut by_machine: HashMap<Uuid, ClaimedJob> =
                claimed.into_iter().map(|j| (j.machine_id, j)).collect();
            answers.extend(firsts.into_iter().map(|(i, m)| (i, Ok(by_machine.remove(&m)))));
        }
        Err(e) => {
            tracing::warn!(error = %e, claims = firsts.len(), "a batch of claims failed; claiming one by one");
            for (i, m) in firsts {
                answers.push((i, jobs::claim(&app.pool, m, now, ttl).await));
            }
        }
    }
    for (i, m) in repeats {
        answers.push((i, jobs::claim(&app.pool, m, app.clock.now(), ttl).await));
    }
    in_order(n, answers)
}

/// Heartbeats for a batch of leases: one read finds the fresh ones; the others (to extend, or to
/// refuse with the reason) go one by one through [`jobs::heartbeat`].
async fn heartbeats(app: App, leases: Vec<LeaseRef>) -> Vec<Stored<Result<Lease, Fence>>> {
    let (now, ttl) = (app.clock.now(), app.settings.lease_ttl);
    let held: HashMap<LeaseRef, chrono::DateTime<chrono::Utc>> = if leases.len() == 1 {
        HashMap::new()
    } else {
        match jobs::held_leases(&app.pool, &leases).await {
            Ok(rows) => rows.into_iter().collect(),
            Err(e) => {
                tracing::warn!(error = %e, heartbeats = leases.len(), "a batch of heartbeats failed; one by one");
                HashMap::new()
            }
        }
    };
    let mut answers = Vec::with_capacity(leases.len());
    for lease in leases {
        answers.push(match held.get(&lease) {
            Some(&expires_at) if jobs::lease_is_fresh(expires_at, now, ttl) => {
                Ok(Ok(Lease { id: lease.lease_id, expires_at }))
            }
            _ => heartbeat_one(&app, lease, now, ttl).await,
        });
    }
    answers
}

async fn heartbeat_one(
    app: &App,
    lease: LeaseRef,
    now: chrono::DateTime<chrono::Utc>,
    ttl: TimeDelta,
) -> Result<Result<Lease, Fence>, StoreError> {
    let mut conn = app.pool.acquire().await?;
    jobs::heartbeat(&mut conn, lease.job_id, lease.machine_id, lease.lease_id, now, ttl).await
}

/// Results for a batch of jobs: one statement records those still held by their lease; the
/// others (a repeated job, a result sent twice, a lost lease, a job not the machine's) and, if
/// the statement fails, every request, go one by one through [`jobs::complete`] for the answer.
async fn results_of(app: App, results: Vec<ResultOf>) -> Vec<Stored<Result<Done, Fence>>> {
    let now = app.clock.now();
    let n = results.len();
    let mut recorded: HashMap<Uuid, jobs::Recorded> = HashMap::new();
    let (firsts, repeats) = first_of_each(results, |r| r.job_id);
    if n > 1 {
        let requests: Vec<ResultRequest<'_>> = firsts
            .iter()
            .map(|(_, r)| ResultRequest { job_id: r.job_id, machine_id: r.machine_id, result: &r.result })
            .collect();
        match jobs::complete_many(&app.pool, &requests, now).await {
            Ok(rows) => recorded = rows.into_iter().map(|r| (r.job_id, r)).collect(),
            Err(e) => tracing::warn!(error = %e, results = n, "a batch of results failed; one by one"),
        }
    }
    let mut answers = Vec::with_capacity(n);
    for (i, r) in firsts.into_iter().chain(repeats) {
        let answer = match recorded.remove(&r.job_id) {
            Some(done) => Ok(Ok(Done { kind: done.kind, state: done.state, recorded: true })),
            None => complete_one(&app, &r, now).await,
        };
        answers.push((i, answer));
    }
    in_order(n, answers)
}

async fn complete_one(
    app: &App,
    r: &ResultOf,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<Done, Fence>, StoreError> {
    let mut conn = app.pool.acquire().await?;
    Ok(jobs::complete(&mut conn, r.job_id, r.machine_id, &r.result, now).await?.map(|c| match c {
        Completion::Recorded(job) => Done { kind: job.kind, state: job.state, recorded: true },
        Completion::AlreadyRecorded(job) => Done { kind: job.kind, state: job.state, recorded: false },
    }))
}
