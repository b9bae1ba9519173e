//! Rollout plans: the rules of issue 6 one test each, named as sentences.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotpatch_domain::{OsBuild, OsVersion, PatchOrchestration, Release, ReleaseKind, ReleaseSpec};
use hotpatch_scheduler::cycle::{CycleKind, MachineState};
use hotpatch_scheduler::rollout::{
    plan_rollout, PlanWindow, PlannedMachine, RolloutError, RolloutMachine, RolloutOptions, RolloutPlan,
    RolloutRelease, UnplannedReason,
};
use hotpatch_scheduler::windows::Schedule;
use uuid::Uuid;

const OS: OsVersion = OsVersion::WindowsServer2022;
const BASELINE: Uuid = Uuid::from_u128(0xB);
const OLD_BASELINE: Uuid = Uuid::from_u128(0xA);
const HOTPATCH: Uuid = Uuid::from_u128(0xC);

/// February 2025, day `d`, `h`:00 UTC.
fn utc_hm(d: u32, h: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 2, d, h, 0, 0).unwrap()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 2, 11, 18, 0, 0).unwrap()
}

fn hotpatch() -> RolloutRelease {
    RolloutRelease { id: HOTPATCH, os: OS, kind: ReleaseKind::Hotpatch, baseline_id: Some(BASELINE) }
}

fn id(n: usize) -> Uuid {
    Uuid::from_u128(0x1000 + n as u128)
}

/// A hotpatch machine on the hotpatch's baseline.
fn machine(n: usize, region: &str, zone: Option<&str>, set: Option<&str>, ud: Option<i32>) -> RolloutMachine {
    RolloutMachine {
        machine_id: id(n),
        os: OS,
        orchestration: PatchOrchestration::AutomaticByPlatform,
        region: region.into(),
        availability_zone: zone.map(Into::into),
        availability_set: set.map(Into::into),
        update_domain: ud,
        state: MachineState { hotpatch: true, current_baseline: Some(BASELINE), ..MachineState::default() },
    }
}

/// `count` machines outside sets in `region` and `zone`, numbered from `first`.
fn loose(first: usize, count: usize, region: &str, zone: Option<&str>) -> Vec<RolloutMachine> {
    (first..first + count).map(|n| machine(n, region, zone, None, None)).collect()
}

/// Every machine's window: daily, 01:00–05:00 UTC.
fn nightly(_: &RolloutMachine, from: DateTime<Utc>) -> Option<PlanWindow> {
    let day = from.date_naive().and_hms_opt(1, 0, 0).unwrap().and_utc();
    let start = if day >= from { day } else { day + Duration::days(1) };
    Some(PlanWindow { start, end: start + Duration::hours(4) })
}

fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
    p.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect()
}

fn plan(
    machines: &[RolloutMachine],
    region_pairs: &[(String, String)],
    options: &RolloutOptions,
) -> RolloutPlan {
    plan_rollout(&hotpatch(), machines, region_pairs, options, start(), nightly).unwrap()
}

fn planned(plan: &RolloutPlan) -> impl Iterator<Item = &PlannedMachine> {
    plan.waves.iter().flat_map(|w| &w.batches).flat_map(|b| &b.machines)
}

fn wave_regions(plan: &RolloutPlan) -> Vec<Vec<&str>> {
    plan.waves.iter().map(|w| w.regions.iter().map(String::as_str).collect()).collect()
}

fn options_with(f: impl FnOnce(&mut RolloutOptions)) -> RolloutOptions {
    let mut o = RolloutOptions::default();
    f(&mut o);
    o
}

#[test]
fn geo_paired_regions_never_share_a_wave() {
    let regions = ["eastus", "westus", "uksouth", "ukwest", "westeurope", "northeurope"];
    let machines: Vec<_> = regions.iter().enumerate().flat_map(|(i, r)| loose(i * 10, 3, r, None)).collect();
    let geo = pairs(&[("eastus", "westus"), ("uksouth", "ukwest"), ("northeurope", "westeurope")]);
    let plan = plan(&machines, &geo, &RolloutOptions::default());
    assert_eq!(
        wave_regions(&plan),
        vec![vec!["eastus", "northeurope", "uksouth"], vec!["ukwest", "westeurope", "westus"]]
    );
    for wave in &plan.waves {
        for (a, b) in &geo {
            assert!(
                !(wave.regions.contains(a) && wave.regions.contains(b)),
                "{a} and {b} in wave {}",
                wave.index
            );
        }
    }
}

