//! Table-driven tests of the cycle rules, named after the rules.

use chrono::{DateTime, TimeZone, Utc};
use hotpatch_domain::{Month, OsBuild, OsVersion, Release, ReleaseKind, ReleaseSpec};
use uuid::Uuid;

use super::*;

const OS: OsVersion = OsVersion::WindowsServer2022;

pub(super) fn month(s: &str) -> Month {
    s.parse().unwrap()
}

/// Mid-month of `m` at noon UTC: after that month's second Tuesday.
pub(super) fn mid(m: Month) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(m.year(), m.month(), 20, 12, 0, 0).unwrap()
}

pub(super) fn spec(os: OsVersion, kind: ReleaseKind, planned: bool, m: Month, kb: u32) -> ReleaseSpec {
    ReleaseSpec {
        os,
        kind,
        planned,
        month: m,
        kb: format!("KB{kb}").parse().unwrap(),
        build: OsBuild { build: 20348, revision: kb % 10_000 },
        // The second Tuesday is between the 8th and the 14th; the 14th is always on or after it.
        released_at: Utc.with_ymd_and_hms(m.year(), m.month(), 14, 18, 0, 0).unwrap(),
    }
}

/// A catalog built by publishing through `check_publish`, as the API does.
pub(super) struct Catalog {
    pub releases: Vec<Release>,
    rule: CalendarRule,
}

impl Catalog {
    pub fn new() -> Self {
        Catalog { releases: vec![], rule: CalendarRule::default() }
    }

    /// Publishes and returns the new release's id; panics when a rule refuses it.
    pub fn publish(&mut self, kind: ReleaseKind, planned: bool, m: &str) -> Uuid {
        self.try_publish(spec(OS, kind, planned, month(m), 5_000_000 + self.releases.len() as u32))
            .unwrap_or_else(|e| panic!("{m}: {e}"))
    }

    pub fn try_publish(&mut self, s: ReleaseSpec) -> Result<Uuid, PublishRuleViolation> {
        let p = check_publish(&self.releases, &s, &self.rule)?;
        let id = Uuid::from_u128(self.releases.len() as u128 + 1);
        if let Some(old) = p.supersedes {
            self.releases.iter_mut().filter(|r| r.id == old).for_each(|r| r.superseded_by = Some(id));
        }
        self.releases.push(Release { id, spec: s, superseded_by: None });
        Ok(id)
    }

    pub fn id(&self, m: &str) -> Uuid {
        self.releases.iter().find(|r| r.spec.month == month(m) && r.is_active()).unwrap().id
    }

    /// January to May 2025: baselines in January and April, hotpatches in the others.
    pub fn jan_to_may() -> Self {
        let mut c = Catalog::new();
        c.publish(ReleaseKind::Baseline, true, "2025-01");
        c.publish(ReleaseKind::Hotpatch, true, "2025-02");
        c.publish(ReleaseKind::Hotpatch, true, "2025-03");
        c.publish(ReleaseKind::Baseline, true, "2025-04");
        c.publish(ReleaseKind::Hotpatch, true, "2025-05");
        c
    }

    fn status(&self, state: &MachineState, at: &str) -> CycleStatus {
        cycle_status(OS, state, &self.releases, &self.rule, mid(month(at)))
    }
}

fn on(baseline: Uuid, latest: Uuid) -> MachineState {
    MachineState {
        hotpatch: true,
        current_baseline: Some(baseline),
        latest_installed: Some(latest),
        reboot_pending: false,
    }
}

#[test]
fn january_baseline_then_february_and_march_hotpatches() {
    let projected = project_year(OS, 2025, &CalendarRule::default());
    let kinds: Vec<_> = projected.iter().take(3).map(|p| (p.month.to_string(), p.kind)).collect();
    assert_eq!(
        kinds,
        [
            ("2025-01".to_owned(), ReleaseKind::Baseline),
            ("2025-02".to_owned(), ReleaseKind::Hotpatch),
            ("2025-03".to_owned(), ReleaseKind::Hotpatch)
        ]
    );
    // And the catalog accepts exactly that.
    let c = Catalog::jan_to_may();
    let jan = c.id("2025-01");
    for m in ["2025-02", "2025-03"] {
        let s = c.status(&on(jan, jan), m);
        assert_eq!(s.kind, CycleKind::Hotpatch, "{m}");
        assert_eq!(s.next_release.map(|n| (n.release_id, n.kind)), Some((c.id(m), CycleKind::Hotpatch)));
        assert!(!s.reboot_required, "{m}: hotpatches need no reboot");
    }
}

