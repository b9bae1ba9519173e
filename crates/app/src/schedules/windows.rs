//! A machine's maintenance windows: the configuration that governs it (machine id > label >
//! region, then the oldest) or its default off-peak window, read in its own zone unless the
//! configuration has one.

use chrono::{DateTime, FixedOffset, Utc};
use hotpatch_scheduler::windows::{next_windows, Schedule, Window};
use hotpatch_store::machines::{self, Machine};
use hotpatch_store::maintenance::{self, ScopeMatch};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::spec::{check, Checked, ConfigurationSpec};
use crate::error::{AppError, OrNotFound};
use crate::settings::Settings;
use crate::App;

/// Most windows one request may ask for.
pub const MAX_COUNT: usize = 100;
/// Windows given when `count` is absent.
pub const DEFAULT_COUNT: usize = 5;

/// Where a window comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WindowSource {
    /// The machine is in no configuration's scope: 01:00 local for 4 hours, daily.
    DefaultOffPeak,
    /// A maintenance configuration.
    MaintenanceConfiguration,
}

/// How the machine is in the configuration's scope.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MatchedBy {
    /// Its id is listed.
    MachineId,
    /// It carries every label of the scope.
    Label,
    /// Its region is listed.
    Region,
}

/// One window.
#[derive(Debug, Serialize, ToSchema)]
pub struct WindowView {
    /// Start, UTC.
    pub start: DateTime<Utc>,
    /// End, UTC (start + duration in elapsed time).
    pub end: DateTime<Utc>,
    /// Start on the zone's clock, with its offset.
    #[schema(value_type = String)]
    pub start_local: DateTime<FixedOffset>,
    /// End on the zone's clock, with its offset.
    #[schema(value_type = String)]
    pub end_local: DateTime<FixedOffset>,
    /// IANA zone.
    pub timezone: String,
    /// Where the window comes from.
    pub source: WindowSource,
    /// The configuration's id, for `maintenance_configuration`.
    pub maintenance_configuration_id: Option<Uuid>,
    /// How the machine matched that configuration's scope.
    pub matched_by: Option<MatchedBy>,
    /// DST remarks (a start moved out of a gap, a repeated hour, clocks changing inside).
    pub notes: Vec<String>,
}

/// `{items: [window…]}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Windows {
    /// The windows, earliest first.
    pub items: Vec<WindowView>,
}

/// The schedule that applies to a machine and where it comes from.
pub struct Applied {
    /// The schedule, on the clock it is read on.
    pub schedule: Schedule,
    /// Where it comes from.
    pub source: WindowSource,
    /// The configuration's id, for `maintenance_configuration`.
    pub configuration_id: Option<Uuid>,
    /// How the machine matched that configuration's scope.
    pub matched_by: Option<MatchedBy>,
}

/// The machine, or a 404 naming it.
pub async fn machine(app: &App, id: Uuid) -> Result<Machine, AppError> {
    machines::get(&app.pool, id).await.or_not_found(|| format!("no machine with id {id}"))
}

/// The schedule that governs the machine and where it comes from.
pub async fn applied(app: &App, machine: &Machine) -> Result<Applied, AppError> {
    let labels = serde_json::to_value(&machine.spec.labels).map_err(|e| AppError::Internal(e.to_string()))?;
    let found = maintenance::for_machine(&app.pool, machine.id, &labels, &machine.spec.region).await?;
    applied_from(&app.settings, &machine.spec.timezone, found.map(|(c, how)| (c.id, c.body, how)))
}

/// The schedule of a machine in zone `own_zone` under the configuration that applies to it
/// (its id, body and how it matched), or its default off-peak window when none does.
pub fn applied_from(
    settings: &Settings,
    own_zone: &hotpatch_domain::Timezone,
    configuration: Option<(Uuid, serde_json::Value, ScopeMatch)>,
) -> Result<Applied, AppError> {
    let own_zone = own_zone.0;
    let Some((id, body, how)) = configuration else {
        return Ok(Applied {
            schedule: Schedule::daily_off_peak(own_zone, settings.off_peak_start, settings.off_peak_duration),
            source: WindowSource::DefaultOffPeak,
            configuration_id: None,
            matched_by: None,
        });
    };
    let checked = stored_schedule(id, body)?;
    let schedule = match checked.timezone {
        Some(_) => checked.schedule,
        None => checked.schedule.with_timezone(own_zone),
    };
    let matched_by = match how {
        ScopeMatch::MachineId => MatchedBy::MachineId,
        ScopeMatch::Label => MatchedBy::Label,
        ScopeMatch::Region => MatchedBy::Region,
    };
    Ok(Applied {
        schedule,
        source: WindowSource::MaintenanceConfiguration,
        configuration_id: Some(id),
        matched_by: Some(matched_by),
    })
}

/// The windows of an applied schedule that have not ended at `from`, at most `count`.
pub fn windows_of(a: &Applied, from: DateTime<Utc>, count: usize) -> Vec<WindowView> {
    let view = |w: Window| WindowView {
        start: w.start,
        end: w.end,
        start_local: w.start_local,
        end_local: w.end_local,
        timezone: w.timezone.name().to_owned(),
        source: a.source,
        maintenance_configuration_id: a.configuration_id,
        matched_by: a.matched_by,
        notes: w.notes,
    };
    next_windows(&a.schedule, from, count.min(MAX_COUNT)).into_iter().map(view).collect()
}

/// A stored configuration's schedule; a body that no longer parses is an internal error.
pub fn stored_schedule(id: Uuid, body: serde_json::Value) -> Result<Checked, AppError> {
    let spec: ConfigurationSpec = serde_json::from_value(body)
        .map_err(|e| AppError::Internal(format!("stored maintenance configuration {id}: {e}")))?;
    check(&spec)
}

/// The machine's windows that have not ended at `from`, with their source (the same as
/// `GET /v1/machines/{id}/windows`; patch status shows the first as `next_window`).
pub async fn machine_windows_at(
    app: &App,
    machine: &Machine,
    from: DateTime<Utc>,
    count: usize,
) -> Result<Vec<WindowView>, AppError> {
    Ok(windows_of(&applied(app, machine).await?, from, count))
}

/// The next `count` windows of machine `id` that have not ended at `from` (default now).
pub async fn of_machine(
    app: &App,
    id: Uuid,
    from: Option<DateTime<Utc>>,
    count: usize,
) -> Result<Vec<WindowView>, AppError> {
    let m = machine(app, id).await?;
    machine_windows_at(app, &m, from.unwrap_or_else(|| app.clock.now()), count).await
}

/// The schedule that governs machine `id` and where it comes from.
pub async fn machine_schedule(app: &App, id: Uuid) -> Result<Applied, AppError> {
    applied(app, &machine(app, id).await?).await
}

/// A configuration's name and schedule (one without a zone of its own read on the UTC clock).
pub async fn configuration_schedule(app: &App, id: Uuid) -> Result<(String, Schedule), AppError> {
    let c = maintenance::get(&app.pool, id)
        .await
        .or_not_found(|| format!("no maintenance configuration with id {id}"))?;
    Ok((c.name, stored_schedule(c.id, c.body)?.schedule))
}
