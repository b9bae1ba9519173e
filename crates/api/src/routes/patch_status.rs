//! `GET /v1/machines/{id}/patch-status`: the portal view of one machine (hotpatch, baseline,
//! cycle, reboot, next window, and what its agent reported: assessment, compliance, liveness,
//! health), and the temporary operator endpoint
//! `PUT /v1/machines/{id}/installed-state` that records what a machine runs until agents report it.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_domain::job::{AvailableUpdate, HealthCheck, HealthStatus};
use hotpatch_domain::{HotpatchStatus, Month, Release, ReleaseKind};
use hotpatch_scheduler::cycle::{cycle_status, CycleKind, MachineState};
use hotpatch_store::agents;
use hotpatch_store::machines::{self, Machine};
use hotpatch_store::releases::{self, PatchState};
use hotpatch_store::rollouts;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::releases::ReleaseRef;
use crate::routes::windows::{machine_windows_at, WindowView};
use crate::AppState;

/// The machine's hotpatch switch, eligibility and resulting status.
#[derive(Debug, Serialize, ToSchema)]
pub struct HotpatchView {
    /// Requested by the operator.
    pub enabled: bool,
    /// Allowed by the eligibility rules.
    pub eligible: bool,
    /// Preview (Arc-connected machines).
    pub preview: bool,
    /// `enabled`, `disabled`, `not_eligible` or `needs_baseline`.
    pub status: HotpatchStatus,
}

/// How a machine takes a release.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CycleKindView {
    /// A baseline: reboot.
    Baseline,
    /// A hotpatch: no reboot.
    Hotpatch,
    /// The monthly cumulative update of a machine without hotpatch: reboot.
    CumulativeUpdate,
}

impl From<CycleKind> for CycleKindView {
    fn from(k: CycleKind) -> Self {
        match k {
            CycleKind::Baseline => CycleKindView::Baseline,
            CycleKind::Hotpatch => CycleKindView::Hotpatch,
            CycleKind::CumulativeUpdate => CycleKindView::CumulativeUpdate,
        }
    }
}

/// What the machine should install next.
#[derive(Debug, Serialize, ToSchema)]
pub struct NextReleaseView {
    /// How the machine takes it.
    pub kind: CycleKindView,
    /// Whether installing it requires a reboot.
    pub reboot_required: bool,
    /// The release (for a cumulative update: the catalog release of its month).
    pub release: ReleaseRef,
}

/// The machine's position in the cycle.
#[derive(Debug, Serialize, ToSchema)]
pub struct CycleView {
    /// The month, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-05")]
    pub month: Month,
    /// What the machine gets this month.
    pub kind: CycleKindView,
    /// What to install next; `null` when up to date or while a reboot is pending.
    pub next_release: Option<NextReleaseView>,
    /// Whether the next step needs a reboot.
    pub reboot_required: bool,
    /// The machine is not on the current baseline and must install it before hotpatches.
    pub needs_baseline: bool,
}

/// The portal view of a machine's patching.
#[derive(Debug, Serialize, ToSchema)]
pub struct PatchStatusView {
    /// The machine.
    pub machine_id: Uuid,
    /// Hotpatch switch, eligibility and status.
    pub hotpatch: HotpatchView,
    /// OS build, e.g. `20348.2227`.
    pub os_build: Option<String>,
    /// The baseline it runs on.
    pub current_baseline: Option<ReleaseRef>,
    /// The latest release it installed.
    pub latest_installed: Option<ReleaseRef>,
    /// Its position in the cycle.
    pub cycle: CycleView,
    /// Critical and security updates available to it (from its last assessment).
    pub recommended_updates: Vec<AvailableUpdate>,
    /// Other available updates, not auto-installed (from its last assessment).
    pub update_compliance: Vec<AvailableUpdate>,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
    /// When it was last assessed (`null`: never).
    pub last_assessment_at: Option<DateTime<Utc>>,
    /// Its next maintenance window (the first of `GET /v1/machines/{id}/windows` at the same instant).
    pub next_window: Option<WindowView>,
    /// Its agent (`null`: no agent token was ever issued for it).
    pub agent: Option<AgentView>,
    /// Its last health report (`null`: none yet).
    pub health: Option<HealthView>,
    /// The rollout it is in (running, paused or halted) and its window there (`null`: none).
    pub rollout: Option<MachineRolloutView>,
    /// When the machine or its installed state last changed.
    pub updated_at: DateTime<Utc>,
}

/// A machine's place in a rollout.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineRolloutView {
    /// The rollout.
    pub id: Uuid,
    /// The rollout's state: `running`, `paused` or `halted`.
    #[schema(example = "running")]
    pub state: String,
    /// The machine's install in it: `pending`, `queued`, `succeeded`, `failed` or `canceled`.
    #[schema(example = "pending")]
    pub install_state: String,
    /// Its batch (from 1).
    pub batch: i32,
    /// The window it installs in: the planned one, or the next after a missed one.
    pub window_start: DateTime<Utc>,
    /// End of that window.
    pub window_end: DateTime<Utc>,
    /// Windows given so far (the planned one is 1).
    pub windows_tried: i32,
}