#[test]
fn every_year_projects_exactly_4_planned_baselines_and_8_hotpatches() {
    for first in 1..=3 {
        let rule = CalendarRule::starting(first).unwrap();
        for year in [2000, 2024, 2025, 2026, 2100, 9999] {
            let months = project_year(OS, year, &rule);
            assert_eq!(months.len(), 12);
            let baselines: Vec<_> = months.iter().filter(|m| m.kind == ReleaseKind::Baseline).collect();
            assert_eq!(baselines.len(), 4, "{year} starting {first}");
            assert!(baselines.iter().all(|m| m.planned && m.reboot_required));
            assert_eq!(
                months.iter().filter(|m| m.kind == ReleaseKind::Hotpatch && !m.reboot_required).count(),
                8
            );
            assert_eq!(
                baselines.iter().map(|m| m.month.month()).collect::<Vec<_>>(),
                rule.baseline_months(OS)
            );
        }
    }
}

#[test]
fn baseline_months_are_configurable_per_os() {
    let rule = CalendarRule::default().with_os(OsVersion::WindowsServer2025, 2).unwrap();
    assert_eq!(rule.baseline_months(OsVersion::WindowsServer2022), [1, 4, 7, 10]);
    assert_eq!(rule.baseline_months(OsVersion::WindowsServer2025), [2, 5, 8, 11]);
    assert_eq!(CalendarRule::starting(4), Err(calendar::InvalidCalendarRule(4)));
}

#[test]
fn unplanned_baseline_in_may_supersedes_mays_hotpatch_and_requires_a_reboot() {
    let mut c = Catalog::jan_to_may();
    let (april, may_hotpatch) = (c.id("2025-04"), c.id("2025-05"));
    let unplanned = c.publish(ReleaseKind::Baseline, false, "2025-05");
    let old = c.releases.iter().find(|r| r.id == may_hotpatch).unwrap();
    assert_eq!(old.superseded_by, Some(unplanned), "the hotpatch stays, marked superseded");

    let s = c.status(&on(april, may_hotpatch), "2025-05");
    assert_eq!(s.kind, CycleKind::Baseline);
    assert!(s.needs_baseline && s.reboot_required);
    assert_eq!(s.next_release.map(|n| (n.release_id, n.kind)), Some((unplanned, CycleKind::Baseline)));

    let cal = calendar(OS, 2025, &c.rule, &c.releases);
    let may = &cal[4];
    assert_eq!((may.kind, may.planned, may.status), (ReleaseKind::Baseline, false, MonthStatus::Published));
    assert!(may.reboot_required);
}

#[test]
fn a_machine_still_on_januarys_baseline_in_may_needs_aprils_baseline_with_a_reboot_not_mays_hotpatch() {
    let c = Catalog::jan_to_may();
    let (jan, mar, april) = (c.id("2025-01"), c.id("2025-03"), c.id("2025-04"));
    let s = c.status(&on(jan, mar), "2025-05");
    assert_eq!(s.kind, CycleKind::Hotpatch, "May is a hotpatch month");
    assert!(s.needs_baseline && s.reboot_required);
    assert_eq!(s.next_release.map(|n| (n.release_id, n.kind)), Some((april, CycleKind::Baseline)));
}

#[test]
fn a_non_eligible_machine_gets_a_cumulative_update_with_reboot_every_month() {
    let c = Catalog::jan_to_may();
    let off = MachineState::default();
    for m in ["2025-01", "2025-02", "2025-03", "2025-04", "2025-05"] {
        let s = c.status(&off, m);
        assert_eq!(s.kind, CycleKind::CumulativeUpdate, "{m}");
        let n = s.next_release.unwrap();
        assert_eq!((n.kind, n.release_id, n.reboot_required), (CycleKind::CumulativeUpdate, c.id(m), true));
        assert!(s.reboot_required && !s.needs_baseline);
    }
}

