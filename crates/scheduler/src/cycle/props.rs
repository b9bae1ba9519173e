//! Properties of the cycle engine over random catalogs, machines and instants.

use chrono::{TimeZone, Utc};
use hotpatch_domain::{Month, OsVersion, ReleaseKind};
use proptest::prelude::*;
use uuid::Uuid;

use super::status::{baseline_of, current_baseline};
use super::tests::{spec, Catalog};
use super::*;

const OS: OsVersion = OsVersion::WindowsServer2022;

/// What an operator tries to publish in one month (the rules may refuse it).
#[derive(Debug, Clone, Copy)]
enum Attempt {
    Nothing,
    PlannedBaseline,
    Hotpatch,
    UnplannedBaseline,
    HotpatchThenUnplanned,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    prop_oneof![
        Just(Attempt::Nothing),
        Just(Attempt::PlannedBaseline),
        Just(Attempt::Hotpatch),
        Just(Attempt::UnplannedBaseline),
        Just(Attempt::HotpatchThenUnplanned),
    ]
}

/// A catalog over 2024–2026 built through the publishing rules.
fn catalog(attempts: &[Attempt]) -> Catalog {
    let mut c = Catalog::new();
    let start = Month::new(2024, 1).unwrap();
    let mut kb = 5_000_000;
    let mut publish = |c: &mut Catalog, kind, planned, m| {
        kb += 1;
        let _ = c.try_publish(spec(OS, kind, planned, m, kb));
    };
    for (i, a) in attempts.iter().enumerate() {
        let m = start.plus(i as i64).unwrap();
        match a {
            Attempt::Nothing => {}
            Attempt::PlannedBaseline => publish(&mut c, ReleaseKind::Baseline, true, m),
            Attempt::Hotpatch => publish(&mut c, ReleaseKind::Hotpatch, true, m),
            Attempt::UnplannedBaseline => publish(&mut c, ReleaseKind::Baseline, false, m),
            Attempt::HotpatchThenUnplanned => {
                publish(&mut c, ReleaseKind::Hotpatch, true, m);
                publish(&mut c, ReleaseKind::Baseline, false, m);
            }
        }
    }
    c
}

/// Attempts biased towards the rule's plan, so catalogs have long valid stretches.
fn attempts() -> impl Strategy<Value = Vec<Attempt>> {
    prop::collection::vec((any::<bool>(), attempt()), 36).prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (follow_plan, a))| match (follow_plan, i % 3) {
                (true, 0) => Attempt::PlannedBaseline,
                (true, _) => Attempt::Hotpatch,
                (false, _) => a,
            })
            .collect()
    })
}

fn pick(ids: &[Uuid], i: Option<prop::sample::Index>) -> Option<Uuid> {
    i.filter(|_| !ids.is_empty()).map(|i| ids[i.index(ids.len())])
}

fn machine(ids: &[Uuid], raw: &MachineRaw) -> MachineState {
    MachineState {
        hotpatch: raw.0,
        current_baseline: pick(ids, raw.1),
        latest_installed: pick(ids, raw.2),
        reboot_pending: raw.3,
    }
}

type MachineRaw = (bool, Option<prop::sample::Index>, Option<prop::sample::Index>, bool);

fn machine_raw() -> impl Strategy<Value = MachineRaw> {
    (any::<bool>(), any::<Option<prop::sample::Index>>(), any::<Option<prop::sample::Index>>(), any::<bool>())
}