/// A machine's agent as the portal shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AgentView {
    /// Its last request (`null`: never connected).
    pub last_seen_at: Option<DateTime<Utc>>,
    /// It called within the last two minutes (agents long-poll for at most a minute).
    pub connected: bool,
}

/// Agents that called within this long are connected.
pub const CONNECTED_WITHIN: chrono::TimeDelta = chrono::TimeDelta::minutes(2);

/// A machine's last health report.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthView {
    /// Overall verdict.
    pub status: HealthStatus,
    /// The checks behind it.
    pub checks: Vec<HealthCheck>,
    /// When it was reported.
    pub reported_at: Option<DateTime<Utc>>,
}

/// What a machine runs (`PUT /v1/machines/{id}/installed-state`).
#[derive(Debug, Clone, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InstalledState {
    /// The baseline the machine runs on (a baseline of its OS), or `null`.
    #[serde(default)]
    pub current_baseline_id: Option<Uuid>,
    /// The latest release it installed (of its OS), or `null`.
    #[serde(default)]
    pub latest_installed_id: Option<Uuid>,
    /// An installed update waits for a reboot.
    #[serde(default)]
    pub reboot_pending: bool,
}

/// A machine's recorded installed state.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledStateView {
    /// The machine.
    pub machine_id: Uuid,
    /// The baseline it runs on.
    pub current_baseline: Option<ReleaseRef>,
    /// The latest release it installed.
    pub latest_installed: Option<ReleaseRef>,
    /// An installed update waits for a reboot.
    pub reboot_pending: bool,
    /// When it was recorded.
    pub updated_at: Option<DateTime<Utc>>,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_patch_status)).routes(routes!(put_installed_state))
}

fn find(catalog: &[Release], id: Option<Uuid>) -> Option<ReleaseRef> {
    id.and_then(|id| catalog.iter().find(|r| r.id == id)).map(ReleaseRef::from)
}

/// Whether the machine takes hotpatches: requested, eligible and, on Arc (a preview enabled per
/// machine), confirmed by the machine.
fn takes_hotpatches(m: &Machine) -> bool {
    hotpatch_domain::takes_hotpatches(
        m.spec.hotpatch_enabled,
        m.eligibility.eligible,
        m.spec.platform,
        m.enrollment,
    )
}

fn at_param(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let mut at = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "at" => {
                at = Some(DateTime::parse_from_rfc3339(&v).map(|t| t.with_timezone(&Utc)).map_err(|_| {
                    ApiError::bad_param("at", format!("'{}' is not an RFC 3339 instant", v.escape_debug()))
                })?)
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: at)",
                ))
            }
        }
    }
    Ok(at)
}