#[test]
fn region_names_and_pairs_compare_case_insensitively() {
    let mut machines = loose(0, 2, "EastUS", None);
    machines.extend(loose(10, 2, "westus", None));
    let plan = plan(&machines, &pairs(&[("eastus", "WestUS")]), &RolloutOptions::default());
    assert_eq!(wave_regions(&plan), vec![vec!["eastus"], vec!["westus"]]);
}

/// The invariant: every batch holds machines of one region and one zone (machines without a
/// zone are a zone of their own), and batches never overlap, so two zones of a region are never
/// patched at once; a region's zones go one after the other, each in one run of batches.
#[test]
fn no_two_zones_of_a_region_in_one_wave_step() {
    let mut machines = Vec::new();
    for (i, zone) in [Some("1"), Some("2"), Some("3"), None].into_iter().enumerate() {
        machines.extend(loose(i * 100, 12, "eastus", zone));
        machines.extend(
            (0..10).map(|k| machine(i * 100 + 50 + k, "eastus", zone, Some("web"), Some(k as i32 % 2))),
        );
    }
    let by_id: BTreeMap<Uuid, &RolloutMachine> = machines.iter().map(|m| (m.machine_id, m)).collect();
    let plan = plan(&machines, &[], &RolloutOptions::default());
    let batches: Vec<_> = plan.waves.iter().flat_map(|w| &w.batches).collect();
    for b in &batches {
        for m in &b.machines {
            assert_eq!(by_id[&m.machine_id].availability_zone, b.zone, "batch {}", b.index);
        }
    }
    let runs: Vec<Option<&str>> = batches.iter().map(|b| b.zone.as_deref()).collect();
    let mut zones = runs.clone();
    zones.dedup();
    assert_eq!(zones, vec![None, Some("1"), Some("2"), Some("3")], "each zone is one run: {runs:?}");
    for pair in batches.windows(2) {
        assert!(pair[1].planned_start >= pair[0].planned_end);
    }
}

#[test]
fn an_availability_set_never_has_more_than_twenty_percent_in_one_batch() {
    // 40 machines in 4 update domains of 10: at most 8 at once.
    let machines: Vec<_> =
        (0..40).map(|n| machine(n, "eastus", None, Some("sql"), Some(n as i32 % 4))).collect();
    let plan = plan(&machines, &[], &options_with(|o| o.max_batch_percent = 100));
    let sizes: Vec<usize> = plan.waves[0].batches.iter().map(|b| b.machines.len()).collect();
    assert_eq!(sizes, vec![8, 2, 8, 2, 8, 2, 8, 2]);
    // A lower max_batch_percent applies to sets too.
    let plan = plan_rollout(
        &hotpatch(),
        &machines,
        &[],
        &options_with(|o| o.max_batch_percent = 10),
        start(),
        nightly,
    )
    .unwrap();
    assert!(plan.waves[0].batches.iter().all(|b| b.machines.len() <= 4));
}

#[test]
fn a_set_is_its_name_within_a_region_across_zones_and_letter_case() {
    // "Sql" and "sql" in two zones are one set of 10 machines: at most 2 per batch, even per zone.
    let mut machines: Vec<_> =
        (0..5).map(|n| machine(n, "eastus", Some("1"), Some("Sql"), Some(0))).collect();
    machines.extend((5..10).map(|n| machine(n, "eastus", Some("2"), Some("sql"), Some(0))));
    let plan = plan(&machines, &[], &RolloutOptions::default());
    let sizes: Vec<usize> = plan.waves[0].batches.iter().map(|b| b.machines.len()).collect();
    assert_eq!(sizes, vec![2, 2, 1, 2, 2, 1]);
}

#[test]
fn a_small_availability_set_goes_one_machine_at_a_time() {
    let machines: Vec<_> =
        (0..9).map(|n| machine(n, "eastus", None, Some("dc"), Some(n as i32 % 3))).collect();
    let plan = plan(&machines, &[], &options_with(|o| o.max_batch_percent = 100));
    let batches = &plan.waves[0].batches;
    assert_eq!(batches.len(), 9);
    assert!(batches.iter().all(|b| b.machines.len() == 1));
}

