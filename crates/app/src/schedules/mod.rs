//! Schedules: maintenance configurations (checked once, at write) and which one governs a
//! machine, and the windows that follow from it ([`windows`]).

pub mod spec;
pub mod windows;

use hotpatch_scheduler::windows::{dst_warnings, Tz};
use hotpatch_store::maintenance::{self, Configuration, ConfigurationWrite};
use serde_json::{Map, Value};
use uuid::Uuid;

pub use spec::{check, parse_duration, Checked, ConfigurationSpec, ConfigurationView, Reboot, Scope};

use crate::error::{AppError, OrNotFound};
use crate::App;

/// Most zones whose DST warnings a configuration without a zone of its own lists.
pub const MAX_WARNING_ZONES: i64 = 50;

fn not_found(id: Uuid) -> String {
    format!("no maintenance configuration with id {id}")
}

/// DST warnings for the next 12 months: in the configuration's zone, or, without one, in
/// each zone of the machines its scope matches now (prefixed with the zone).
async fn warnings(
    app: &App,
    spec: &ConfigurationSpec,
    checked: &Checked,
    labels: &Value,
) -> Result<Vec<String>, AppError> {
    let now = app.clock.now();
    if checked.timezone.is_some() {
        return Ok(dst_warnings(&checked.schedule, now, 12).into_iter().map(|w| w.message).collect());
    }
    let zones = maintenance::scope_timezones(
        &app.pool,
        &spec.scope.machine_ids,
        labels,
        &spec.scope.regions,
        MAX_WARNING_ZONES,
    )
    .await?;
    let mut out = Vec::new();
    for zone in zones.iter().filter_map(|z| z.parse::<Tz>().ok()) {
        let schedule = checked.schedule.clone().with_timezone(zone);
        out.extend(dst_warnings(&schedule, now, 12).into_iter().map(|w| format!("{zone}: {}", w.message)));
    }
    Ok(out)
}

async fn write(app: &App, id: Option<Uuid>, spec: ConfigurationSpec) -> Result<ConfigurationView, AppError> {
    let checked = check(&spec)?;
    let body = serde_json::to_value(&spec).map_err(AppError::internal)?;
    let labels = serde_json::to_value(&spec.scope.labels).map_err(AppError::internal)?;
    let w = ConfigurationWrite {
        name: &spec.name,
        body: &body,
        scope_machine_ids: &spec.scope.machine_ids,
        scope_labels: &labels,
        scope_regions: &spec.scope.regions,
    };
    let stored = match id {
        None => maintenance::insert(&app.pool, Uuid::now_v7(), w).await?,
        Some(id) => maintenance::update(&app.pool, id, w).await.or_not_found(|| not_found(id))?,
    };
    let warnings = warnings(app, &spec, &checked, &labels).await?;
    ConfigurationView::from_stored(stored, Some(warnings))
}

/// Creates a configuration; the answer lists the windows a DST change affects in the next 12 months.
pub async fn create(app: &App, spec: ConfigurationSpec) -> Result<ConfigurationView, AppError> {
    let view = write(app, None, spec).await?;
    tracing::info!(configuration_id = %view.id, "maintenance configuration created");
    Ok(view)
}

/// Changes some fields (a JSON merge patch: the fields given replace the stored ones, `null`
/// resets one to its default); the whole configuration is checked again.
pub async fn patch(app: &App, id: Uuid, patch: Map<String, Value>) -> Result<ConfigurationView, AppError> {
    let current = maintenance::get(&app.pool, id).await.or_not_found(|| not_found(id))?;
    let Value::Object(mut body) = current.body else {
        return Err(AppError::Internal(format!("stored maintenance configuration {id} is not an object")));
    };
    for (k, v) in patch {
        if v.is_null() {
            body.remove(&k);
        } else {
            body.insert(k, v);
        }
    }
    let spec: ConfigurationSpec = spec::from_json_object(body)?;
    let view = write(app, Some(id), spec).await?;
    tracing::info!(configuration_id = %id, "maintenance configuration updated");
    Ok(view)
}

/// One configuration.
pub async fn get(app: &App, id: Uuid) -> Result<Configuration, AppError> {
    maintenance::get(&app.pool, id).await.or_not_found(|| not_found(id))
}

/// Configurations in id order after `after`, at most `limit`.
pub async fn list(app: &App, after: Option<Uuid>, limit: i64) -> Result<Vec<ConfigurationView>, AppError> {
    let rows = maintenance::list(&app.pool, after, limit).await?;
    rows.into_iter().map(|c| ConfigurationView::from_stored(c, None)).collect()
}

/// Deletes a configuration; its machines fall back to their default off-peak window.
pub async fn delete(app: &App, id: Uuid) -> Result<(), AppError> {
    maintenance::delete(&app.pool, id).await.or_not_found(|| not_found(id))?;
    tracing::info!(configuration_id = %id, "maintenance configuration deleted");
    Ok(())
}
