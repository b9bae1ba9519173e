//! What a machine has installed (its last assessment) and what was done to it (its jobs):
//! `GET /v1/machines/{id}/installed-updates` and `GET /v1/machines/{id}/update-history`.

use axum::extract::{RawQuery, State};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::job::{InstalledUpdate, JobKind, JobResult, JobState};
use hotpatch_store::{agents, jobs, machines};
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::Reader;
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::ApiPath;
use crate::AppState;

/// The most history entries one answer lists.
const MAX_HISTORY: i64 = 1_000;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(installed_updates)).routes(routes!(update_history))
}

/// The updates installed on a machine, as of its last assessment.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledUpdates {
    /// Installed updates.
    pub items: Vec<InstalledUpdate>,
    /// When the machine was assessed (`null`: never; then `items` is empty).
    pub assessed_at: Option<DateTime<Utc>>,
}

/// One thing done to a machine: an assessment, install, rollback or reboot.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The job.
    pub job_id: Uuid,
    /// What it did.
    pub kind: JobKind,
    /// Where it is (`queued` and `leased` while not done).
    pub state: JobState,
    /// Claims so far.
    pub attempt: i32,
    /// KBs it installed.
    #[schema(value_type = Vec<String>)]
    pub installed: Vec<hotpatch_domain::Kb>,
    /// The machine rebooted.
    pub rebooted: bool,
    /// Why it failed.
    pub error: Option<String>,
    /// The operation that asked for it.
    pub operation_id: Option<Uuid>,
    /// The rollout it belongs to.
    pub rollout_id: Option<Uuid>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

/// A machine's update history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateHistory {
    /// Entries of the requested days, newest first (at most 1,000).
    pub items: Vec<HistoryEntry>,
}

async fn known(state: &AppState, id: Uuid) -> Result<(), ApiError> {
    machines::get(&state.pool, id).await.or_not_found(|| format!("no machine with id {id}")).map(drop)
}

/// The updates installed on a machine: KB, title, classification, install date and installer,
/// from its last assessment.
#[utoipa::path(get, path = "/v1/machines/{id}/installed-updates", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 200, description = "Installed updates", body = InstalledUpdates),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn installed_updates(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<InstalledUpdates>, ApiError> {
    known(&state, id).await?;
    let inventory = agents::inventory(&state.pool, id).await?;
    Ok(Json(match inventory {
        Some(i) => InstalledUpdates { items: i.installed_updates, assessed_at: Some(i.assessed_at) },
        None => InstalledUpdates { items: vec![], assessed_at: None },
    }))
}

fn days_param(raw: Option<&str>) -> Result<i64, ApiError> {
    let mut days = 30;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "days" => {
                days = v.parse::<i64>().ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| {
                    ApiError::bad_param("days", "must be a whole number of days, 1 to 3650")
                })?;
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: days)",
                ))
            }
        }
    }
    Ok(days)
}

/// Every assessment, install, rollback and reboot of the last `days` (default 30), with its
/// outcome, newest first.
#[utoipa::path(get, path = "/v1/machines/{id}/update-history", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("days" = Option<i64>, Query, description = "How far back, 1–3650 days (default 30)")),
    responses((status = 200, description = "The history", body = UpdateHistory),
        (status = 400, description = "Bad `days`", body = Problem),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn update_history(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
) -> Result<Json<UpdateHistory>, ApiError> {
    let days = days_param(raw.as_deref())?;
    known(&state, id).await?;
    let since = state.clock.now() - TimeDelta::days(days);
    let items = jobs::history(&state.pool, id, since, MAX_HISTORY)
        .await?
        .into_iter()
        .map(|j| {
            let result: Option<JobResult> = j.result.and_then(|r| serde_json::from_value(r).ok());
            HistoryEntry {
                job_id: j.id,
                kind: j.kind,
                state: j.state,
                attempt: j.attempt,
                installed: result.as_ref().map(|r| r.installed.clone()).unwrap_or_default(),
                rebooted: result.as_ref().and_then(|r| r.rebooted).unwrap_or(false),
                error: j.error,
                operation_id: j.operation_id,
                rollout_id: j.rollout_id,
                created_at: j.created_at,
                finished_at: j.finished_at,
            }
        })
        .collect();
    Ok(Json(UpdateHistory { items }))
}
