//! Availability-first rollouts (DESIGN §1 "Orchestration", §3): preview a plan, start one, list
//! and read them with their progress, pause, resume and cancel.
//!
//! A plan reads the selected machines in bulk (one query: machine, recorded patch state and the
//! maintenance configuration that applies), every configuration once, and computes each machine's
//! window with the window engine ([`PlanWindow::first_of_schedule`]).
//!
//! [`PlanWindow::first_of_schedule`]: hotpatch_scheduler::rollout::PlanWindow::first_of_schedule

mod plan;
mod view;

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::operation::Selector;
use hotpatch_domain::Release;
use hotpatch_scheduler::rollout::RolloutOptions;
use hotpatch_store::rollouts::{self, NewRollout, RolloutState, RolloutView, Transition};
use serde::Deserialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

pub use plan::{
    OptionsBody, OptionsView, PlanCounts, PlanView, PlannedBatchView, PlannedMachineView, PlannedWaveView,
    UnplannedView,
};
pub use view::{BatchProgressView, CountsView, RolloutDetail, RolloutSummary, WaveProgressView};

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(preview_rollout))
        .routes(routes!(create_rollout, list_rollouts))
        .routes(routes!(get_rollout))
        .routes(routes!(pause_rollout))
        .routes(routes!(resume_rollout))
        .routes(routes!(cancel_rollout))
}

/// A dry run: the release, which machines (`{}` or absent: the whole fleet), how, from when.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewRequest {
    /// The release to roll out.
    pub release_id: Uuid,
    /// Which machines; every given part must match.
    #[serde(default)]
    pub selector: Option<Selector>,
    /// How it goes.
    #[serde(default)]
    pub options: Option<OptionsBody>,
    /// When batch 1 opens (RFC 3339, default now).
    #[serde(default)]
    pub start: Option<DateTime<Utc>>,
}

/// A rollout to start now.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RolloutRequest {
    /// The release to roll out.
    pub release_id: Uuid,
    /// Which machines; every given part must match.
    #[serde(default)]
    pub selector: Option<Selector>,
    /// How it goes.
    #[serde(default)]
    pub options: Option<OptionsBody>,
}

/// `?machines=true|false` (default true).
fn machines_param(raw: Option<&str>) -> Result<bool, ApiError> {
    let mut with = true;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match (k.as_ref(), v.as_ref()) {
            ("machines", "true") => with = true,
            ("machines", "false") => with = false,
            ("machines", _) => return Err(ApiError::bad_param("machines", "must be true or false")),
            (k, _) => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: machines)",
                ))
            }
        }
    }
    Ok(with)
}

/// The plan a rollout of the release to the selected machines would follow; nothing is written.
/// `?machines=false` leaves out the per-machine lists (counts stay).
#[utoipa::path(post, path = "/v1/rollouts/preview", tag = "rollouts", request_body = PreviewRequest,
    params(("machines" = Option<bool>, Query, description = "Include per-machine lists (default true)")),
    responses((status = 200, description = "The plan", body = PlanView),
        (status = 400, description = "Bad query parameter", body = Problem),
        (status = 404, description = "No such release", body = Problem),
        (status = 409, description = "The release was superseded", body = Problem),
        (status = 422, description = "Invalid options or selector, or no machine selected", body = Problem)),
    security(("bearer" = [])))]
async fn preview_rollout(
    State(state): State<AppState>,
    _: Operator,
    RawQuery(raw): RawQuery,
    ApiJson(req): ApiJson<PreviewRequest>,
) -> Result<Json<PlanView>, ApiError> {
    let with_machines = machines_param(raw.as_deref())?;
    let start = req.start.unwrap_or_else(|| state.clock.now());
    let selector = req.selector.unwrap_or_default();
    let options = req.options.unwrap_or_default().options();
    let mut conn = state.pool.acquire().await?;
    let planned = plan::plan(&state, &mut conn, req.release_id, &selector, options, start).await?;
    Ok(Json(PlanView::new(&planned, with_machines)))
}

/// Starts a rollout of the release to the selected machines, planned from now: 201 with the
/// rollout (also in `Location`).
#[utoipa::path(post, path = "/v1/rollouts", tag = "rollouts", request_body = RolloutRequest,
    responses((status = 201, description = "Started", body = RolloutDetail),
        (status = 404, description = "No such release", body = Problem),
        (status = 409, description = "The release was superseded", body = Problem),
        (status = 422, description = "Invalid options or selector, or no machine to install on", body = Problem)),
    security(("bearer" = [])))]
