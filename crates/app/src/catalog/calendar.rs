//! A year of the cycle for one OS: each month published (the catalog's active release) or
//! projected (the calendar rule's plan; projections are always planned).

use hotpatch_domain::{Month, OsVersion, ReleaseKind};
use hotpatch_scheduler::cycle::{self, MonthStatus};
use hotpatch_store::releases;
use serde::Serialize;
use utoipa::ToSchema;

use super::ReleaseRef;
use crate::error::AppError;
use crate::App;

/// Published or projected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MonthStatusView {
    /// The catalog has the month's release.
    Published,
    /// Nothing published yet: the calendar rule's plan.
    Projected,
}

/// One month of the calendar.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarMonthView {
    /// `YYYY-MM`.
    #[schema(value_type = String, example = "2025-01")]
    pub month: Month,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// `false` only for a published unplanned baseline.
    pub planned: bool,
    /// Published or projected.
    pub status: MonthStatusView,
    /// The month's active release, when published.
    pub release: Option<ReleaseRef>,
    /// Whether installing the month's release requires a reboot (baselines).
    pub reboot_required: bool,
}

/// A year of the cycle for one OS.
#[derive(Debug, Serialize, ToSchema)]
pub struct CalendarView {
    /// The OS.
    pub os: OsVersion,
    /// The year.
    pub year: i32,
    /// Its twelve months, January first.
    pub months: Vec<CalendarMonthView>,
}

/// The twelve months of `year` for `os`: kind, planned or unplanned, published or projected,
/// the release when published, and whether it needs a reboot. Projected months never show
/// unplanned baselines (they cannot be predicted).
pub async fn calendar(app: &App, os: OsVersion, year: i32) -> Result<CalendarView, AppError> {
    let catalog = releases::catalog_of(&app.pool, os).await?;
    let months = cycle::calendar(os, year, &app.settings.calendar, &catalog)
        .into_iter()
        .map(|m| CalendarMonthView {
            month: m.month,
            kind: m.kind,
            planned: m.planned,
            status: match m.status {
                MonthStatus::Published => MonthStatusView::Published,
                MonthStatus::Projected => MonthStatusView::Projected,
            },
            release: m.release.map(ReleaseRef::from),
            reboot_required: m.reboot_required,
        })
        .collect();
    Ok(CalendarView { os, year, months })
}
