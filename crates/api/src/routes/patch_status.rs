//! `GET /v1/machines/{id}/patch-status`: the portal view of one machine (hotpatch, baseline,
//! cycle, reboot, next window, and what its agent reported: assessment, compliance, liveness,
//! health), and the temporary operator endpoint
//! `PUT /v1/machines/{id}/installed-state` that records what a machine runs until agents report it.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, NaiveDate, Utc};
use hotpatch_domain::job::{AvailableUpdate, HealthCheck, HealthStatus};
use hotpatch_domain::{
    Enrollment, HotpatchStatus, Month, OsVersion, Platform, Release, ReleaseKind, Timezone,
};
use hotpatch_scheduler::cycle::{cycle_status, CycleKind, CycleStatus, MachineState};
use hotpatch_store::machines;
use hotpatch_store::maintenance::ScopeMatch;
use hotpatch_store::releases::{self, PatchState};
use hotpatch_store::status::{self, StatusInputs, StatusVersion};
use hotpatch_store::PgPool;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::answers::Answer;
use crate::auth::{Operator, Reader};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::routes::releases::ReleaseRef;
use crate::routes::windows::{applied_from, windows_of, WindowView};
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

/// The value of an `at` parameter: an RFC 3339 instant.
pub(crate) fn parse_at(v: &str) -> Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(v)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::bad_param("at", format!("'{}' is not an RFC 3339 instant", v.escape_debug())))
}

fn at_param(raw: Option<&str>) -> Result<Option<DateTime<Utc>>, ApiError> {
    let mut at = None;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "at" => at = Some(parse_at(&v)?),
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

/// What every status of this replica reads and rarely changes: the release catalog, kept with
/// the version it was read at (`status_epoch.catalog_version`), and the fingerprint of the
/// settings the answers depend on. Every request still reads the current version from
/// PostgreSQL, so a change made through any replica is seen at once.
#[derive(Default)]
pub struct StatusCache {
    catalog: RwLock<Option<(i64, Arc<Vec<Release>>)>>,
    settings: OnceLock<[u8; 32]>,
}

impl StatusCache {
    /// The catalog at `version` or newer, with the version it was read at (one query, only
    /// when the cached copy is older).
    async fn catalog(&self, pool: &PgPool, version: i64) -> Result<(i64, Arc<Vec<Release>>), ApiError> {
        if let Some((v, c)) = self.catalog.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            if *v >= version {
                return Ok((*v, c.clone()));
            }
        }
        self.catalog_now(pool).await
    }

    /// The catalog as it is now (one query), kept for the statuses that follow.
    pub(crate) async fn catalog_now(&self, pool: &PgPool) -> Result<(i64, Arc<Vec<Release>>), ApiError> {
        let (v, c) = status::catalog(pool).await?;
        let c = Arc::new(c);
        let mut slot = self.catalog.write().unwrap_or_else(|e| e.into_inner());
        if slot.as_ref().is_none_or(|(old, _)| *old < v) {
            *slot = Some((v, c.clone()));
        }
        Ok((v, c))
    }

    fn settings(&self, settings: &crate::Settings) -> [u8; 32] {
        *self.settings.get_or_init(|| {
            Sha256::new()
                .chain_update(env!("CARGO_PKG_VERSION"))
                .chain_update(format!("{settings:?}"))
                .finalize()
                .into()
        })
    }
}

/// A status's entity tag: `"<digest>.<valid_until>"`. The digest covers the version of every
/// stored input (see `hotpatch_store::status`), the agent's effective last-seen mark, the
/// settings, `?at=` when given, and `valid_until`: the first instant at which the clock alone
/// changes the answer (the next month, a release coming out, the next window ending, the agent
/// turning disconnected). Carrying that instant in the tag lets a conditional request be
/// answered from the versions alone: same versions, same instant, not yet reached → unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StatusTag {
    digest: String,
    valid_until: DateTime<Utc>,
}

impl StatusTag {
    fn new(
        settings: &[u8; 32],
        version: &StatusVersion,
        at: Option<DateTime<Utc>>,
        valid_until: DateTime<Utc>,
    ) -> StatusTag {
        let digest = Sha256::new()
            .chain_update(settings)
            .chain_update(format!("{version:?}|{at:?}|{}", valid_until.timestamp_micros()))
            .finalize();
        let digest = digest.iter().take(16).map(|b| format!("{b:02x}")).collect();
        StatusTag { digest, valid_until }
    }

