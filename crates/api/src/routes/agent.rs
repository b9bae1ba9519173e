//! The agent protocol (role `agent`, bound to one machine): claim a job (long-poll), heartbeat
//! its lease, report its result, and report inventory (assessments) and health.
//!
//! Every handler takes the machine from the [`Agent`] extractor, never from the request, so an
//! agent cannot see or touch another machine's jobs: the store queries are scoped by it.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::TimeDelta;
use hotpatch_domain::job::{ClaimedJob, Health, Heartbeat, Inventory, JobKind, JobResult, JobState, Lease};
use hotpatch_store::jobs::{self, ClaimRequest, Completion, Fence, LeaseRef, ResultRequest};
use hotpatch_store::wakeup::Key;
use hotpatch_store::{agents, StoreError};
use rand::Rng as _;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Agent;
use crate::batch::Batcher;
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::AppState;

/// The longest long-poll a claim may ask for.
pub const MAX_WAIT_SECS: u64 = 60;
/// A waiting claim re-checks the database at least this often, even without a wake-up
/// (notifications are hints; this is the fallback that makes them optional). Agents re-poll at
/// least every minute, and everyone is woken when the LISTEN connection drops, so this only
/// covers a notification lost while the connection looked healthy.
const POLL_FALLBACK: Duration = Duration::from_secs(30);
/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(claim))
        .routes(routes!(heartbeat))
        .routes(routes!(result))
        .routes(routes!(inventory))
        .routes(routes!(health))
}

/// A lease, as a heartbeat returns it.
#[derive(Debug, Serialize, ToSchema)]
pub struct LeaseView {
    /// The extended lease.
    pub lease: Lease,
}

/// A job after its result was recorded.
#[derive(Debug, Serialize, ToSchema)]
pub struct JobDone {
    /// The job.
    pub id: Uuid,
    /// Its final state.
    pub state: JobState,
    /// Whether this request recorded it (`false`: the same result was already recorded).
    pub recorded: bool,
}

/// `?wait=` of a claim: 0–60 seconds, default 0.
pub(crate) fn wait_param(raw: Option<&str>, max: u64) -> Result<Duration, ApiError> {
    let mut wait = 0;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "wait" => {
                wait = v.parse::<u64>().ok().filter(|w| *w <= max).ok_or_else(|| {
                    ApiError::bad_param("wait", format!("must be a whole number of seconds, 0 to {max}"))
                })?;
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: wait)",
                ))
            }
        }
    }
    Ok(Duration::from_secs(wait))
}

/// A random share of the fallback interval, so thousands of waiting agents do not re-check together.
fn fallback_interval() -> Duration {
    POLL_FALLBACK.mul_f64(rand::thread_rng().gen_range(0.75..1.0))
}

/// Claim the machine's next job: 200 with the job and its lease, or 204 when none came within
/// `wait` seconds (0–60, default 0). A waiting claim answers as soon as a job is enqueued on any
/// replica (LISTEN/NOTIFY), and re-checks on a timer as a fallback.
#[utoipa::path(post, path = "/v1/agent/jobs/claim", tag = "agent",
    params(("wait" = Option<u64>, Query, description = "Seconds to wait for a job, 0–60 (default 0)")),
    responses((status = 200, description = "A job, leased to the caller", body = ClaimedJob),
        (status = 204, description = "No job within `wait`"),
        (status = 400, description = "Bad `wait`", body = Problem),
        (status = 403, description = "Not an agent token", body = Problem)),
    security(("bearer" = [])))]
async fn claim(
    State(state): State<AppState>,
    agent: Agent,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let wait = wait_param(raw.as_deref(), MAX_WAIT_SECS)?;
    let deadline = tokio::time::Instant::now() + wait;
    let machine_id = agent.machine_id;
    // Subscribe before the first check: a job enqueued between the check and the wait still wakes us.
    let subscription = state.wakeups.subscribe(Key::Machine(machine_id));
    loop {
        let changed = subscription.changed();
        // The query runs in a batch runner's task: a claim waiting here (up to a minute, 10,000 of
        // them at once) holds only a channel, not a query future.
        let claimed = state.agent_batches.claim(&state, machine_id).await?;
        if let Some(job) = claimed {
            tracing::info!(job_id = %job.id, kind = ?job.kind, attempt = job.attempt, %machine_id, "job claimed");
            return Ok(Json(job).into_response());
        }
        let now = tokio::time::Instant::now();
        if now >= deadline {
            return Ok(StatusCode::NO_CONTENT.into_response());
        }
        let nap = (deadline - now).min(fallback_interval());
        tokio::select! {
            () = changed.wait() => {}
            () = tokio::time::sleep(nap) => {}
        }
    }
}