async fn create_rollout(
    State(state): State<AppState>,
    Operator(principal): Operator,
    ApiJson(req): ApiJson<RolloutRequest>,
) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let selector = req.selector.unwrap_or_default();
    let options = req.options.unwrap_or_default().options();
    let selector_json = serde_json::to_value(&selector).map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut tx = state.pool.begin().await?;
    let planned = plan::plan(&state, &mut tx, req.release_id, &selector, options, now).await?;
    if planned.plan.waves.iter().all(|w| w.batches.is_empty()) {
        return Err(ApiError::field(
            "selector",
            format!(
                "none of the {} selected machine(s) can install this release (see POST /v1/rollouts/preview)",
                planned.selected
            ),
        ));
    }
    let id = Uuid::now_v7();
    let view = insert(&mut tx, id, &planned, &selector_json, Some(principal.token_id), now).await?;
    tx.commit().await?;
    let rollout = &view.rollout;
    tracing::info!(rollout_id = %id, release_id = %req.release_id, machines = rollout.machine_count, "rollout started");
    let location = HeaderValue::from_str(&format!("/v1/rollouts/{id}"))
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(RolloutDetail::new(&view, now)))
        .into_response())
}

/// Writes a planned rollout and reads it back (in the caller's transaction). `created_by` `None`
/// is an automatic rollout.
async fn insert(
    conn: &mut PgConnection,
    id: Uuid,
    planned: &plan::Planned,
    selector: &serde_json::Value,
    created_by: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<RolloutView, ApiError> {
    let new = NewRollout {
        id,
        selector,
        automatic: created_by.is_none(),
        created_by,
        deadline: planned.deadline,
        plan: &planned.plan,
    };
    rollouts::create(&mut *conn, &new, now).await?;
    rollouts::get(&mut *conn, id, now)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("rollout {id} vanished after create")))
}

/// Publishing `release` starts its rollout to every `automatic_by_platform` machine (DESIGN §1),
/// in the publishing transaction, so a published release never misses its rollout. Only a
/// current release does: the newest of its OS and within its 30-day deadline (importing an old
/// catalog starts nothing). The OS's unfinished automatic rollouts of older releases are
/// canceled: the planner gives their machines what they still need of the new one (a machine on
/// an old baseline gets the baseline first). `None` when no machine installs it.
pub(crate) async fn start_automatic(
    state: &AppState,
    conn: &mut PgConnection,
    release: &Release,
    catalog: &[Release],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, ApiError> {
    let newer = catalog.iter().any(|r| r.spec.os == release.spec.os && r.spec.month > release.spec.month);
    if !state.settings.automatic_rollouts
        || newer
        || release.spec.released_at + TimeDelta::days(plan::DEADLINE_DAYS) <= now
    {
        return Ok(None);
    }
    for old in rollouts::automatic_in_flight(&mut *conn, release.spec.os, release.id).await? {
        if let Transition::Done(c) = rollouts::cancel(&mut *conn, old, now).await? {
            tracing::info!(rollout_id = %old, release_id = %release.id, jobs_canceled = c.jobs_canceled,
                "automatic rollout replaced by the newer release's");
        }
    }
    let selector = Selector::default();
    let planned =
        match plan::plan(state, &mut *conn, release.id, &selector, RolloutOptions::default(), now).await {
            Ok(p) => p,
            // An empty fleet: nothing to roll out to.
            Err(ApiError::Unprocessable { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
    if planned.plan.waves.iter().all(|w| w.batches.is_empty()) {
        tracing::info!(release_id = %release.id, selected = planned.selected, "no machine installs the release automatically");
        return Ok(None);
    }
    let selector = serde_json::to_value(&selector).map_err(|e| ApiError::Internal(e.to_string()))?;
    let id = Uuid::now_v7();
    let view = insert(conn, id, &planned, &selector, None, now).await?;
    tracing::info!(rollout_id = %id, release_id = %release.id, machines = view.rollout.machine_count,
        "automatic rollout started");
    Ok(Some(id))
}

/// Rollouts, newest first; `?state=` filters.
#[utoipa::path(get, path = "/v1/rollouts", tag = "rollouts",
    params(("state" = Option<String>, Query, description = "`running`, `paused`, `halted`, `canceled` or `succeeded`"),
        ("limit" = Option<i64>, Query, description = "Page size, 1–1000 (default 100)"),
        ("cursor" = Option<String>, Query, description = "`next_cursor` of the previous page")),
    responses((status = 200, description = "A page of rollouts", body = Page<RolloutSummary>),
        (status = 400, description = "Bad query parameter", body = Problem)),
    security(("bearer" = [])))]
async fn list_rollouts(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<RolloutSummary>>, ApiError> {
    let params = PageParams::from_query(raw.as_deref(), &["state"])?;
    let mut filter = None;
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
        if k == "state" {
            filter = Some(v.parse::<RolloutState>().map_err(|_| {
                ApiError::bad_param("state", "must be running, paused, halted, canceled or succeeded")
            })?);
        }
    }
    let now = state.clock.now();
    let rows = rollouts::list(&state.pool, filter, params.after, params.limit + 1).await?;
    Ok(Json(page(rows, params.limit, |r| r.id, |r| RolloutSummary::new(&r, now))))
}

/// A rollout with its progress by wave and batch.
#[utoipa::path(get, path = "/v1/rollouts/{id}", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "The rollout", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem)),
    security(("bearer" = [])))]