#[test]
fn one_update_domain_at_a_time() {
    // 20 machines over update domains 0..5 (4 each), plus machines without a domain.
    let mut machines: Vec<_> =
        (0..20).map(|n| machine(n, "eastus", None, Some("app"), Some((n * 7 % 5) as i32))).collect();
    machines.extend((20..23).map(|n| machine(n, "eastus", None, Some("app"), None)));
    let plan = plan(&machines, &[], &RolloutOptions::default());
    let domains: Vec<BTreeSet<Option<i32>>> =
        plan.waves[0].batches.iter().map(|b| b.machines.iter().map(|m| m.update_domain).collect()).collect();
    assert!(domains.iter().all(|d| d.len() == 1), "{domains:?}");
    let sequence: Vec<Option<i32>> = domains.iter().map(|d| *d.first().unwrap()).collect();
    let mut sorted = sequence.clone();
    sorted.sort();
    assert_eq!(sequence, sorted, "domains go in order, each finished before the next");
    assert_eq!(sequence.first(), Some(&None));
}

#[test]
fn every_eligible_machine_is_planned_exactly_once() {
    let mut machines = Vec::new();
    for (r, region) in ["eastus", "westus", "uksouth"].into_iter().enumerate() {
        for (z, zone) in [None, Some("1"), Some("2")].into_iter().enumerate() {
            let base = r * 1000 + z * 100;
            machines.extend(loose(base, 7, region, zone));
            machines.extend(
                (0..13).map(|k| machine(base + 10 + k, region, zone, Some("s1"), Some(k as i32 % 3))),
            );
            machines.extend((0..4).map(|k| machine(base + 30 + k, region, zone, Some("s2"), Some(0))));
        }
    }
    let plan = plan(&machines, &pairs(&[("eastus", "westus")]), &RolloutOptions::default());
    let mut seen: Vec<Uuid> = planned(&plan).map(|m| m.machine_id).collect();
    seen.sort();
    let mut expected: Vec<Uuid> = machines.iter().map(|m| m.machine_id).collect();
    expected.sort();
    assert_eq!(seen, expected);
    assert!(plan.unplanned.is_empty());
}

#[test]
fn a_machine_without_a_window_is_unplanned_with_the_reason() {
    let machines = loose(0, 5, "eastus", None);
    let lonely = id(3);
    let windows = |m: &RolloutMachine, from| if m.machine_id == lonely { None } else { nightly(m, from) };
    let plan =
        plan_rollout(&hotpatch(), &machines, &[], &RolloutOptions::default(), start(), windows).unwrap();
    assert_eq!(planned(&plan).count(), 4);
    assert_eq!(plan.unplanned.len(), 1);
    assert_eq!((plan.unplanned[0].machine_id, plan.unplanned[0].reason), (lonely, UnplannedReason::NoWindow));
}

#[test]
fn machines_that_have_the_release_run_another_os_or_another_orchestrator_are_left_out() {
    let mut machines = loose(0, 4, "eastus", None);
    machines[0].state.latest_installed = Some(HOTPATCH);
    machines[1].os = OsVersion::WindowsServer2025;
    machines[2].orchestration = PatchOrchestration::GroupPolicy;
    let plan = plan(&machines, &[], &RolloutOptions::default());
    let reasons: Vec<_> = plan.unplanned.iter().map(|u| (u.machine_id, u.reason)).collect();
    assert_eq!(
        reasons,
        vec![
            (id(0), UnplannedReason::AlreadyInstalled),
            (id(1), UnplannedReason::OtherOs),
            (id(2), UnplannedReason::NotAutomaticByPlatform),
        ]
    );
    assert_eq!(planned(&plan).map(|m| m.machine_id).collect::<Vec<_>>(), vec![id(3)]);
}

#[test]
fn a_machine_on_an_old_baseline_gets_the_baseline_first() {
    let mut machines = loose(0, 5, "eastus", None);
    machines[1].state.current_baseline = Some(OLD_BASELINE);
    machines[2].state.current_baseline = None;
    machines[3].state.hotpatch = false;
    machines[4].state.reboot_pending = true;
    let plan = plan(&machines, &[], &options_with(|o| o.max_batch_percent = 100));
    let got: BTreeMap<Uuid, (CycleKind, Uuid, bool)> =
        planned(&plan).map(|m| (m.machine_id, (m.install, m.release_id, m.reboot))).collect();
    assert_eq!(got[&id(0)], (CycleKind::Hotpatch, HOTPATCH, false));
    assert_eq!(got[&id(1)], (CycleKind::Baseline, BASELINE, true));
    assert_eq!(got[&id(2)], (CycleKind::Baseline, BASELINE, true));
    assert_eq!(got[&id(3)], (CycleKind::CumulativeUpdate, HOTPATCH, true), "hotpatch off: the month's CU");
    assert_eq!(got[&id(4)], (CycleKind::Hotpatch, HOTPATCH, true), "a pending reboot happens in the window");
}

