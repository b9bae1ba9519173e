//! Patch status: a machine's answer computed from its stored inputs, the catalog and the
//! clock (DESIGN §3 "Patch status"), with an entity tag that changes exactly when the answer
//! does, and answers kept in this replica's memory until a write of their inputs drops them
//! ([`cache`]).

pub mod cache;
pub mod catalog;
pub mod views;

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use hotpatch_domain::job::AvailableUpdate;
use hotpatch_domain::{HotpatchStatus, Month, OsVersion, Release, ReleaseKind};
use hotpatch_scheduler::cycle::{cycle_status, reboots_in_year, CycleStatus, MachineState};
use hotpatch_store::machines;
use hotpatch_store::releases::{self, PatchState};
use hotpatch_store::status::{self, StatusInputs, StatusVersion};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use self::cache::Answer;
pub use self::views::*;
use crate::catalog::ReleaseRef;
use crate::error::{AppError, OrNotFound};
use crate::schedules::windows::{applied_from, windows_of, WindowView};
use crate::App;

/// The entity tags of a conditional request (`If-None-Match`): `*`, or opaque tags without
/// quotes (weak ones compared weakly, as RFC 9110 has it for `If-None-Match`).
#[derive(Debug, Clone, Default)]
pub struct Conditional {
    /// `*` was given.
    pub any: bool,
    /// The tags, without `W/` and quotes.
    pub tags: Vec<String>,
}

impl Conditional {
    /// Whether a representation with this tag (as sent in `ETag`, quoted) matches.
    pub fn matches(&self, etag: &str) -> bool {
        self.any || self.tags.iter().any(|t| etag.trim_matches('"') == t)
    }
}

/// What a read of one machine's patch status found.
#[derive(Debug, Clone)]
pub enum Got {
    /// The answer has the tag the client holds (this one, quoted).
    NotModified(String),
    /// The answer, with its tag.
    Answer(Arc<Answer>),
}

/// The release `id` of `catalog` as answers show it.
pub(crate) fn find(catalog: &[Release], id: Option<Uuid>) -> Option<ReleaseRef> {
    id.and_then(|id| catalog.iter().find(|r| r.id == id)).map(ReleaseRef::from)
}

/// A status's entity tag: `"<digest>.<valid_until>"`. The digest covers the version of every
/// stored input (see `hotpatch_store::status`), the agent's effective last-seen mark, the
/// settings, `?at=` when given, and `valid_until`: the first instant at which the clock alone
/// changes the answer (the next month, a release coming out, the next window ending, the agent
/// turning disconnected). Carrying that instant in the tag lets a conditional request be
/// answered from the versions alone: same versions, same instant, not yet reached → unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusTag {
    digest: String,
    /// The first instant at which the clock alone changes the answer.
    pub valid_until: DateTime<Utc>,
}

