//! What-if: the cycle of a machine under a catalog that is not (yet) the real one, nothing
//! written. Two scenarios:
//! 1. **An unplanned baseline** of an OS in a month: it is checked by the publishing rules as a
//!    real publication would be (so it may only be where an unplanned baseline may be), and it
//!    supersedes that month's hotpatch.
//! 2. **A hotpatch withdrawn**: the catalog without it, as if it had never been published.
//!
//! [`compare`] then says, for one machine, what it installs next and whether it reboots, and its
//! reboots in the year, under the real catalog and under the scenario's.

use chrono::{DateTime, Utc};
use hotpatch_domain::{Month, OsBuild, OsVersion, Release, ReleaseKind, ReleaseSpec};
use uuid::Uuid;

use super::calendar::CalendarRule;
use super::publish::{check_publish, PublishRuleViolation};
use super::reboots::{reboots_in_year, YearReboots};
use super::status::{cycle_status, CycleStatus, MachineState};

/// A change to the catalog to look at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scenario {
    /// An unplanned baseline of `os` for `month`, out at `released_at`.
    UnplannedBaseline {
        /// The OS.
        os: OsVersion,
        /// Its month.
        month: Month,
        /// When it comes out.
        released_at: DateTime<Utc>,
    },
    /// The hotpatch `release_id` withdrawn.
    HotpatchWithdrawn {
        /// The release.
        release_id: Uuid,
    },
}

impl Scenario {
    /// Whether the scenario's catalog applies to a machine that takes hotpatches or not
    /// (`hotpatch`): a withdrawn hotpatch leaves a machine without hotpatch alone, as it takes
    /// the month's cumulative update, which is not withdrawn.
    pub fn applies_to(&self, hotpatch: bool) -> bool {
        hotpatch || !matches!(self, Scenario::HotpatchWithdrawn { .. })
    }
}

/// Why a scenario cannot be looked at.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WhatIfError {
    /// The baseline could not be published: the rule it breaks.
    #[error(transparent)]
    Refused(#[from] PublishRuleViolation),
    /// No such release in the catalog.
    #[error("no release {0} in the catalog")]
    UnknownRelease(Uuid),
    /// Only hotpatches are withdrawn in a what-if.
    #[error("release {0} is a baseline: only a hotpatch can be withdrawn in a what-if")]
    NotAHotpatch(Uuid),
}

/// The id the hypothetical baseline has in the scenario's catalog (no real release has it:
/// real ids are v7).
pub const HYPOTHETICAL_ID: Uuid = Uuid::from_u128(0x0000_0000_0000_4000_8000_0000_0000_0001);

/// The catalog under `scenario`, and the scenario's instant (the baseline's release, or `now`
/// for a withdrawal, whichever is later).
pub fn scenario_catalog(
    catalog: &[Release],
    scenario: &Scenario,
    rule: &CalendarRule,
    now: DateTime<Utc>,
) -> Result<(Vec<Release>, DateTime<Utc>), WhatIfError> {
    match scenario {
        Scenario::UnplannedBaseline { os, month, released_at } => {
            // A build above every release of the OS, so it places as the newest.
            let build = catalog
                .iter()
                .filter(|r| r.spec.os == *os)
                .map(|r| r.spec.build)
                .max_by_key(|b| (b.build, b.revision))
                .map_or(OsBuild { build: 0, revision: 1 }, |b| OsBuild { revision: b.revision + 1, ..b });
            let spec = ReleaseSpec {
                os: *os,
                kind: ReleaseKind::Baseline,
                planned: false,
                month: *month,
                // 6 to 8 digits that no Microsoft KB has.
                kb: "KB000000".parse().expect("a valid KB"),
                build,
                released_at: *released_at,
            };
            let publication = check_publish(catalog, &spec, rule)?;
            let mut out = catalog.to_vec();
            if let Some(old) = publication.supersedes {
                out.iter_mut().filter(|r| r.id == old).for_each(|r| r.superseded_by = Some(HYPOTHETICAL_ID));
            }
            out.push(Release { id: HYPOTHETICAL_ID, spec, superseded_by: None });
            Ok((out, (*released_at).max(now)))
        }
        Scenario::HotpatchWithdrawn { release_id } => {
            let release = catalog
                .iter()
                .find(|r| r.id == *release_id)
                .ok_or(WhatIfError::UnknownRelease(*release_id))?;
            if release.spec.kind != ReleaseKind::Hotpatch {
                return Err(WhatIfError::NotAHotpatch(*release_id));
            }
            Ok((catalog.iter().filter(|r| r.id != *release_id).cloned().collect(), now))
        }
    }
}

/// One machine under the real catalog and under the scenario's, at the same instant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Comparison {
    /// Its cycle now.
    pub before: CycleStatus,
    /// Its cycle under the scenario.
    pub after: CycleStatus,
    /// Its reboots in the year now.
    pub reboots_before: YearReboots,
    /// Its reboots in the year under the scenario.
    pub reboots_after: YearReboots,
}

impl Comparison {
    /// What it installs next changes.
    pub fn changed(&self) -> bool {
        self.before.next_release.map(|n| n.release_id) != self.after.next_release.map(|n| n.release_id)
    }