/// The portal view of one machine: hotpatch status, current baseline, latest installed release,
/// cycle position with the next release and whether it needs a reboot, reboot pending. `?at=`
/// (RFC 3339, default now) shows the status at another instant. Answers carry an `ETag`;
/// `If-None-Match` with it answers 304.
#[utoipa::path(get, path = "/v1/machines/{id}/patch-status", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("at" = Option<DateTime<Utc>>, Query, description = "Instant to evaluate at (default now)")),
    responses((status = 200, description = "The patch status", body = PatchStatusView),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match"),
        (status = 400, description = "Bad `at`", body = Problem),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn get_patch_status(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    // The request's edge is where the clock is read; the rules take `now` as an argument.
    let now = at_param(raw.as_deref())?.unwrap_or_else(|| state.clock.now());
    let m = machines::get(&state.pool, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let installed = releases::patch_state(&state.pool, id).await?;
    let inventory = agents::inventory(&state.pool, id).await?;
    let agent = agents::get(&state.pool, id).await?;
    let rollout = rollouts::machine_rollout(&state.pool, id).await?.map(|r| MachineRolloutView {
        id: r.rollout_id,
        state: r.rollout_state.to_string(),
        install_state: r.state.to_string(),
        batch: r.batch_index,
        window_start: r.window_start,
        window_end: r.window_end,
        windows_tried: r.attempts,
    });
    let catalog = releases::catalog_of(&state.pool, m.spec.os).await?;
    let hotpatch = takes_hotpatches(&m);
    let machine_state = MachineState {
        hotpatch,
        current_baseline: installed.current_baseline,
        latest_installed: installed.latest_installed,
        reboot_pending: installed.reboot_pending,
    };
    let cycle = cycle_status(m.spec.os, &machine_state, &catalog, &state.settings.calendar, now);
    let status = match HotpatchStatus::from_flags(m.eligibility.eligible, m.spec.hotpatch_enabled) {
        HotpatchStatus::Enabled if hotpatch && cycle.needs_baseline => HotpatchStatus::NeedsBaseline,
        s => s,
    };
    let next_release = cycle.next_release.and_then(|n| {
        Some(NextReleaseView {
            kind: n.kind.into(),
            reboot_required: n.reboot_required,
            release: find(&catalog, Some(n.release_id))?,
        })
    });
    let available = inventory.as_ref().map(|i| i.available_updates.as_slice()).unwrap_or_default();
    let view = PatchStatusView {
        machine_id: id,
        hotpatch: HotpatchView {
            enabled: m.spec.hotpatch_enabled,
            eligible: m.eligibility.eligible,
            preview: m.eligibility.preview,
            status,
        },
        // The agent's report is newer than what the operator registered.
        os_build: inventory
            .as_ref()
            .and_then(|i| i.os_build.clone())
            .or_else(|| m.spec.os_build.map(|b| b.to_string())),
        current_baseline: find(&catalog, installed.current_baseline),
        latest_installed: find(&catalog, installed.latest_installed),
        cycle: CycleView {
            month: cycle.month,
            kind: cycle.kind.into(),
            next_release,
            reboot_required: cycle.reboot_required,
            needs_baseline: cycle.needs_baseline,
        },
        recommended_updates: available.iter().filter(|u| u.is_recommended()).cloned().collect(),
        update_compliance: available.iter().filter(|u| !u.is_recommended()).cloned().collect(),
        reboot_pending: cycle.reboot_pending,
        last_assessment_at: inventory.as_ref().map(|i| i.assessed_at),
        next_window: machine_windows_at(&state, &m, now, 1).await?.into_iter().next(),
        agent: agent.as_ref().map(|a| {
            // A mark this replica has not written yet is newer than the stored one.
            let last_seen_at = a.last_seen_at.max(state.presence.pending(m.id));
            AgentView { last_seen_at, connected: last_seen_at.is_some_and(|t| now - t < CONNECTED_WITHIN) }
        }),
        health: agent.and_then(|a| {
            a.health.map(|h| HealthView {
                status: h.status,
                checks: h.checks,
                reported_at: a.health_reported_at,
            })
        }),
        rollout,
        updated_at: [Some(m.updated_at), installed.updated_at, inventory.as_ref().map(|i| i.assessed_at)]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(m.updated_at),
    };
    let body = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest = Sha256::digest(&body);
    let etag = format!("\"{}\"", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    let matches = headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().trim_start_matches("W/") == etag || t.trim() == "*");
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok((
        StatusCode::OK,
        [(header::ETAG, etag_value), (header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body,
    )
        .into_response())
}

/// Temporary, until agents report inventory: record what a machine runs (its current baseline,
/// the latest release it installed, whether a reboot is pending). The releases must be of the
/// machine's OS, and the current baseline a baseline.
#[utoipa::path(put, path = "/v1/machines/{id}/installed-state", tag = "machines", request_body = InstalledState,
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 200, description = "Recorded", body = InstalledStateView),
        (status = 404, description = "No such machine", body = Problem),
        (status = 422, description = "Unknown release, another OS's, or not a baseline", body = Problem)),
    security(("bearer" = [])))]
async fn put_installed_state(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(body): ApiJson<InstalledState>,
) -> Result<Json<InstalledStateView>, ApiError> {
    let mut tx = state.pool.begin().await?;
    let m =
        machines::get_for_update(&mut tx, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let catalog = releases::catalog_of(&mut *tx, m.spec.os).await?;
    let os: &'static str = m.spec.os.into();
    let lookup = |field: &str, id: Option<Uuid>| -> Result<Option<&Release>, ApiError> {
        id.map(|id| {
            catalog
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| ApiError::field(field, format!("no release {id} of {os} in the catalog")))
        })
        .transpose()
    };
    if let Some(b) = lookup("current_baseline_id", body.current_baseline_id)? {
        if b.spec.kind != ReleaseKind::Baseline {
            return Err(ApiError::field(
                "current_baseline_id",
                format!("{} is a hotpatch, not a baseline", b.spec.kb),
            ));
        }
    }
    lookup("latest_installed_id", body.latest_installed_id)?;
    let saved = releases::set_patch_state(
        &mut *tx,
        id,
        &PatchState {
            current_baseline: body.current_baseline_id,
            latest_installed: body.latest_installed_id,
            reboot_pending: body.reboot_pending,
            updated_at: None,
        },
    )
    .await?;
    tx.commit().await?;
    tracing::info!(machine_id = %id, reboot_pending = saved.reboot_pending, "installed state recorded");
    Ok(Json(InstalledStateView {
        machine_id: id,
        current_baseline: find(&catalog, saved.current_baseline),
        latest_installed: find(&catalog, saved.latest_installed),
        reboot_pending: saved.reboot_pending,
        updated_at: saved.updated_at,
    }))
}