#[test]
fn a_baseline_release_reboots_everyone() {
    let release = RolloutRelease { id: BASELINE, os: OS, kind: ReleaseKind::Baseline, baseline_id: None };
    let mut machines = loose(0, 3, "eastus", None);
    for m in &mut machines {
        m.state.current_baseline = Some(OLD_BASELINE);
    }
    machines[1].state.hotpatch = false;
    let plan = plan_rollout(&release, &machines, &[], &RolloutOptions::default(), start(), nightly).unwrap();
    let got: Vec<_> = planned(&plan).map(|m| (m.install, m.reboot)).collect();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|(_, reboot)| *reboot));
    assert!(got.contains(&(CycleKind::CumulativeUpdate, true)));
    assert_eq!(got.iter().filter(|(k, _)| *k == CycleKind::Baseline).count(), 2);
}

#[test]
fn a_release_from_the_catalog_knows_the_baseline_its_hotpatch_applies_on() {
    let release = |n: u128, kind, month: &str, superseded_by| Release {
        id: Uuid::from_u128(n),
        spec: ReleaseSpec {
            os: OS,
            kind,
            planned: true,
            month: month.parse().unwrap(),
            kb: format!("KB500000{n}").parse().unwrap(),
            build: OsBuild { build: 20348, revision: n as u32 },
            released_at: Utc.with_ymd_and_hms(2025, 1, 14, 18, 0, 0).unwrap(),
        },
        superseded_by,
    };
    let catalog = vec![
        release(1, ReleaseKind::Baseline, "2024-10", None),
        release(2, ReleaseKind::Baseline, "2025-01", None),
        release(3, ReleaseKind::Hotpatch, "2025-02", None),
        release(4, ReleaseKind::Hotpatch, "2025-03", Some(Uuid::from_u128(5))),
    ];
    let r = RolloutRelease::from_catalog(&catalog[2], &catalog).unwrap();
    assert_eq!(r.baseline_id, Some(Uuid::from_u128(2)));
    assert_eq!(RolloutRelease::from_catalog(&catalog[1], &catalog).unwrap().baseline_id, None);
    assert_eq!(
        RolloutRelease::from_catalog(&catalog[3], &catalog),
        Err(RolloutError::ReleaseSuperseded { release: Uuid::from_u128(4), by: Uuid::from_u128(5) })
    );
    assert_eq!(
        RolloutRelease::from_catalog(&catalog[2], &catalog[2..]),
        Err(RolloutError::HotpatchWithoutBaseline(Uuid::from_u128(3)))
    );
}

#[test]
fn canary_region_goes_first() {
    let mut machines = Vec::new();
    for (i, r) in ["eastus", "westus", "westeurope", "uksouth"].into_iter().enumerate() {
        machines.extend(loose(i * 10, 5, r, None));
    }
    let options = options_with(|o| o.region_order = vec!["WestEurope".into(), "westus".into()]);
    let plan = plan(&machines, &pairs(&[("eastus", "westus")]), &options);
    assert_eq!(wave_regions(&plan), vec![vec!["westeurope"], vec!["westus", "uksouth"], vec!["eastus"]]);
    assert_eq!(plan.waves[0].index, 1);
    assert_eq!(plan.waves[0].batches[0].index, 1);
    assert!(plan.waves[0].planned_end <= plan.waves[1].planned_start);
}

#[test]
fn batches_of_ungrouped_machines_respect_max_batch_percent() {
    let sizes = |count, percent| {
        let machines = loose(0, count, "eastus", Some("1"));
        let plan = plan(&machines, &[], &options_with(|o| o.max_batch_percent = percent));
        plan.waves[0].batches.iter().map(|b| b.machines.len()).collect::<Vec<_>>()
    };
    assert_eq!(sizes(50, 20), vec![10; 5]);
    assert_eq!(sizes(50, 10), vec![5; 10]);
    assert_eq!(sizes(11, 20), vec![2, 2, 2, 2, 2, 1]);
    assert_eq!(sizes(3, 20), vec![1, 1, 1], "at least one machine per batch");
    assert_eq!(sizes(7, 100), vec![7]);
}

