//! The agent protocol (role `agent`, bound to one machine): claim a job (long-poll), heartbeat
//! its lease, report its result, and report inventory (assessments) and health.
//!
//! Every handler takes the machine from the [`Agent`] extractor, never from the request, so an
//! agent cannot see or touch another machine's jobs: the store queries are scoped by it.

use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::queue::{self, MAX_WAIT_SECS};
use hotpatch_domain::job::{ClaimedJob, Health, Heartbeat, Inventory, JobResult, JobState, Lease};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Agent;
use crate::error::{ApiError, Problem};
use crate::extract::{wait_param, ApiJson, ApiPath};
use crate::AppState;

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

/// Claim the machine's next job: 200 with the job and its lease, or 204 when none came within
/// `wait` seconds (0–60, default 0). A waiting claim answers as soon as a job is enqueued on any
/// replica (LISTEN/NOTIFY), and re-checks on a timer as a fallback.
#[utoipa::path(post, path = "/v1/agent/jobs/claim", tag = "agent",
    params(("wait" = Option<u64>, Query, minimum = 0, maximum = 60, description = "Seconds to wait for a job, 0–60 (default 0)")),
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
    // A waiting claim holds a connection open: capped per token and per replica.
    let _held = if wait.is_zero() { None } else { Some(state.limits.polls.hold(agent.token_id)?) };
    Ok(match queue::claim(&state, agent.machine_id, wait).await? {
        Some(job) => Json(job).into_response(),
        None => StatusCode::NO_CONTENT.into_response(),
    })
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
    let lease = queue::heartbeat(&state, agent.machine_id, id, body.lease_id).await?;
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
    let done = queue::result(&state, agent.machine_id, id, body).await?;
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
    queue::inventory(&state, agent.machine_id, &body).await?;
    Ok(StatusCode::NO_CONTENT)
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
    queue::health(&state, agent.machine_id, &body).await?;
    Ok(StatusCode::NO_CONTENT)
}
