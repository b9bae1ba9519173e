//! A machine's maintenance windows: the configuration that governs it (machine id > label >
//! region, then the oldest) or its default off-peak window, read in its own zone unless the
//! configuration has one.

use chrono::{DateTime, FixedOffset, Utc};
use hotpatch_domain::schedule::{MaintenanceConfiguration, ScopeMatch};
use hotpatch_scheduler::windows::{next_windows, Schedule, Window};
use hotpatch_store::machines::{self, Machine};
use hotpatch_store::maintenance;
use serde::Serialize;
use sqlx::PgExecutor;
use utoipa::ToSchema;
use uuid::Uuid;

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

/// How the machine is in the configuration's scope (shown as `MatchedBy`).
pub use hotpatch_domain::schedule::ScopeMatch as MatchedBy;

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
    applied_in(app, &app.pool, machine).await
}

/// [`applied`], read through `db` (a transaction reads the configuration it decides with).
pub async fn applied_in(app: &App, db: impl PgExecutor<'_>, machine: &Machine) -> Result<Applied, AppError> {
    let labels = serde_json::to_value(&machine.spec.labels).map_err(AppError::internal)?;
    let found = maintenance::for_machine(db, machine.id, &labels, &machine.spec.region).await?;
    Ok(applied_from(
        &app.settings,
        &machine.spec.timezone,
        found.as_ref().map(|(c, how)| (c.id, &c.configuration, *how)),
    ))
}

/// The schedule of a machine in zone `own_zone` under the configuration that governs it (its id,
/// the configuration and how the machine matched), or its default off-peak window when none does.
pub fn applied_from(
    settings: &Settings,
    own_zone: &hotpatch_domain::Timezone,
    configuration: Option<(Uuid, &MaintenanceConfiguration, ScopeMatch)>,
) -> Applied {
    let own_zone = own_zone.0;
    match configuration {
        None => Applied {
            schedule: Schedule::daily_off_peak(own_zone, settings.off_peak_start, settings.off_peak_duration),
            source: WindowSource::DefaultOffPeak,
            configuration_id: None,
            matched_by: None,
        },
        Some((id, configuration, how)) => Applied {
            schedule: Schedule::of_configuration(configuration, own_zone),
            source: WindowSource::MaintenanceConfiguration,
            configuration_id: Some(id),
            matched_by: Some(how),
        },
    }
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
    // A configuration without a zone of its own is read on the UTC clock here.
    Ok((c.configuration.name().to_owned(), Schedule::of_configuration(&c.configuration, chrono_tz::UTC)))
}

/// The next `count` windows of maintenance configuration `id` that have not ended at `from`
/// (default now); one without a zone of its own is read on the UTC clock, as its calendar is.
pub async fn of_configuration(
    app: &App,
    id: Uuid,
    from: Option<DateTime<Utc>>,
    count: usize,
) -> Result<Vec<WindowView>, AppError> {
    let (_, schedule) = configuration_schedule(app, id).await?;
    let applied = Applied {
        schedule,
        source: WindowSource::MaintenanceConfiguration,
        configuration_id: Some(id),
        matched_by: None,
    };
    Ok(windows_of(&applied, from.unwrap_or_else(|| app.clock.now()), count))
}
