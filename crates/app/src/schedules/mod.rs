//! Schedules: maintenance configurations (parsed and checked once, at write, into
//! [`MaintenanceConfiguration`]; stored and loaded back as that type) and the windows that
//! follow for a machine from the configuration that governs it ([`windows`]).

pub mod feeds;
pub mod windows;

use chrono::{DateTime, Utc};
use hotpatch_domain::schedule::{ConfigurationSpec, MaintenanceConfiguration};
use hotpatch_scheduler::windows::{dst_warnings, Schedule, Tz};
use hotpatch_store::maintenance::{self, Configuration};
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, OrNotFound};
use crate::App;

/// Most zones whose DST warnings a configuration without a zone of its own lists.
pub const MAX_WARNING_ZONES: i64 = 50;
/// How far ahead the DST warnings of a write look, in months.
const WARNING_MONTHS: u32 = 12;

/// A stored configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationView {
    /// Its id.
    pub id: Uuid,
    /// The configuration.
    #[serde(flatten)]
    pub spec: MaintenanceConfiguration,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Create and update only: windows in the next 12 months that a DST change moves, skips
    /// or makes end at another wall-clock time, in the configuration's zone or, without
    /// one, in the zones of the machines in scope now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl ConfigurationView {
    /// The view of a stored configuration (with the warnings of a write).
    pub fn of(c: Configuration, warnings: Option<Vec<String>>) -> Self {
        ConfigurationView {
            id: c.id,
            spec: c.configuration,
            created_at: c.created_at,
            updated_at: c.updated_at,
            warnings,
        }
    }
}

fn not_found(id: Uuid) -> String {
    format!("no maintenance configuration with id {id}")
}

/// Parses a configuration as sent, naming every bad field at once.
pub fn parse(spec: ConfigurationSpec) -> Result<MaintenanceConfiguration, AppError> {
    MaintenanceConfiguration::parse(spec).map_err(AppError::invalid)
}

/// DST warnings for the next 12 months: in the configuration's zone, or, without one, in
/// each zone of the machines its scope matches now (prefixed with the zone).
async fn warnings(app: &App, c: &MaintenanceConfiguration) -> Result<Vec<String>, AppError> {
    let now = app.clock.now();
    let messages = |s: &Schedule| dst_warnings(s, now, WARNING_MONTHS).into_iter().map(|w| w.message);
    if c.timezone().is_some() {
        return Ok(messages(&Schedule::of_configuration(c, Tz::UTC)).collect());
    }
    let scope = c.scope();
    let labels = serde_json::to_value(&scope.labels).map_err(AppError::internal)?;
    let zones = maintenance::scope_timezones(
        &app.pool,
        &scope.machine_ids,
        &labels,
        &scope.regions,
        MAX_WARNING_ZONES,
    )
    .await?;
    let mut out = Vec::new();
    for zone in zones.iter().filter_map(|z| z.parse::<Tz>().ok()) {
        out.extend(messages(&Schedule::of_configuration(c, zone)).map(|m| format!("{zone}: {m}")));
    }
    Ok(out)
}

/// Creates a configuration; the answer lists the windows a DST change affects in the next 12 months.
pub async fn create(app: &App, spec: ConfigurationSpec) -> Result<ConfigurationView, AppError> {
    let configuration = parse(spec)?;
    let stored = maintenance::insert(&app.pool, Uuid::now_v7(), &configuration).await?;
    let warnings = warnings(app, &configuration).await?;
    tracing::info!(configuration_id = %stored.id, "maintenance configuration created");
    Ok(ConfigurationView::of(stored, Some(warnings)))
}

/// Changes some fields (a JSON merge patch: the fields given replace the stored ones, `null`
/// resets one to its default); the whole configuration is checked again.
pub async fn patch(app: &App, id: Uuid, patch: Map<String, Value>) -> Result<ConfigurationView, AppError> {
    let current = maintenance::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    let Value::Object(mut body) = serde_json::to_value(&current.configuration).map_err(AppError::internal)?
    else {
        return Err(AppError::Internal(format!("maintenance configuration {id} is not a JSON object")));
    };
    for (k, v) in patch {
        if v.is_null() {
            body.remove(&k);
        } else {
            body.insert(k, v);
        }
    }
    // The merged body gets the field errors a request body would get.
    let bytes = serde_json::to_vec(&body).map_err(AppError::internal)?;
    let configuration = parse(crate::json::parse(&bytes)?)?;
    let stored = maintenance::update(&app.pool, id, &configuration).await.or_not_found(|| not_found(id))?;
    let warnings = warnings(app, &configuration).await?;
    tracing::info!(configuration_id = %id, "maintenance configuration updated");
    Ok(ConfigurationView::of(stored, Some(warnings)))
}

/// One configuration.
pub async fn get(app: &App, id: Uuid) -> Result<ConfigurationView, AppError> {
    let c = maintenance::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    Ok(ConfigurationView::of(c, None))
}

/// Configurations in id order after `after`, at most `limit`.
pub async fn list(app: &App, after: Option<Uuid>, limit: i64) -> Result<Vec<ConfigurationView>, AppError> {
    let rows = maintenance::list(&app.pool, after, limit).await?;
    Ok(rows.into_iter().map(|c| ConfigurationView::of(c, None)).collect())
}

/// Deletes a configuration; its machines fall back to their default off-peak window.
pub async fn delete(app: &App, id: Uuid) -> Result<(), AppError> {
    maintenance::delete(&app.pool, id).await.or_not_found(|| not_found(id))?;
    tracing::info!(configuration_id = %id, "maintenance configuration deleted");
    Ok(())
}