fn fenced(f: Fence, job_id: Uuid) -> ApiError {
    match f {
        Fence::NotFound => ApiError::NotFound(format!("no job {job_id} for this agent's machine")),
        Fence::LeaseLost => ApiError::LeaseLost(format!(
            "the lease no longer holds job {job_id}: it expired and the job was re-queued, or the job ended; \
             stop working on it"
        )),
    }
}

/// Extend a claimed job's lease. 409 `lease_lost` when the lease no longer holds the job.
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/heartbeat", tag = "agent", request_body = Heartbeat,
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "Lease extended", body = LeaseView),
        (status = 404, description = "Not a job of this machine", body = Problem),
        (status = 409, description = "`lease_lost`", body = Problem)),
    security(("bearer" = [])))]
async fn heartbeat(
    State(state): State<AppState>,
    agent: Agent,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<Heartbeat>,
) -> Result<Json<LeaseView>, ApiError> {
    let lease = LeaseRef { job_id: id, machine_id: agent.machine_id, lease_id: body.lease_id };
    let lease = state.agent_batches.heartbeat(&state, lease).await?.map_err(|f| fenced(f, id))?;
    Ok(Json(LeaseView { lease }))
}

/// Report how a job ended. Fenced by the lease (409 `lease_lost`); sending the same result again
/// is harmless (200, nothing changes).
#[utoipa::path(post, path = "/v1/agent/jobs/{id}/result", tag = "agent", request_body = JobResult,
    params(("id" = Uuid, Path, description = "Job id")),
    responses((status = 200, description = "Recorded (or already recorded)", body = JobDone),
        (status = 404, description = "Not a job of this machine", body = Problem),
        (status = 409, description = "`lease_lost`", body = Problem),
        (status = 422, description = "Invalid result", body = Problem)),
    security(("bearer" = [])))]
async fn result(
    State(state): State<AppState>,
    agent: Agent,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<JobResult>,
) -> Result<Json<JobDone>, ApiError> {
    if body.error.as_ref().is_some_and(|e| e.chars().count() > 10_000) {
        return Err(ApiError::field("error", "at most 10,000 characters"));
    }
    let done =
        state.agent_batches.result(&state, id, agent.machine_id, body).await?.map_err(|f| fenced(f, id))?;
    if done.recorded {
        tracing::info!(job_id = %id, kind = ?done.kind, state = ?done.state, machine_id = %agent.machine_id, "job finished");
    }
    Ok(Json(JobDone { id, state: done.state, recorded: done.recorded }))
}

/// Report the machine's inventory (the result of an assessment): OS build, installed and
/// available updates, pending reboot. It becomes the machine's patch status.
#[utoipa::path(post, path = "/v1/agent/inventory", tag = "agent", request_body = Inventory,
    responses((status = 204, description = "Recorded"),
        (status = 422, description = "Invalid inventory", body = Problem)),
    security(("bearer" = [])))]
async fn inventory(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(body): ApiJson<Inventory>,
) -> Result<StatusCode, ApiError> {
    const MAX_UPDATES: usize = 5_000;
    if body.installed_updates.len() > MAX_UPDATES {
        return Err(ApiError::field("installed_updates", format!("at most {MAX_UPDATES} updates")));
    }
    if body.available_updates.len() > MAX_UPDATES {
        return Err(ApiError::field("available_updates", format!("at most {MAX_UPDATES} updates")));
    }
    let now = state.clock.now();
    let next = now + jittered(state.settings.assessment_interval);
    let mut tx = state.pool.begin().await?;
    agents::record_inventory(&mut tx, agent.machine_id, &body, now, next).await.map_err(|e| match e {
        // The machine was deleted while its agent still runs: its token is gone with it, so this
        // can only be a race with the delete.
        StoreError::Database(sqlx::Error::Database(db)) if db.is_foreign_key_violation() => {
            ApiError::NotFound("the agent's machine no longer exists".to_owned())
        }
        e => e.into(),
    })?;
    tx.commit().await?;
    // Before the response: a read after it on this replica must not get the kept answer.
    state.answers.forget(agent.machine_id);
    tracing::info!(machine_id = %agent.machine_id, installed = body.installed_updates.len(),
        available = body.available_updates.len(), "inventory recorded");
    Ok(StatusCode::NO_CONTENT)
}

