//! The service clock as an administrator sees it, and moving it: allowed only when the process
//! runs with clock control (`HOTPATCH_CLOCK_CONTROL=true`), so end-to-end tests and demos can bring
//! a fleet's maintenance windows in seconds instead of days. Production leaves it off.
//!
//! A move is stored as an offset from the system clock (`service_clock`), so every replica
//! follows it (each reads it every second, see [`sync_clock`]) and a restart keeps it.

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_store as store;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::AppError;
use crate::App;

/// The service clock.
#[derive(Debug, Serialize, ToSchema)]
pub struct ClockView {
    /// What the service takes as now.
    pub now: DateTime<Utc>,
    /// Whether it can be moved (`HOTPATCH_CLOCK_CONTROL`).
    pub controllable: bool,
}

/// Where to move the clock; it keeps running from there.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetClock {
    /// The new now (RFC 3339).
    #[serde(deserialize_with = "hotpatch_domain::time::instant")]
    pub now: DateTime<Utc>,
}

/// The instant the service takes as now, and whether it can be moved.
pub fn clock(app: &App) -> ClockView {
    ClockView { now: app.clock.now(), controllable: app.settings.clock_control }
}

/// Moves the service clock (it keeps running from there); a 404 when clock control is off, as
/// if the operation did not exist.
pub async fn set_clock(app: &App, to: SetClock) -> Result<ClockView, AppError> {
    if !app.settings.clock_control {
        return Err(AppError::NotFound(
            "clock control is off (start hotpatchd with HOTPATCH_CLOCK_CONTROL=true to enable it)".to_owned(),
        ));
    }
    let before = app.clock.now();
    let offset = to.now - Utc::now();
    store::clock::set_offset_ms(&app.pool, offset.num_milliseconds()).await?;
    app.clock.set(to.now);
    tracing::warn!(%before, now = %to.now, "service clock moved");
    Ok(clock(app))
}

/// Has this replica's clock follow the stored offset (with clock control on; off, the clock is
/// the system's whatever was stored). Called at start and every second.
pub async fn sync_clock(app: &App) -> Result<(), AppError> {
    if !app.settings.clock_control {
        return Ok(());
    }
    if let Some(ms) = store::clock::offset_ms(&app.pool).await? {
        let offset = TimeDelta::milliseconds(ms);
        if app.clock.offset().is_some_and(|o| o != offset) {
            app.clock.follow(offset);
            tracing::info!(now = %app.clock.now(), "service clock follows the stored offset");
        }
    }
    Ok(())
}
