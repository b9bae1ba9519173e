//! The calendar rule (which months are planned baselines, per OS) and the twelve months of a
//! year: published where the catalog has a release, projected from the rule elsewhere.

use std::collections::BTreeMap;

use hotpatch_domain::{Month, OsVersion, Release, ReleaseKind};
use serde::{Deserialize, Serialize};

/// Which months are planned baselines. Baselines come every three months, so the rule is the
/// first baseline month of the year (1–3) per OS; every other month is a hotpatch month.
/// The default is January (January, April, July, October) for every OS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CalendarRule {
    /// First baseline month of the year (1, 2 or 3) for OSes without their own entry.
    pub default_first_month: u32,
    /// First baseline month of the year per OS, where it differs from the default.
    pub first_month: BTreeMap<OsVersion, u32>,
}

impl Default for CalendarRule {
    fn default() -> Self {
        CalendarRule { default_first_month: 1, first_month: BTreeMap::new() }
    }
}

/// Why a calendar rule cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the first baseline month of a year must be 1, 2 or 3 (got {0}); baselines come every three months")]
pub struct InvalidCalendarRule(pub u32);

impl CalendarRule {
    /// A rule whose baseline months start at `first` (1–3) for every OS.
    pub fn starting(first: u32) -> Result<Self, InvalidCalendarRule> {
        let rule = CalendarRule { default_first_month: first, first_month: BTreeMap::new() };
        rule.validate()?;
        Ok(rule)
    }

    /// Sets the first baseline month of one OS.
    pub fn with_os(mut self, os: OsVersion, first: u32) -> Result<Self, InvalidCalendarRule> {
        self.first_month.insert(os, first);
        self.validate()?;
        Ok(self)
    }

    /// Checks every entry is 1–3.
    pub fn validate(&self) -> Result<(), InvalidCalendarRule> {
        std::iter::once(&self.default_first_month)
            .chain(self.first_month.values())
            .find(|m| !(1..=3).contains(*m))
            .map_or(Ok(()), |m| Err(InvalidCalendarRule(*m)))
    }

    fn first(&self, os: OsVersion) -> u32 {
        let m = self.first_month.get(&os).copied().unwrap_or(self.default_first_month);
        // A rule that skipped `validate` still yields a valid phase.
        (m.saturating_sub(1) % 3) + 1
    }

    /// The four baseline months of the year of `os`, e.g. `[1, 4, 7, 10]`.
    pub fn baseline_months(&self, os: OsVersion) -> [u32; 4] {
        let f = self.first(os);
        [f, f + 3, f + 6, f + 9]
    }

    /// Whether `month` is a planned baseline month of `os`.
    pub fn is_baseline_month(&self, os: OsVersion, month: Month) -> bool {
        (month.month() + 3 - self.first(os)).is_multiple_of(3)
    }

    /// The kind the rule plans for `month`.
    pub fn planned_kind(&self, os: OsVersion, month: Month) -> ReleaseKind {
        if self.is_baseline_month(os, month) {
            ReleaseKind::Baseline
        } else {
            ReleaseKind::Hotpatch
        }
    }
}

/// One month as the rule plans it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ProjectedMonth {
    /// The month.
    pub month: Month,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// Always `true`: unplanned baselines cannot be predicted.
    pub planned: bool,
    /// Whether installing it requires a reboot (baselines).
    pub reboot_required: bool,
}

/// The twelve months of `year` as the rule plans them: 4 planned baselines and 8 hotpatches.
/// Projections never invent unplanned baselines. Empty for a year outside 2000–9999.
pub fn project_year(os: OsVersion, year: i32, rule: &CalendarRule) -> Vec<ProjectedMonth> {
    (1..=12)
        .filter_map(|m| Month::new(year, m))
        .map(|month| {
            let kind = rule.planned_kind(os, month);
            ProjectedMonth { month, kind, planned: true, reboot_required: kind.requires_reboot() }
        })
        .collect()
}

/// Whether a calendar month comes from the catalog or from the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MonthStatus {
    /// A release of the catalog is in effect for this month.
    Published,
    /// Nothing is published yet: the rule's plan.
    Projected,
}

/// One month of a calendar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CalendarMonth<'a> {
    /// The month.
    pub month: Month,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// Whether it is planned (`false` only for a published unplanned baseline).
    pub planned: bool,
    /// Published or projected.
    pub status: MonthStatus,
    /// The active release of the month, when published.
    pub release: Option<&'a Release>,
    /// Whether installing it requires a reboot (baselines).
    pub reboot_required: bool,
}

/// The twelve months of `year` for `os`: each month's active release where the catalog has
/// one (an unplanned baseline shows instead of the hotpatch it superseded), the rule's plan
/// elsewhere.
pub fn calendar<'a>(
    os: OsVersion,
    year: i32,
    rule: &CalendarRule,
    catalog: &'a [Release],
) -> Vec<CalendarMonth<'a>> {
    project_year(os, year, rule)
        .into_iter()
        .map(|p| {
            let published =
                catalog.iter().find(|r| r.spec.os == os && r.spec.month == p.month && r.is_active());
            match published {
                Some(r) => CalendarMonth {
                    month: p.month,
                    kind: r.spec.kind,
                    planned: r.spec.planned,
                    status: MonthStatus::Published,
                    release: Some(r),
                    reboot_required: r.spec.kind.requires_reboot(),
                },
                None => CalendarMonth {
                    month: p.month,
                    kind: p.kind,
                    planned: true,
                    status: MonthStatus::Projected,
                    release: None,
                    reboot_required: p.reboot_required,
                },
            }
        })
        .collect()
}