    fn header(&self) -> String {
        format!("\"{}.{:x}\"", self.digest, self.valid_until.timestamp_micros())
    }

    /// Parses one of our tags (without quotes or `W/`).
    fn parse(s: &str) -> Option<StatusTag> {
        let (digest, until) = s.split_once('.')?;
        let until = DateTime::from_timestamp_micros(i64::from_str_radix(until, 16).ok()?)?;
        (digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| StatusTag { digest: digest.to_owned(), valid_until: until })
    }
}

/// The entity tags of `If-None-Match`: `*`, or opaque tags (weak ones compared weakly, as
/// RFC 9110 has it for `If-None-Match`), quotes removed.
pub(crate) struct IfNoneMatch {
    /// `*` was given.
    pub(crate) any: bool,
    /// The tags, without `W/` and quotes.
    pub(crate) tags: Vec<String>,
}

impl IfNoneMatch {
    pub(crate) fn of(headers: &HeaderMap) -> IfNoneMatch {
        let mut any = false;
        let mut tags = vec![];
        for part in headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let t = part.trim();
            if t == "*" {
                any = true;
            } else {
                let t = t.strip_prefix("W/").unwrap_or(t);
                if let Some(t) = t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                    tags.push(t.to_owned());
                }
            }
        }
        IfNoneMatch { any, tags }
    }

    /// Whether a representation with this tag (as sent in `ETag`, quoted) matches.
    pub(crate) fn matches(&self, etag: &str) -> bool {
        self.any || self.tags.iter().any(|t| etag.trim_matches('"') == t)
    }
}

pub(crate) fn not_modified(etag: &str) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, v)]).into_response())
}