async fn get_rollout(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    let now = state.clock.now();
    let mut conn = state.pool.acquire().await?;
    let view = rollouts::get(&mut conn, id, now)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rollout {id}")))?;
    Ok(Json(RolloutDetail::new(&view, now)))
}

/// A transition without its payload.
fn outcome<T>(t: Transition<T>) -> Transition<()> {
    match t {
        Transition::Done(_) => Transition::Done(()),
        Transition::NotFound => Transition::NotFound,
        Transition::WrongState(s) => Transition::WrongState(s),
    }
}

/// Which operator transition.
#[derive(Clone, Copy)]
enum Action {
    Pause,
    Resume,
    Cancel,
}

/// Applies `action` to the rollout and answers its view; 404 unknown, 409 from a state it does
/// not leave from.
async fn transition(state: &AppState, id: Uuid, action: Action) -> Result<Json<RolloutDetail>, ApiError> {
    let now = state.clock.now();
    let mut tx = state.pool.begin().await?;
    let (done, verb) = match action {
        Action::Pause => (outcome(rollouts::pause(&mut tx, id, now).await?), "paused"),
        Action::Resume => (outcome(rollouts::resume(&mut tx, id, now).await?), "resumed"),
        Action::Cancel => (outcome(rollouts::cancel(&mut tx, id, now).await?), "canceled"),
    };
    match done {
        Transition::Done(()) => {}
        Transition::NotFound => return Err(ApiError::NotFound(format!("no rollout {id}"))),
        Transition::WrongState(s) => {
            return Err(ApiError::Conflict(format!("rollout {id} is {s}; it cannot be {verb} from there")))
        }
    }
    let view = rollouts::get(&mut tx, id, now)
        .await?
        .ok_or_else(|| ApiError::NotFound(format!("no rollout {id}")))?;
    tx.commit().await?;
    tracing::info!(rollout_id = %id, action = verb, "rollout {verb}");
    Ok(Json(RolloutDetail::new(&view, now)))
}

/// Pauses a running rollout: no new install starts (queued jobs run).
#[utoipa::path(post, path = "/v1/rollouts/{id}/pause", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "Paused", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem),
        (status = 409, description = "Not in a state it can be paused from (the detail says which)", body = Problem)),
    security(("bearer" = [])))]
async fn pause_rollout(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    transition(&state, id, Action::Pause).await
}

/// Resumes a paused or halted rollout.
#[utoipa::path(post, path = "/v1/rollouts/{id}/resume", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "Running again", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem),
        (status = 409, description = "Not in a state it can be resumed from (the detail says which)", body = Problem)),
    security(("bearer" = [])))]
async fn resume_rollout(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    transition(&state, id, Action::Resume).await
}

/// Cancels an unfinished rollout: its queued jobs are canceled (running ones finish).
#[utoipa::path(post, path = "/v1/rollouts/{id}/cancel", tag = "rollouts",
    params(("id" = Uuid, Path, description = "Rollout id")),
    responses((status = 200, description = "Canceled", body = RolloutDetail),
        (status = 404, description = "No such rollout", body = Problem),
        (status = 409, description = "Already finished (the detail says how)", body = Problem)),
    security(("bearer" = [])))]
async fn cancel_rollout(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<RolloutDetail>, ApiError> {
    transition(&state, id, Action::Cancel).await
}
