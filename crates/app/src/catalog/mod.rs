//! The release catalog: baselines and hotpatches with their publishing rules ([`releases`]),
//! the updates hotpatch does not cover ([`updates`]), and a year of the cycle ([`calendar`]).

pub mod calendar;
pub mod releases;
pub mod updates;

use chrono::{DateTime, Utc};
use hotpatch_domain::{Month, Release, ReleaseKind};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

pub use calendar::{calendar, CalendarMonthView, CalendarView, MonthStatusView};
pub use hotpatch_store::releases::{ReleaseFilter, UpdateFilter};
pub use releases::{get_release, list_releases, publish_release, ReleaseView};
pub use updates::{list_updates, publish_update, UpdateView};

/// A short reference to a release.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ReleaseRef {
    /// Identifier.
    pub id: Uuid,
    /// KB number.
    #[schema(value_type = String, example = "KB5034439")]
    pub kb: String,
    /// Month, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-01")]
    pub month: Month,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// Planned (`false` only for unplanned baselines).
    pub planned: bool,
    /// OS build it brings.
    #[schema(example = "20348.2227")]
    pub build: String,
    /// When it was released.
    pub released_at: DateTime<Utc>,
}

impl From<&Release> for ReleaseRef {
    fn from(r: &Release) -> Self {
        ReleaseRef {
            id: r.id,
            kb: r.spec.kb.to_string(),
            month: r.spec.month,
            kind: r.spec.kind,
            planned: r.spec.planned,
            build: r.spec.build.to_string(),
            released_at: r.spec.released_at,
        }
    }
}