    /// It must reboot for its next install under the scenario, and did not have to before.
    pub fn newly_reboots(&self) -> bool {
        self.after.reboot_required && !self.before.reboot_required
    }
}

/// A machine of `os` in `state` at `at`, under `before` and under `after`, the catalog of
/// `scenario` (which leaves some machines alone: [`Scenario::applies_to`]). A withdrawn hotpatch
/// changes no year's reboots: hotpatches reboot nobody, and the month keeps its cumulative update.
pub fn compare(
    scenario: &Scenario,
    before: &[Release],
    after: &[Release],
    os: OsVersion,
    state: &MachineState,
    rule: &CalendarRule,
    at: DateTime<Utc>,
) -> Comparison {
    let under = if scenario.applies_to(state.hotpatch) { after } else { before };
    let reboots_before = reboots_in_year(before, os, state.hotpatch, rule, at);
    let reboots_after = match scenario {
        Scenario::HotpatchWithdrawn { .. } => reboots_before,
        Scenario::UnplannedBaseline { .. } => reboots_in_year(under, os, state.hotpatch, rule, at),
    };
    Comparison {
        before: cycle_status(os, state, before, rule, at),
        after: cycle_status(os, state, under, rule, at),
        reboots_before,
        reboots_after,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::cycle::tests::Catalog;

    const OS: OsVersion = OsVersion::WindowsServer2022;

    fn at(m: u32, d: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, m, d, 12, 0, 0).unwrap()
    }

    #[test]
    fn an_unplanned_baseline_supersedes_the_months_hotpatch_and_reboots_hotpatch_machines() {
        let c = Catalog::jan_to_may();
        let may = "2025-05".parse().unwrap();
        let scenario = Scenario::UnplannedBaseline { os: OS, month: may, released_at: at(5, 22) };
        let (after, when) =
            scenario_catalog(&c.releases, &scenario, &CalendarRule::default(), at(5, 20)).unwrap();
        assert_eq!(when, at(5, 22));
        assert_eq!(
            after.iter().find(|r| r.id == c.id("2025-05")).unwrap().superseded_by,
            Some(HYPOTHETICAL_ID)
        );
        // On the April baseline with May's hotpatch: now nothing to do; then the new baseline.
        let on_may = MachineState {
            hotpatch: true,
            current_baseline: Some(c.id("2025-04")),
            latest_installed: Some(c.id("2025-05")),
            reboot_pending: false,
        };
        let cmp = compare(&scenario, &c.releases, &after, OS, &on_may, &CalendarRule::default(), when);
        assert!(cmp.changed() && cmp.newly_reboots(), "{cmp:?}");
        assert_eq!(cmp.after.next_release.unwrap().release_id, HYPOTHETICAL_ID);
        assert_eq!((cmp.reboots_before.projected, cmp.reboots_after.projected), (4, 5));
        // A machine without hotpatch takes the new month's update (with a reboot) too, but its
        // year counts a reboot a month either way.
        let off = MachineState { hotpatch: false, ..on_may };
        let cmp = compare(&scenario, &c.releases, &after, OS, &off, &CalendarRule::default(), when);
        assert!(cmp.newly_reboots());
        assert_eq!((cmp.reboots_before.projected, cmp.reboots_after.projected), (12, 12));
    }

    #[test]
    fn a_baseline_where_the_rules_forbid_one_is_refused() {
        let c = Catalog::jan_to_may();
        let april = "2025-04".parse().unwrap();
        let scenario = Scenario::UnplannedBaseline { os: OS, month: april, released_at: at(4, 20) };
        assert!(matches!(
            scenario_catalog(&c.releases, &scenario, &CalendarRule::default(), at(5, 20)),
            Err(WhatIfError::Refused(_))
        ));
    }

    #[test]
    fn a_withdrawn_hotpatch_leaves_its_machines_nothing_new_to_install() {
        let c = Catalog::jan_to_may();
        let may = c.id("2025-05");
        let scenario = Scenario::HotpatchWithdrawn { release_id: may };
        let (after, when) =
            scenario_catalog(&c.releases, &scenario, &CalendarRule::default(), at(5, 20)).unwrap();
        assert_eq!((after.len(), when), (c.releases.len() - 1, at(5, 20)));
        let on_april = MachineState {
            hotpatch: true,
            current_baseline: Some(c.id("2025-04")),
            latest_installed: Some(c.id("2025-04")),
            reboot_pending: false,
        };
        let cmp = compare(&scenario, &c.releases, &after, OS, &on_april, &CalendarRule::default(), when);
        assert_eq!(cmp.before.next_release.unwrap().release_id, may);
        assert!(cmp.changed() && !cmp.newly_reboots());
        assert_eq!(cmp.after.next_release, None);
        assert_eq!(cmp.reboots_after, cmp.reboots_before);
        let off = MachineState { hotpatch: false, ..on_april };
        let cmp = compare(&scenario, &c.releases, &after, OS, &off, &CalendarRule::default(), when);
        assert!(!cmp.changed(), "the month's cumulative update is not withdrawn");
        let baseline = c.id("2025-04");
        assert_eq!(
            scenario_catalog(
                &c.releases,
                &Scenario::HotpatchWithdrawn { release_id: baseline },
                &CalendarRule::default(),
                at(5, 20)
            ),
            Err(WhatIfError::NotAHotpatch(baseline))
        );
    }
}