pub(crate) fn json_with_etag(etag: &str, body: impl Into<Bytes>) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(etag).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok((
        StatusCode::OK,
        [(header::ETAG, v), (header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.into(),
    )
        .into_response())
}

fn parse<T: std::str::FromStr>(what: &str, v: &str) -> Result<T, ApiError> {
    v.parse().map_err(|_| ApiError::Internal(format!("stored {what} '{v}' is not valid")))
}

/// The first instant of the UTC month after `now`'s.
fn next_month(now: DateTime<Utc>) -> DateTime<Utc> {
    let m = Month::of(now);
    let (y, mo) = if m.month() == 12 { (m.year() + 1, 1) } else { (m.year(), m.month() + 1) };
    NaiveDate::from_ymd_opt(y, mo, 1)
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// Whether the machine takes hotpatches: requested, eligible and, on Arc (a preview enabled per
/// machine), confirmed by the machine.
fn takes_hotpatches(
    enabled: bool,
    eligible: bool,
    platform: Platform,
    enrollment: Option<Enrollment>,
) -> bool {
    hotpatch_domain::takes_hotpatches(enabled, eligible, platform, enrollment)
}

/// The hotpatch status the portal shows: the switch and the rules, and `needs_baseline` when a
/// machine that takes hotpatches is not on the current baseline.
fn hotpatch_status(eligible: bool, enabled: bool, takes: bool, cycle: &CycleStatus) -> HotpatchStatus {
    match HotpatchStatus::from_flags(eligible, enabled) {
        HotpatchStatus::Enabled if takes && cycle.needs_baseline => HotpatchStatus::NeedsBaseline,
        s => s,
    }
}

/// A machine's answer at `now` as sent (body and entity tag), from its inputs and the catalog
/// (read at `catalog_version`). `at` is the `?at=` of the request, if any; `seen` is this
/// replica's unwritten last-seen mark of its agent, read before the inputs.
fn status_of(
    state: &AppState,
    i: StatusInputs,
    catalog: &[Release],
    catalog_version: i64,
    now: DateTime<Utc>,
    at: Option<DateTime<Utc>>,
    seen: Option<DateTime<Utc>>,
) -> Result<Answer, ApiError> {
    let os: OsVersion = parse("machine.os", &i.os)?;
    let platform: Platform = parse("machine.platform", &i.platform)?;
    let enrollment: Option<Enrollment> =
        i.enrollment.as_deref().map(|e| parse("machine.enrollment", e)).transpose()?;
    let zone: Timezone = parse("machine.timezone", &i.timezone)?;
    let takes = takes_hotpatches(i.hotpatch_enabled, i.eligible, platform, enrollment);
    let machine_state = MachineState {
        hotpatch: takes,
        current_baseline: i.current_baseline_id,
        latest_installed: i.latest_installed_id,
        reboot_pending: i.reboot_pending,
    };
    let cycle = cycle_status(os, &machine_state, catalog, &state.settings.calendar, now);
    let find = |id: Option<Uuid>| id.and_then(|id| catalog.iter().find(|r| r.id == id)).map(ReleaseRef::from);
    let next_release = cycle.next_release.and_then(|n| {
        Some(NextReleaseView {
            kind: n.kind.into(),
            reboot_required: n.reboot_required,
            release: find(Some(n.release_id))?,
        })
    });
    let configuration = i.configuration.map(|c| {
        let how = match c.rank {
            1 => ScopeMatch::MachineId,
            2 => ScopeMatch::Label,
            _ => ScopeMatch::Region,
        };
        (c.id, c.body, how)
    });
    let next_window =
        windows_of(&applied_from(&state.settings, &zone, configuration)?, now, 1).into_iter().next();
    // A mark this replica has not written yet is newer than the stored one.
    let mut version = i.version;
    let agent = version.agent.as_mut().map(|a| {
        let last_seen_at = a.last_seen_at.max(seen);
        a.last_seen_at = last_seen_at;
        AgentView { last_seen_at, connected: last_seen_at.is_some_and(|t| now - t < CONNECTED_WITHIN) }
    });
    version.catalog_version = catalog_version;
    // The first instant at which the clock alone changes the answer.
    let valid_until = [
        Some(next_month(now)),
        catalog
            .iter()
            .filter(|r| r.spec.os == os && r.spec.released_at > now)
            .map(|r| r.spec.released_at)
            .min(),
        next_window.as_ref().map(|w| w.end),
        agent.as_ref().filter(|a| a.connected).and_then(|a| a.last_seen_at).map(|t| t + CONNECTED_WITHIN),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(DateTime::<Utc>::MAX_UTC);
    let tag = StatusTag::new(&state.status_cache.settings(&state.settings), &version, at, valid_until);
    let rollout = version.rollout.as_ref().map(|r| MachineRolloutView {
        id: r.rollout_id,
        state: r.rollout_state.to_string(),
        install_state: r.state.to_string(),
        batch: r.batch_index,
        window_start: r.window_start,
        window_end: r.window_end,
        windows_tried: r.attempts,
    });
    let health = match (i.health, version.agent.as_ref()) {
        (Some(h), Some(a)) => {
            Some(HealthView { status: h.status, checks: h.checks, reported_at: a.health_reported_at })
        }
        _ => None,
    };
    let (recommended_updates, update_compliance): (Vec<AvailableUpdate>, Vec<AvailableUpdate>) =
        i.available_updates.into_iter().partition(|u| u.is_recommended());
    let view = PatchStatusView {
        machine_id: i.id,
        hotpatch: HotpatchView {
            enabled: i.hotpatch_enabled,
            eligible: i.eligible,
            preview: i.preview,
            status: hotpatch_status(i.eligible, i.hotpatch_enabled, takes, &cycle),
        },
        // The agent's report is newer than what the operator registered.
        os_build: i.assessed_os_build.or(i.registered_os_build),
        current_baseline: find(i.current_baseline_id),
        latest_installed: find(i.latest_installed_id),
        cycle: CycleView {
            month: cycle.month,
            kind: cycle.kind.into(),
            next_release,
            reboot_required: cycle.reboot_required,
            needs_baseline: cycle.needs_baseline,
        },
        recommended_updates,
        update_compliance,
        reboot_pending: cycle.reboot_pending,
        last_assessment_at: i.assessed_at,
        next_window,
        agent,
        health,
        rollout,
        updated_at: [Some(i.updated_at), i.patch_state_updated_at, i.assessed_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(i.updated_at),
    };
    let body = serde_json::to_vec(&view).map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Answer { etag: tag.header(), body: body.into(), computed_at: now, valid_until: tag.valid_until, seen })
}

/// The answers for `ids` now, as `GET /v1/machines/{id}/patch-status` gives them (machines that
/// do not exist are left out): one query, and one more only when the release catalog changed
/// since this replica last read it. Each is kept in memory, so the polls that follow a list
/// are served from there.
pub(crate) async fn answers(state: &AppState, ids: &[Uuid]) -> Result<HashMap<Uuid, Answer>, ApiError> {
    let listening = state.wakeups.is_listening();
    let seen: HashMap<Uuid, DateTime<Utc>> =
        ids.iter().filter_map(|&id| Some((id, state.presence.pending(id)?))).collect();
    let ticket = state.answers.ticket(listening);
    let now = state.clock.now();
    let inputs = status::inputs(&state.pool, ids).await?;
    let Some(newest) = inputs.iter().map(|i| i.version.catalog_version).max() else {
        return Ok(HashMap::new());
    };
    let (version, catalog) = state.status_cache.catalog(&state.pool, newest).await?;
    let mut answers = HashMap::with_capacity(inputs.len());
    for i in inputs {
        let id = i.id;
        let answer = status_of(state, i, &catalog, version, now, None, seen.get(&id).copied())?;
        state.answers.fill(ticket, id, answer.clone());
        answers.insert(id, answer);
    }
    Ok(answers)
}

/// The portal view of one machine: hotpatch status, current baseline, latest installed release,
/// cycle position with the next release and whether it needs a reboot, reboot pending, its last
/// assessment (recommended updates, update compliance), next window, agent, health and rollout.
/// `?at=` (RFC 3339, default now) shows the status at another instant.
///
/// Answers carry a strong `ETag` that changes exactly when the answer does (also when only the
/// clock changes it: a new month, a release coming out, the next window ending, the agent turning
/// disconnected). `If-None-Match` with it (or `*`; weak forms compare weakly) answers 304 from a
/// version check of the stored inputs, without computing the answer. Each replica keeps the
/// answers it computed (also those of a list with `include=patch_status`) and serves them without
/// reading the database until a write of their inputs, on any replica, drops them.
#[utoipa::path(get, path = "/v1/machines/{id}/patch-status", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id"),
        ("at" = Option<DateTime<Utc>>, Query, description = "Instant to evaluate at (default now)"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of an earlier answer; `*` matches any")),
    responses((status = 200, description = "The patch status", body = PatchStatusView,
            headers(("ETag" = String, description = "Strong entity tag of the answer"))),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match",
            headers(("ETag" = String, description = "The matching entity tag"))),
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
    let at = at_param(raw.as_deref())?;
    let now = at.unwrap_or_else(|| state.clock.now());
    let conditional = IfNoneMatch::of(&headers);
    // Answers kept in memory are answers at the current instant; `?at=` is always computed.
    let listening = at.is_none() && state.wakeups.is_listening();
    let seen = state.presence.pending(id);
    if let Some(kept) = state.answers.get(id, listening).filter(|a| a.current(now, seen)) {
        state.answers.hit();
        if conditional.matches(&kept.etag) {
            return not_modified(&kept.etag);
        }
        return json_with_etag(&kept.etag, kept.body.clone());
    }
    // Taken before anything is read: a change after it refuses to keep what is computed here.
    let ticket = state.answers.ticket(listening);
    // Tags still valid at `now` are checked against the stored versions alone.
    let live: Vec<StatusTag> =
        conditional.tags.iter().filter_map(|t| StatusTag::parse(t)).filter(|t| now < t.valid_until).collect();
    if !live.is_empty() && !conditional.any {
        let mut version = status::version(&state.pool, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no machine with id {id}")))?;
        if let Some(a) = version.agent.as_mut() {
            a.last_seen_at = a.last_seen_at.max(seen);
        }
        let settings = state.status_cache.settings(&state.settings);
        for t in &live {
            if StatusTag::new(&settings, &version, at, t.valid_until) == *t {
                return not_modified(&t.header());
            }
        }
    }
    let inputs = status::inputs(&state.pool, &[id])
        .await?
        .pop()
        .ok_or_else(|| ApiError::NotFound(format!("no machine with id {id}")))?;
    let (version, catalog) = state.status_cache.catalog(&state.pool, inputs.version.catalog_version).await?;
    let answer = status_of(&state, inputs, &catalog, version, now, at, seen)?;
    if at.is_none() {
        state.answers.fill(ticket, id, answer.clone());
    }
    if conditional.matches(&answer.etag) {
        return not_modified(&answer.etag);
    }
    json_with_etag(&answer.etag, answer.body)
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