/// `interval` ± 10%, so a fleet assessed together at first drifts apart.
pub fn jittered(interval: TimeDelta) -> TimeDelta {
    let ms = interval.num_milliseconds() as f64;
    TimeDelta::milliseconds((ms * rand::thread_rng().gen_range(0.9..1.1)) as i64)
}

/// Report the machine's health (rollouts halt when too many machines turn unhealthy).
#[utoipa::path(post, path = "/v1/agent/health", tag = "agent", request_body = Health,
    responses((status = 204, description = "Recorded"),
        (status = 422, description = "Invalid report", body = Problem)),
    security(("bearer" = [])))]
async fn health(
    State(state): State<AppState>,
    agent: Agent,
    ApiJson(body): ApiJson<Health>,
) -> Result<StatusCode, ApiError> {
    if body.checks.len() > 100 {
        return Err(ApiError::field("checks", "at most 100 checks"));
    }
    agents::record_health(&state.pool, agent.machine_id, &body, state.clock.now()).await?;
    // Before the response: a read after it on this replica must not get the kept answer.
    state.answers.forget(agent.machine_id);
    tracing::info!(machine_id = %agent.machine_id, status = ?body.status, "health reported");
    Ok(StatusCode::NO_CONTENT)
}

/// Batches at most in flight per kind of request, each on a connection of its own: two, so one
/// batch can fill while the other waits for its commit (or a row lock). More runners make smaller
/// batches: `bench/dispatch.sh queue` (64 agents, 2 cores) did 2,700–3,300 jobs/s with 1 or 2,
/// 2,200–2,400 with 4 and 1,700–2,300 with 8.
const BATCH_RUNNERS: usize = 2;
/// Requests at most in one statement.
const BATCH_MAX: usize = 128;

/// The agent protocol's claims, heartbeats and results, sent to the database in batches (see
/// [`crate::batch`]): the agents of a fleet calling at once cost one statement per batch.
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
struct ResultOf {
    job_id: Uuid,
    machine_id: Uuid,
    result: JobResult,
}

/// How a result ended its job.
#[derive(Debug, Clone, Copy)]
struct Done {
    kind: JobKind,
    state: JobState,
    /// `false`: the same result was already recorded, nothing changed.
    recorded: bool,
}

impl Batches {
    /// The Prometheus exposition of the batches run so far, by kind of request.
    pub fn render(&self) -> String {
        let mut out = String::from(
            "# HELP hotpatch_agent_batches_total Statements that answered agents' requests, by request.\n\
             # TYPE hotpatch_agent_batches_total counter\n",
        );
        let counts = [
            ("claim", self.claims.counts()),
            ("heartbeat", self.heartbeats.counts()),
            ("result", self.results.counts()),
        ];
        for (kind, (batches, _)) in counts {
            out.push_str(&format!("hotpatch_agent_batches_total{{request=\"{kind}\"}} {batches}\n"));
        }
        out.push_str(
            "# HELP hotpatch_agent_batched_requests_total Agents' requests answered by those statements.\n\
             # TYPE hotpatch_agent_batched_requests_total counter\n",
        );
        for (kind, (_, requests)) in counts {
            out.push_str(&format!(
                "hotpatch_agent_batched_requests_total{{request=\"{kind}\"}} {requests}\n"
            ));
        }
        out
    }

    /// The machine's next job under a new lease, or `None`: [`jobs::claim`], batched.
    async fn claim(&self, state: &AppState, machine_id: Uuid) -> Result<Option<ClaimedJob>, ApiError> {
        let state_ = state.clone();
        let run = move |machines| claims(state_.clone(), machines);
        Ok(self.claims.submit(machine_id, run).await.map_err(dropped)??)
    }

    /// Confirms or extends a lease: [`jobs::heartbeat`], batched.
    async fn heartbeat(&self, state: &AppState, lease: LeaseRef) -> Result<Result<Lease, Fence>, ApiError> {
        let state_ = state.clone();
        let run = move |leases| heartbeats(state_.clone(), leases);
        Ok(self.heartbeats.submit(lease, run).await.map_err(dropped)??)
    }

    /// Records a result: [`jobs::complete`], batched.
    async fn result(
        &self,
        state: &AppState,
        job_id: Uuid,
        machine_id: Uuid,
        result: JobResult,
    ) -> Result<Result<Done, Fence>, ApiError> {
        let state_ = state.clone();
        let run = move |results| results_of(state_.clone(), results);
        let request = ResultOf { job_id, machine_id, result };
        Ok(self.results.submit(request, run).await.map_err(dropped)??)
    }
}

