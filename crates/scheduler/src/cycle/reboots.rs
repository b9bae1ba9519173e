//! Reboots in a year, the benefit hotpatching is for (DESIGN §1 "Cycle"): a machine that takes
//! hotpatches reboots in baseline months only — the quarter's planned baseline and any unplanned
//! one — while the same machine on monthly cumulative updates reboots every month ("4 instead of
//! 12"). A machine without hotpatch reboots every month either way.
//!
//! The rules [`reboots_in_year`] follows, for the calendar year of `now` (UTC):
//! 1. A month **counts so far** when its active release of the machine's OS is out at `now`:
//!    with hotpatch it is a reboot when that release is a baseline; on monthly cumulative
//!    updates every such month is a reboot.
//! 2. The **projected year** adds the months without a release out: each a reboot when the
//!    calendar rule plans a baseline for it (with hotpatch), every one on monthly cumulative
//!    updates. So a year of the default rule projects 4 against 12, and an unplanned baseline
//!    published adds one.
//! 3. **Avoided** is the difference between the monthly-cumulative count and the machine's own
//!    (0 for a machine without hotpatch).
//!
//! These are the reboots the cycle asks for; reboots for other updates (non-security, .NET),
//! which hotpatch machines still take, are not counted on either side.

use chrono::{DateTime, Datelike, Utc};
use hotpatch_domain::{Month, OsVersion, Release, ReleaseKind};
use serde::Serialize;

use super::calendar::CalendarRule;
use super::publish::active_in;

/// A machine's reboots in one calendar year.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct YearReboots {
    /// The year (of `now`, UTC).
    pub year: i32,
    /// Months of the year whose release of the OS is out.
    pub months_out: u32,
    /// Reboots so far on the machine's own path (hotpatch or not).
    pub so_far: u32,
    /// Reboots so far had it been on monthly cumulative updates.
    pub so_far_monthly: u32,
    /// The whole year on the machine's path: the months out, and the calendar's plan for the rest.
    pub projected: u32,
    /// The whole year on monthly cumulative updates.
    pub projected_monthly: u32,
}

impl YearReboots {
    /// Reboots avoided so far.
    pub fn avoided(&self) -> u32 {
        self.so_far_monthly - self.so_far
    }

    /// Reboots the projected year avoids.
    pub fn projected_avoided(&self) -> u32 {
        self.projected_monthly - self.projected
    }

    /// `n` machines alike: every count times `n` (saturating), the year kept.
    pub fn times(self, n: u32) -> YearReboots {
        YearReboots {
            year: self.year,
            months_out: self.months_out,
            so_far: self.so_far.saturating_mul(n),
            so_far_monthly: self.so_far_monthly.saturating_mul(n),
            projected: self.projected.saturating_mul(n),
            projected_monthly: self.projected_monthly.saturating_mul(n),
        }
    }
}

/// The reboots of a machine of `os` that takes hotpatches or not (`hotpatch`) in the year of
/// `now`, by the rules of the module.
pub fn reboots_in_year(
    catalog: &[Release],
    os: OsVersion,
    hotpatch: bool,
    rule: &CalendarRule,
    now: DateTime<Utc>,
) -> YearReboots {
    let year = now.year();
    let mut r = YearReboots { year, ..YearReboots::default() };
    for m in (1..=12).filter_map(|m| Month::new(year, m)) {
        let out = active_in(catalog, os, m).filter(|release| release.is_out(now));
        let baseline = match out {
            Some(release) => {
                r.months_out += 1;
                r.so_far_monthly += 1;
                let baseline = release.spec.kind == ReleaseKind::Baseline;
                r.so_far += u32::from(baseline || !hotpatch);
                baseline
            }
            None => rule.planned_kind(os, m) == ReleaseKind::Baseline,
        };
        r.projected_monthly += 1;
        r.projected += u32::from(baseline || !hotpatch);
    }
    r
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::cycle::tests::Catalog;

    const OS: OsVersion = OsVersion::WindowsServer2022;

    fn at(y: i32, m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn hotpatch_reboots_four_times_a_year_instead_of_twelve() {
        let none = reboots_in_year(&[], OS, true, &CalendarRule::default(), at(2026, 3, 1));
        assert_eq!((none.so_far, none.so_far_monthly, none.months_out), (0, 0, 0));
        assert_eq!((none.projected, none.projected_monthly, none.projected_avoided()), (4, 12, 8));
        let without = reboots_in_year(&[], OS, false, &CalendarRule::default(), at(2026, 3, 1));
        assert_eq!((without.projected, without.projected_avoided()), (12, 0));
    }

    #[test]
    fn months_out_count_their_release_and_the_rest_the_calendar() {
        // January baseline, February and March hotpatches, April baseline … May hotpatch (2025).
        let c = Catalog::jan_to_may();
        let may = reboots_in_year(&c.releases, OS, true, &CalendarRule::default(), at(2025, 5, 31));
        assert_eq!((may.months_out, may.so_far, may.so_far_monthly, may.avoided()), (5, 2, 5, 3));
        assert_eq!((may.projected, may.projected_monthly), (4, 12));
        let off = reboots_in_year(&c.releases, OS, false, &CalendarRule::default(), at(2025, 5, 31));
        assert_eq!((off.so_far, off.avoided(), off.projected), (5, 0, 12));
        let next_year = reboots_in_year(&c.releases, OS, true, &CalendarRule::default(), at(2026, 1, 2));
        assert_eq!((next_year.year, next_year.months_out, next_year.so_far), (2026, 0, 0));
    }

    #[test]
    fn an_unplanned_baseline_adds_a_reboot() {
        let mut c = Catalog::jan_to_may();
        c.publish(ReleaseKind::Baseline, false, "2025-06");
        let june = reboots_in_year(&c.releases, OS, true, &CalendarRule::default(), at(2025, 6, 30));
        assert_eq!((june.so_far, june.projected, june.projected_avoided()), (3, 5, 7));
    }

    #[test]
    fn a_release_not_out_yet_is_projected_not_counted() {
        let c = Catalog::jan_to_may();
        // Early in May: the May hotpatch is in the catalog but comes out on the second Tuesday.
        let early = reboots_in_year(&c.releases, OS, true, &CalendarRule::default(), at(2025, 5, 1));
        assert_eq!((early.months_out, early.so_far_monthly), (4, 4));
        let n = early.times(3);
        assert_eq!((n.so_far, n.so_far_monthly, n.projected, n.year), (6, 12, 12, 2025));
    }
}