#[test]
fn after_installing_a_baseline_the_machine_is_reboot_pending_until_it_reboots() {
    let c = Catalog::jan_to_may();
    let april = c.releases.iter().find(|r| r.id == c.id("2025-04")).unwrap();
    let before = on(c.id("2025-01"), c.id("2025-03"));
    let after = installed(&before, april, CycleKind::Baseline);
    assert!(after.reboot_pending);
    assert_eq!(after.current_baseline, Some(april.id));
    let s = c.status(&after, "2025-04");
    assert!(s.reboot_pending && s.reboot_required && s.next_release.is_none());

    let s = c.status(&rebooted(&after), "2025-04");
    assert!(!s.reboot_pending && !s.reboot_required && s.next_release.is_none(), "{s:?}");
    // In May it takes May's hotpatch, without a reboot.
    let s = c.status(&rebooted(&after), "2025-05");
    assert_eq!(s.next_release.map(|n| n.kind), Some(CycleKind::Hotpatch));
    assert!(!s.reboot_required);
}

#[test]
fn installing_a_hotpatch_leaves_no_reboot_pending() {
    let c = Catalog::jan_to_may();
    let feb = c.releases.iter().find(|r| r.id == c.id("2025-02")).unwrap();
    let s = installed(&on(c.id("2025-01"), c.id("2025-01")), feb, CycleKind::Hotpatch);
    assert!(!s.reboot_pending);
}

#[test]
fn a_machine_up_to_date_is_offered_nothing() {
    let c = Catalog::jan_to_may();
    let s = c.status(&on(c.id("2025-04"), c.id("2025-05")), "2025-05");
    assert_eq!((s.next_release, s.reboot_required, s.needs_baseline), (None, false, false));
}

#[test]
fn a_release_not_yet_out_is_not_offered() {
    let c = Catalog::jan_to_may();
    let early_may = Utc.with_ymd_and_hms(2025, 5, 2, 0, 0, 0).unwrap();
    let s = cycle_status(OS, &on(c.id("2025-04"), c.id("2025-04")), &c.releases, &c.rule, early_may);
    assert_eq!(s.next_release, None);
    assert_eq!(s.kind, CycleKind::Hotpatch, "the rule's plan before the release is out");
}

#[test]
fn publishing_rules() {
    use PublishRuleViolation as V;
    type Check = fn(&Result<Uuid, V>) -> bool;
    let accepted: Check = |r| r.is_ok();
    let cases: &[(&str, ReleaseKind, bool, &str, Check)] = &[
        ("planned baseline in a baseline month", ReleaseKind::Baseline, true, "2025-07", accepted),
        ("a second hotpatch in a month", ReleaseKind::Hotpatch, true, "2025-02", |r| {
            matches!(r, Err(V::MonthTaken { .. }))
        }),
        ("planned baseline outside a baseline month", ReleaseKind::Baseline, true, "2025-06", |r| {
            matches!(r, Err(V::PlannedBaselineOutsideBaselineMonth { .. }))
        }),
        ("hotpatch in a baseline month", ReleaseKind::Hotpatch, true, "2025-07", |r| {
            matches!(r, Err(V::HotpatchInBaselineMonth { .. }))
        }),
        (
            "hotpatch without a baseline in the two months before",
            ReleaseKind::Hotpatch,
            true,
            "2025-08",
            |r| matches!(r, Err(V::HotpatchWithoutBaseline { .. })),
        ),
        ("hotpatch two months after a baseline", ReleaseKind::Hotpatch, true, "2025-06", accepted),
        ("unplanned hotpatch", ReleaseKind::Hotpatch, false, "2025-06", |r| {
            matches!(r, Err(V::UnplannedHotpatch))
        }),
        ("unplanned baseline in a baseline month", ReleaseKind::Baseline, false, "2025-07", |r| {
            matches!(r, Err(V::UnplannedBaselineInBaselineMonth { .. }))
        }),
        ("unplanned baseline in an empty hotpatch month", ReleaseKind::Baseline, false, "2025-08", accepted),
        ("unplanned baseline superseding a hotpatch", ReleaseKind::Baseline, false, "2025-05", accepted),
        ("second baseline in a month", ReleaseKind::Baseline, true, "2025-04", |r| {
            matches!(r, Err(V::MonthTaken { .. }))
        }),
    ];
    for (name, kind, planned, m, check) in cases {
        let mut c = Catalog::jan_to_may();
        let r = c.try_publish(spec(OS, *kind, *planned, month(m), 6_000_000));
        assert!(check(&r), "{name}: {r:?}");
    }
}