proptest! {
    #[test]
    fn a_hotpatch_is_never_offered_to_a_machine_that_is_not_on_its_baseline(
        attempts in attempts(), raw in machine_raw(), month_i in 0i64..40, day in 1u32..=28, hour in 0u32..24,
    ) {
        let c = catalog(&attempts);
        let baselines: Vec<Uuid> =
            c.releases.iter().filter(|r| r.spec.kind == ReleaseKind::Baseline).map(|r| r.id).collect();
        let all: Vec<Uuid> = c.releases.iter().map(|r| r.id).collect();
        let mut state = machine(&all, &raw);
        // Machines report baselines as their baseline.
        state.current_baseline = pick(&baselines, raw.1);
        let m = Month::new(2024, 1).unwrap().plus(month_i).unwrap();
        let now = Utc.with_ymd_and_hms(m.year(), m.month(), day, hour, 0, 0).unwrap();
        let s = cycle_status(OS, &state, &c.releases, &CalendarRule::default(), now);
        if let Some(n) = s.next_release.filter(|n| n.kind == CycleKind::Hotpatch) {
            let hotpatch = c.releases.iter().find(|r| r.id == n.release_id).unwrap();
            let base = baseline_of(&c.releases, hotpatch).unwrap();
            prop_assert_eq!(state.current_baseline, Some(base.id));
            prop_assert_eq!(current_baseline(&c.releases, OS, now).map(|b| b.id), Some(base.id));
            prop_assert!(state.hotpatch && !state.reboot_pending && !s.needs_baseline);
            prop_assert!(hotpatch.is_active() && hotpatch.is_out(now));
        }
    }

    #[test]
    fn a_reboot_is_required_exactly_for_baselines_and_cumulative_updates(
        attempts in attempts(), raw in machine_raw(), month_i in 0i64..40, day in 1u32..=28,
    ) {
        let c = catalog(&attempts);
        let all: Vec<Uuid> = c.releases.iter().map(|r| r.id).collect();
        let state = machine(&all, &raw);
        let m = Month::new(2024, 1).unwrap().plus(month_i).unwrap();
        let now = Utc.with_ymd_and_hms(m.year(), m.month(), day, 12, 0, 0).unwrap();
        let s = cycle_status(OS, &state, &c.releases, &CalendarRule::default(), now);
        match s.next_release {
            Some(n) => {
                let needs = matches!(n.kind, CycleKind::Baseline | CycleKind::CumulativeUpdate);
                prop_assert_eq!(n.reboot_required, needs);
                prop_assert_eq!(s.reboot_required, needs);
                let release = c.releases.iter().find(|r| r.id == n.release_id).unwrap();
                if n.kind != CycleKind::CumulativeUpdate {
                    prop_assert_eq!(n.kind == CycleKind::Baseline, release.spec.kind == ReleaseKind::Baseline);
                }
            }
            None => prop_assert_eq!(s.reboot_required, state.reboot_pending),
        }
        prop_assert_eq!(s.kind == CycleKind::CumulativeUpdate, !state.hotpatch);
    }

    #[test]
    fn every_year_projects_4_planned_baselines_and_8_hotpatches(year in 2000i32..=9999, first in 1u32..=3) {
        let rule = CalendarRule::starting(first).unwrap();
        for os in [OsVersion::WindowsServer2022, OsVersion::WindowsServer2025] {
            let months = project_year(os, year, &rule);
            prop_assert_eq!(months.len(), 12);
            prop_assert!(months.iter().all(|m| m.planned && m.reboot_required == (m.kind == ReleaseKind::Baseline)));
            prop_assert_eq!(months.iter().filter(|m| m.kind == ReleaseKind::Baseline).count(), 4);
            prop_assert_eq!(months.iter().filter(|m| m.kind == ReleaseKind::Hotpatch).count(), 8);
        }
    }

    #[test]
    fn published_catalogs_keep_one_active_release_per_month_and_projections_stay_planned(attempts in attempts()) {
        let c = catalog(&attempts);
        for year in 2024..=2026 {
            let cal = calendar(OS, year, &CalendarRule::default(), &c.releases);
            for m in &cal {
                let active = c.releases.iter().filter(|r| r.spec.month == m.month && r.is_active()).count();
                prop_assert!(active <= 1);
                if m.status == MonthStatus::Projected {
                    prop_assert!(m.planned);
                }
                if m.kind == ReleaseKind::Hotpatch && m.status == MonthStatus::Published {
                    let r = m.release.unwrap();
                    prop_assert!(baseline_of(&c.releases, r).is_some_and(|b| r.spec.month.since(b.spec.month) <= 2));
                }
            }
        }
    }
}