#[test]
fn a_regions_batches_follow_one_another_and_the_regions_of_a_wave_go_together() {
    // Windows at an hour of its own per machine, so batches end at different times of day.
    let windows = |m: &RolloutMachine, from: DateTime<Utc>| {
        let hour = (m.machine_id.as_u128() % 24) as i64;
        let day = from.date_naive().and_hms_opt(0, 0, 0).unwrap().and_utc() + Duration::hours(hour);
        let start = if day >= from { day } else { day + Duration::days(1) };
        Some(PlanWindow { start, end: start + Duration::hours(3) })
    };
    let mut machines = loose(0, 30, "eastus", Some("1"));
    machines.extend(loose(100, 30, "eastus", Some("2")));
    machines.extend(loose(200, 30, "westus", None));
    let by_id: BTreeMap<Uuid, &RolloutMachine> = machines.iter().map(|m| (m.machine_id, m)).collect();
    let plan =
        plan_rollout(&hotpatch(), &machines, &[], &RolloutOptions::default(), start(), windows).unwrap();
    assert_eq!(plan.waves.iter().map(|w| w.batches.len()).sum::<usize>(), 15);
    // eastus and westus share the one wave: each region from the plan's start, its batches in turn.
    assert_eq!(wave_regions(&plan), vec![vec!["eastus", "westus"]]);
    let mut opens: BTreeMap<&str, DateTime<Utc>> = BTreeMap::new();
    for batch in plan.waves.iter().flat_map(|w| &w.batches) {
        let open = *opens.entry(batch.region.as_str()).or_insert(plan.start);
        for m in &batch.machines {
            assert!(m.window_start >= open, "batch {} machine {}", batch.index, m.machine_id);
            let first = windows(by_id[&m.machine_id], open).unwrap();
            assert_eq!(
                (m.window_start, m.window_end),
                (first.start, first.end),
                "its first window once open"
            );
        }
        assert_eq!(batch.planned_start, batch.machines.iter().map(|m| m.window_start).min().unwrap());
        assert_eq!(batch.planned_end, batch.machines.iter().map(|m| m.window_end).max().unwrap());
        opens.insert(batch.region.as_str(), batch.planned_end);
    }
    assert_eq!(plan.expected_finish, opens.values().max().copied());
    let eastus_end = opens["eastus"];
    let westus = plan.waves[0].batches.iter().find(|b| b.region == "westus").unwrap();
    assert!(westus.planned_start < eastus_end, "westus does not wait for eastus: they open together");
}

#[test]
fn options_out_of_range_are_refused_with_the_field_to_blame() {
    let machines = loose(0, 3, "eastus", None);
    let refuse = |options: RolloutOptions| {
        plan_rollout(&hotpatch(), &machines, &[], &options, start(), nightly).unwrap_err()
    };
    let cases = [
        (options_with(|o| o.max_batch_percent = 0), RolloutError::MaxBatchPercent(0), "max_batch_percent"),
        (
            options_with(|o| o.max_batch_percent = 101),
            RolloutError::MaxBatchPercent(101),
            "max_batch_percent",
        ),
        (
            options_with(|o| o.failure_threshold_percent = 101),
            RolloutError::FailureThresholdPercent(101),
            "failure_threshold_percent",
        ),
        (
            options_with(|o| o.region_order = vec!["eastus".into(), "EastUS".into()]),
            RolloutError::DuplicateRegionInOrder("EastUS".into()),
            "region_order",
        ),
        (
            options_with(|o| o.region_order = vec![" ".into()]),
            RolloutError::EmptyRegionInOrder,
            "region_order",
        ),
        (
            options_with(|o| o.region_order = vec!["westus".into()]),
            RolloutError::RegionNotInRollout("westus".into()),
            "region_order",
        ),
    ];
    for (options, error, field) in cases {
        let got = refuse(options);
        assert_eq!(got, error);
        assert_eq!(got.field(), field);
        assert_eq!(got.field_error().field, field);
    }
    assert!(RolloutOptions::default().validate().is_ok());
    assert!(options_with(|o| o.failure_threshold_percent = 0).validate().is_ok());
    assert!(refuse(options_with(|o| o.max_batch_percent = 0)).to_string().contains("between 1 and 100"));
}