fn dropped(e: crate::batch::Dropped) -> ApiError {
    ApiError::Internal(e.to_string())
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
async fn claims(state: AppState, machines: Vec<Uuid>) -> Vec<Stored<Option<ClaimedJob>>> {
    let (now, ttl) = (state.clock.now(), state.settings.lease_ttl);
    let n = machines.len();
    let (firsts, repeats) = first_of_each(machines, |m| *m);
    let requests: Vec<ClaimRequest> =
        firsts.iter().map(|&(_, machine_id)| ClaimRequest { machine_id, lease_id: Uuid::new_v4() }).collect();
    let mut answers = Vec::with_capacity(n);
    match jobs::claim_many(&state.pool, &requests, now, ttl).await {
        Ok(claimed) => {
            let mut by_machine: HashMap<Uuid, ClaimedJob> =
                claimed.into_iter().map(|j| (j.machine_id, j)).collect();
            answers.extend(firsts.into_iter().map(|(i, m)| (i, Ok(by_machine.remove(&m)))));
        }
        Err(e) => {
            tracing::warn!(error = %e, claims = firsts.len(), "a batch of claims failed; claiming one by one");
            for (i, m) in firsts {
                answers.push((i, jobs::claim(&state.pool, m, now, ttl).await));
            }
        }
    }
    for (i, m) in repeats {
        answers.push((i, jobs::claim(&state.pool, m, state.clock.now(), ttl).await));
    }
    in_order(n, answers)
}

/// Heartbeats for a batch of leases: one read finds the fresh ones; the others (to extend, or to
/// refuse with the reason) go one by one through [`jobs::heartbeat`].
async fn heartbeats(state: AppState, leases: Vec<LeaseRef>) -> Vec<Stored<Result<Lease, Fence>>> {
    let (now, ttl) = (state.clock.now(), state.settings.lease_ttl);
    let held: HashMap<LeaseRef, chrono::DateTime<chrono::Utc>> = if leases.len() == 1 {
        HashMap::new()
    } else {
        match jobs::held_leases(&state.pool, &leases).await {
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
            _ => heartbeat_one(&state, lease, now, ttl).await,
        });
    }
    answers
}

async fn heartbeat_one(
    state: &AppState,
    lease: LeaseRef,
    now: chrono::DateTime<chrono::Utc>,
    ttl: TimeDelta,
) -> Result<Result<Lease, Fence>, StoreError> {
    let mut conn = state.pool.acquire().await?;
    jobs::heartbeat(&mut conn, lease.job_id, lease.machine_id, lease.lease_id, now, ttl).await
}

/// Results for a batch of jobs: one statement records those still held by their lease; the
/// others (a repeated job, a result sent twice, a lost lease, a job not the machine's) and, if
/// the statement fails, every request, go one by one through [`jobs::complete`] for the answer.
async fn results_of(state: AppState, results: Vec<ResultOf>) -> Vec<Stored<Result<Done, Fence>>> {
    let now = state.clock.now();
    let n = results.len();
    let mut recorded: HashMap<Uuid, jobs::Recorded> = HashMap::new();
    let (firsts, repeats) = first_of_each(results, |r| r.job_id);
    if n > 1 {
        let requests: Vec<ResultRequest<'_>> = firsts
            .iter()
            .map(|(_, r)| ResultRequest { job_id: r.job_id, machine_id: r.machine_id, result: &r.result })
            .collect();
        match jobs::complete_many(&state.pool, &requests, now).await {
            Ok(rows) => recorded = rows.into_iter().map(|r| (r.job_id, r)).collect(),
            Err(e) => tracing::warn!(error = %e, results = n, "a batch of results failed; one by one"),
        }
    }
    let mut answers = Vec::with_capacity(n);
    for (i, r) in firsts.into_iter().chain(repeats) {
        let answer = match recorded.remove(&r.job_id) {
            Some(done) => Ok(Ok(Done { kind: done.kind, state: done.state, recorded: true })),
            None => complete_one(&state, &r, now).await,
        };
        answers.push((i, answer));
    }
    in_order(n, answers)
}

async fn complete_one(
    state: &AppState,
    r: &ResultOf,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<Done, Fence>, StoreError> {
    let mut conn = state.pool.acquire().await?;
    Ok(jobs::complete(&mut conn, r.job_id, r.machine_id, &r.result, now).await?.map(|c| match c {
        Completion::Recorded(job) => Done { kind: job.kind, state: job.state, recorded: true },
        Completion::AlreadyRecorded(job) => Done { kind: job.kind, state: job.state, recorded: false },
    }))
}