impl StatusTag {
    /// The tag of an answer computed from `version` (and `?at=`) that holds until `valid_until`.
    pub fn new(
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

    /// The `ETag` header value (quoted).
    pub fn header(&self) -> String {
        format!("\"{}.{:x}\"", self.digest, self.valid_until.timestamp_micros())
    }

    /// Parses one of our tags (without quotes or `W/`).
    pub fn parse(s: &str) -> Option<StatusTag> {
        let (digest, until) = s.split_once('.')?;
        let until = DateTime::from_timestamp_micros(i64::from_str_radix(until, 16).ok()?)?;
        (digest.len() == 32 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
            .then(|| StatusTag { digest: digest.to_owned(), valid_until: until })
    }
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
    app: &App,
    i: StatusInputs,
    catalog: &[Release],
    catalog_version: i64,
    now: DateTime<Utc>,
    at: Option<DateTime<Utc>>,
    seen: Option<DateTime<Utc>>,
) -> Result<Answer, AppError> {
    let (os, zone) = (i.os, &i.timezone);
    let takes = hotpatch_domain::takes_hotpatches(i.hotpatch_enabled, i.eligible, i.platform, i.enrollment);
    let machine_state = MachineState {
        hotpatch: takes,
        current_baseline: i.current_baseline_id,
        latest_installed: i.latest_installed_id,
        reboot_pending: i.reboot_pending,
    };
    let cycle = cycle_status(os, &machine_state, catalog, &app.settings.calendar, now);
    let reboots = reboots_in_year(catalog, os, takes, &app.settings.calendar, now);
    let configuration = i.configuration.as_ref().map(|c| (c.id, &c.configuration, c.matched));
    let next_window =
        windows_of(&applied_from(&app.settings, zone, configuration), now, 1).into_iter().next();
    // A mark this replica has not written yet is newer than the stored one.
    let mut version = i.version;
    let agent = version.agent.as_mut().map(|a| {
        let last_seen_at = a.last_seen_at.max(seen);
        a.last_seen_at = last_seen_at;
        AgentView {
            last_seen_at,
            connected: last_seen_at.is_some_and(|t| now - t < app.settings.agent_silence),
        }
    });
    version.catalog_version = catalog_version;
    let silence = app.settings.agent_silence;
    let valid_until = valid_until(now, catalog, os, next_window.as_ref(), agent.as_ref(), silence);
    let tag = StatusTag::new(&app.status_catalog.settings(&app.settings), &version, at, valid_until);
    let rollout = version.rollout.as_ref().map(rollout_view);
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
        current_baseline: find(catalog, i.current_baseline_id),
        latest_installed: find(catalog, i.latest_installed_id),
        cycle: cycle_view(&cycle, catalog),
        recommended_updates,
        update_compliance,
        reboot_pending: cycle.reboot_pending,
        last_assessment_at: i.assessed_at,
        next_window,
        agent,
        health,
        rollout,
        reboots: (&reboots).into(),
        updated_at: [Some(i.updated_at), i.patch_state_updated_at, i.assessed_at]
            .into_iter()
            .flatten()
            .max()
            .unwrap_or(i.updated_at),
    };
    let body = serde_json::to_vec(&view).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok(Answer { etag: tag.header(), body: body.into(), computed_at: now, valid_until: tag.valid_until, seen })
}

/// The machine's place in the cycle as the portal shows it.
fn cycle_view(cycle: &CycleStatus, catalog: &[Release]) -> CycleView {
    let next_release = cycle.next_release.as_ref().and_then(|n| {
        Some(NextReleaseView {
            kind: n.kind.into(),
            reboot_required: n.reboot_required,
            release: find(catalog, Some(n.release_id))?,
        })
    });
    CycleView {
        month: cycle.month,
        kind: cycle.kind.into(),
        next_release,
        reboot_required: cycle.reboot_required,
        needs_baseline: cycle.needs_baseline,
    }
}

/// The first instant at which the clock alone changes an answer computed at `now`: the next
/// month, a release of the machine's OS coming out, the next window ending, the agent turning
/// disconnected.
fn valid_until(
    now: DateTime<Utc>,
    catalog: &[Release],
    os: OsVersion,
    next_window: Option<&WindowView>,
    agent: Option<&AgentView>,
    silence: TimeDelta,
) -> DateTime<Utc> {
    [
        Some(next_month(now)),
        catalog
            .iter()
            .filter(|r| r.spec.os == os && r.spec.released_at > now)
            .map(|r| r.spec.released_at)
            .min(),
        next_window.map(|w| w.end),
        agent.filter(|a| a.connected).and_then(|a| a.last_seen_at).map(|t| t + silence),
    ]
    .into_iter()
    .flatten()
    .min()
    .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The machine's place in its latest unfinished rollout.
fn rollout_view(r: &hotpatch_store::rollouts::MachineRollout) -> MachineRolloutView {
    MachineRolloutView {
        id: r.rollout_id,
        state: r.rollout_state.to_string(),
        install_state: r.state.to_string(),
        batch: r.batch_index,
        window_start: r.window_start,
        window_end: r.window_end,
        windows_tried: r.attempts,
    }
}

/// The answers for `ids` now, as `GET /v1/machines/{id}/patch-status` gives them (machines that
/// do not exist are left out): one query, and one more only when the release catalog changed
/// since this replica last read it. Each is kept in memory, so the polls that follow a list
/// are served from there.
pub async fn answers(app: &App, ids: &[Uuid]) -> Result<HashMap<Uuid, Answer>, AppError> {
    let listening = app.wakeups.is_listening();
    let seen: HashMap<Uuid, DateTime<Utc>> =
        ids.iter().filter_map(|&id| Some((id, app.presence.pending(id)?))).collect();
    let ticket = app.status_cache.ticket(listening);
    let now = app.clock.now();
    let inputs = status::inputs(&app.pool, ids).await?;
    let Some(newest) = inputs.iter().map(|i| i.version.catalog_version).max() else {
        return Ok(HashMap::new());
    };
    let (version, catalog) = app.status_catalog.catalog(&app.pool, newest).await?;
    let mut answers = HashMap::with_capacity(inputs.len());
    for i in inputs {
        let id = i.id;
        let answer = status_of(app, i, &catalog, version, now, None, seen.get(&id).copied())?;
        app.status_cache.fill(ticket, id, answer.clone());
        answers.insert(id, answer);
    }
    Ok(answers)
}

/// One machine's patch status at `at` (default now), for a client that may hold a tag. A kept
/// answer is served without reading PostgreSQL; a tag still valid now is checked against the
/// stored versions alone; otherwise the answer is computed (and kept, when at now).
pub async fn get(
    app: &App,
    id: Uuid,
    at: Option<DateTime<Utc>>,
    conditional: &Conditional,
) -> Result<Got, AppError> {
    // The request's edge is where the clock is read; the rules take `now` as an argument.
    let now = at.unwrap_or_else(|| app.clock.now());
    // Answers kept in memory are answers at the current instant; `?at=` is always computed.
    let listening = at.is_none() && app.wakeups.is_listening();
    let seen = app.presence.pending(id);
    if let Some(kept) = app.status_cache.get(id, listening).filter(|a| a.current(now, seen)) {
        app.status_cache.hit();
        if conditional.matches(&kept.etag) {
            return Ok(Got::NotModified(kept.etag.clone()));
        }
        return Ok(Got::Answer(kept));
    }
    if at.is_none() {
        app.status_cache.miss();
    }
    // Taken before anything is read: a change after it refuses to keep what is computed here.
    let ticket = app.status_cache.ticket(listening);
    // Tags still valid at `now` are checked against the stored versions alone.
    let live: Vec<StatusTag> =
        conditional.tags.iter().filter_map(|t| StatusTag::parse(t)).filter(|t| now < t.valid_until).collect();
    if !live.is_empty() && !conditional.any {
        let mut version = status::version(&app.pool, id)
            .await?
            .ok_or_else(|| AppError::NotFound(format!("no machine with id {id}")))?;
        if let Some(a) = version.agent.as_mut() {
            a.last_seen_at = a.last_seen_at.max(seen);
        }
        let settings = app.status_catalog.settings(&app.settings);
        for t in &live {
            if StatusTag::new(&settings, &version, at, t.valid_until) == *t {
                return Ok(Got::NotModified(t.header()));
            }
        }
    }
    let inputs = status::input(&app.pool, id)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no machine with id {id}")))?;
    let (version, catalog) = app.status_catalog.catalog(&app.pool, inputs.version.catalog_version).await?;
    let answer = status_of(app, inputs, &catalog, version, now, at, seen)?;
    if at.is_none() {
        app.status_cache.fill(ticket, id, answer.clone());
    }
    if conditional.matches(&answer.etag) {
        return Ok(Got::NotModified(answer.etag));
    }
    Ok(Got::Answer(Arc::new(answer)))
}

/// Records what a machine runs where no agent reports it (its current baseline, the latest
/// release it installed, whether a reboot is pending). The releases must be of the machine's
/// OS, and the current baseline a baseline.
pub async fn set_installed_state(
    app: &App,
    id: Uuid,
    body: &InstalledState,
) -> Result<InstalledStateView, AppError> {
    let mut tx = app.pool.begin().await?;
    let m =
        machines::get_for_update(&mut tx, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let catalog = releases::catalog_of(&mut *tx, m.spec.os).await?;
    let os: &'static str = m.spec.os.into();
    let lookup = |field: &str, id: Option<Uuid>| -> Result<Option<&Release>, AppError> {
        id.map(|id| {
            catalog
                .iter()
                .find(|r| r.id == id)
                .ok_or_else(|| AppError::field(field, format!("no release {id} of {os} in the catalog")))
        })
        .transpose()
    };
    if let Some(b) = lookup("current_baseline_id", body.current_baseline_id)? {
        if b.spec.kind != ReleaseKind::Baseline {
            return Err(AppError::field(
                "current_baseline_id",
                format!("{} is a hotpatch, not a baseline", b.spec.kb),
            ));
        }
    }
    lookup("latest_installed_id", body.latest_installed_id)?;
    let state = PatchState {
        current_baseline: body.current_baseline_id,
        latest_installed: body.latest_installed_id,
        reboot_pending: body.reboot_pending,
        updated_at: None,
    };
    let saved = releases::set_patch_state(&mut *tx, id, &state).await?;
    tx.commit().await?;
    tracing::info!(machine_id = %id, reboot_pending = saved.reboot_pending, "installed state recorded");
    Ok(InstalledStateView {
        machine_id: id,
        current_baseline: find(&catalog, saved.current_baseline),
        latest_installed: find(&catalog, saved.latest_installed),
        reboot_pending: saved.reboot_pending,
        updated_at: saved.updated_at,
    })
}