#[test]
fn bad_pairs_duplicate_machines_and_lying_window_sources_are_refused() {
    let machines = loose(0, 3, "eastus", None);
    let o = RolloutOptions::default();
    let err = plan_rollout(&hotpatch(), &machines, &pairs(&[("eastus", "EASTUS")]), &o, start(), nightly);
    assert_eq!(err.unwrap_err(), RolloutError::RegionPairedWithItself("eastus".into()));

    let mut twice = machines.clone();
    twice.push(machines[1].clone());
    let err = plan_rollout(&hotpatch(), &twice, &[], &o, start(), nightly).unwrap_err();
    assert_eq!(err, RolloutError::DuplicateMachine(id(1)));

    let no_baseline = RolloutRelease { baseline_id: None, ..hotpatch() };
    let err = plan_rollout(&no_baseline, &machines, &[], &o, start(), nightly).unwrap_err();
    assert_eq!(err, RolloutError::HotpatchWithoutBaseline(HOTPATCH));

    let early = |_: &RolloutMachine, from: DateTime<Utc>| {
        Some(PlanWindow { start: from - Duration::hours(1), end: from })
    };
    let err = plan_rollout(&hotpatch(), &machines, &[], &o, start(), early).unwrap_err();
    assert!(matches!(err, RolloutError::InvalidWindow { .. }), "{err:?}");
}

#[test]
fn the_same_machines_in_any_order_give_the_same_plan() {
    let mut machines = Vec::new();
    for (r, region) in ["eastus", "westus", "uksouth", "ukwest"].into_iter().enumerate() {
        for z in 0..3 {
            let zone = Some(["1", "2", "3"][z]);
            let base = r * 1000 + z * 100;
            machines.extend(loose(base, 9, region, zone));
            machines.extend(
                (0..17).map(|k| machine(base + 20 + k, region, zone, Some("web"), Some(k as i32 % 5))),
            );
        }
    }
    let geo = pairs(&[("eastus", "westus"), ("uksouth", "ukwest")]);
    let options = options_with(|o| o.region_order = vec!["uksouth".into()]);
    let first = plan(&machines, &geo, &options);
    assert_eq!(first, plan(&machines, &geo, &options));
    machines.reverse();
    machines.rotate_left(37);
    assert_eq!(first, plan(&machines, &geo, &options));
}

#[test]
fn an_empty_rollout_has_no_waves_and_no_finish() {
    let plan = plan(&[], &[], &RolloutOptions::default());
    assert!(plan.waves.is_empty());
    assert_eq!(plan.expected_finish, None);
}

#[test]
fn a_window_in_progress_when_the_batch_opens_is_not_taken() {
    // The default off-peak window, 01:00–05:00 in London (UTC in February).
    let schedule = Schedule::default_off_peak("Europe/London".parse().unwrap());
    let during = Utc.with_ymd_and_hms(2025, 2, 12, 2, 0, 0).unwrap();
    let w = PlanWindow::first_of_schedule(&schedule, during).unwrap();
    assert_eq!((w.start, w.end), (utc_hm(13, 1), utc_hm(13, 5)));
    let at_start = PlanWindow::first_of_schedule(&schedule, utc_hm(12, 1)).unwrap();
    assert_eq!(at_start.start, utc_hm(12, 1), "a window starting right when the batch opens is taken");

    let machines = loose(0, 2, "uksouth", None);
    let plan = plan_rollout(&hotpatch(), &machines, &[], &RolloutOptions::default(), during, |_, from| {
        PlanWindow::first_of_schedule(&schedule, from)
    })
    .unwrap();
    let batches = &plan.waves[0].batches;
    assert_eq!((batches[0].planned_start, batches[1].planned_start), (utc_hm(13, 1), utc_hm(14, 1)));
}

#[test]
fn a_window_list_gives_its_first_window_at_or_after_the_opening() {
    let w = |d, h| PlanWindow { start: utc_hm(d, h), end: utc_hm(d, h + 2) };
    let list = [w(14, 1), w(12, 1), w(13, 1)];
    assert_eq!(PlanWindow::first_from(&list, utc_hm(12, 1)), Some(w(12, 1)));
    assert_eq!(PlanWindow::first_from(&list, utc_hm(12, 2)), Some(w(13, 1)));
    assert_eq!(PlanWindow::first_from(&list, utc_hm(14, 2)), None);
}