#[test]
fn a_second_unplanned_baseline_in_the_same_month_is_refused() {
    let mut c = Catalog::jan_to_may();
    c.publish(ReleaseKind::Baseline, false, "2025-05");
    let r = c.try_publish(spec(OS, ReleaseKind::Baseline, false, month("2025-05"), 6_000_001));
    assert!(matches!(r, Err(PublishRuleViolation::MonthTaken { .. })), "{r:?}");
    assert!(r.unwrap_err().is_conflict());
}

#[test]
fn a_kb_is_unique_in_the_catalog() {
    let mut c = Catalog::jan_to_may();
    let mut s = spec(OS, ReleaseKind::Hotpatch, true, month("2025-06"), 6_000_000);
    s.kb = c.releases[0].spec.kb.clone();
    let e = c.try_publish(s).unwrap_err();
    assert!(matches!(e, PublishRuleViolation::KbTaken { .. }) && e.is_conflict());
    assert!(e.to_string().contains("kb unique"), "{e}");
}

#[test]
fn a_hotpatch_after_an_unplanned_baseline_applies_on_it() {
    let mut c = Catalog::jan_to_may();
    let unplanned = c.publish(ReleaseKind::Baseline, false, "2025-05");
    let june = c.publish(ReleaseKind::Hotpatch, true, "2025-06");
    let s = c.status(&on(unplanned, unplanned), "2025-06");
    assert_eq!(s.next_release.map(|n| n.release_id), Some(june));
}

#[test]
fn publishing_rules_are_per_os() {
    let mut c = Catalog::jan_to_may();
    let other = spec(OsVersion::WindowsServer2025, ReleaseKind::Hotpatch, true, month("2025-02"), 7_000_000);
    assert!(matches!(c.try_publish(other), Err(PublishRuleViolation::HotpatchWithoutBaseline { .. })));
}

#[test]
fn the_calendar_shows_published_months_and_projects_the_rest() {
    let c = Catalog::jan_to_may();
    let cal = calendar(OS, 2025, &c.rule, &c.releases);
    assert_eq!(cal.len(), 12);
    assert!(cal[..5].iter().all(|m| m.status == MonthStatus::Published && m.release.is_some()));
    assert!(cal[5..].iter().all(|m| m.status == MonthStatus::Projected && m.release.is_none() && m.planned));
    assert_eq!(cal[6].kind, ReleaseKind::Baseline);
}

#[test]
fn rollback_plan_from_a_hotpatch_month() {
    let c = Catalog::jan_to_may();
    let (jan, feb) = (c.id("2025-01"), c.id("2025-02"));
    let plan = rollback_plan(&on(jan, feb), &c.releases).unwrap();
    assert_eq!(
        plan,
        [
            RollbackStep::Uninstall { release_id: feb },
            RollbackStep::Install { release_id: jan },
            RollbackStep::Reboot
        ]
    );
}

#[test]
fn rollback_plan_from_a_baseline_month() {
    let c = Catalog::jan_to_may();
    let (jan, april) = (c.id("2025-01"), c.id("2025-04"));
    let plan = rollback_plan(&on(april, april), &c.releases).unwrap();
    assert_eq!(
        plan,
        [
            RollbackStep::Uninstall { release_id: april },
            RollbackStep::Install { release_id: jan },
            RollbackStep::Reboot
        ]
    );
}

#[test]
fn rollback_is_refused_without_anything_installed_or_an_earlier_baseline() {
    let c = Catalog::jan_to_may();
    assert_eq!(rollback_plan(&MachineState::default(), &c.releases), Err(RollbackRefused::NothingInstalled));
    let jan = c.id("2025-01");
    assert!(matches!(rollback_plan(&on(jan, jan), &c.releases), Err(RollbackRefused::NoEarlierBaseline(_))));
}
