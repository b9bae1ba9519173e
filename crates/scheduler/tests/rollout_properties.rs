//! Properties of rollout plans over random fleets: random regions and geo-pairs, zones,
//! availability sets of 1–40 machines over update domains (some names in other letter cases or
//! spanning zones), machines outside sets, random cycle states and random windows (some machines
//! with none, some whose windows stop). Every invariant of the planner is checked on each plan,
//! against rules written again here, independently of the planner.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, TimeZone, Utc};
use hotpatch_domain::{OsVersion, PatchOrchestration, ReleaseKind};
use hotpatch_scheduler::cycle::{CycleKind, MachineState};
use hotpatch_scheduler::rollout::{
    plan_rollout, PlanWindow, RolloutMachine, RolloutOptions, RolloutPlan, RolloutRelease, UnplannedReason,
};
use proptest::prelude::*;
use uuid::Uuid;

const OS: OsVersion = OsVersion::WindowsServer2022;
const BASELINE: Uuid = Uuid::from_u128(0xB);
const OLD_BASELINE: Uuid = Uuid::from_u128(0xA);
const HOTPATCH: Uuid = Uuid::from_u128(0xC);
const NEXT_BASELINE: Uuid = Uuid::from_u128(0xD);
const REGIONS: usize = 8;

/// splitmix64: per-machine attributes from the fleet's seed.
fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn plan_start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 2, 11, 18, 0, 0).unwrap()
}

#[derive(Debug, Clone)]
struct Fleet {
    release: RolloutRelease,
    machines: Vec<RolloutMachine>,
    pairs: Vec<(String, String)>,
    options: RolloutOptions,
    /// Per machine, its windows.
    windows: BTreeMap<Uuid, Windows>,
}

/// A machine's windows: every `period_days` from 2025-01-01 at `hour` UTC, for `hours`, until
/// `until` (`None`: they never stop).
#[derive(Debug, Clone, Copy)]
struct Windows {
    hour: i64,
    period_days: i64,
    hours: i64,
    until: Option<DateTime<Utc>>,
}

impl Fleet {
    fn window(&self, m: &RolloutMachine, from: DateTime<Utc>) -> Option<PlanWindow> {
        let Windows { hour, period_days, hours, until } = self.windows[&m.machine_id];
        let base = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hour);
        let period = Duration::days(period_days);
        let steps = (from - base).num_seconds().div_euclid(period.num_seconds());
        let mut start = base + period * steps as i32;
        if start < from {
            start += period;
        }
        let w = PlanWindow { start, end: start + Duration::hours(hours) };
        until.is_none_or(|u| w.start < u).then_some(w)
    }

    fn plan(&self, machines: &[RolloutMachine]) -> RolloutPlan {
        plan_rollout(&self.release, machines, &self.pairs, &self.options, plan_start(), |m, from| {
            self.window(m, from)
        })
        .unwrap()
    }
}

fn region_name(r: usize, upper: bool) -> String {
    if upper {
        format!("Region{r}")
    } else {
        format!("region{r}")
    }
}

prop_compose! {
    fn fleets()(
        hotpatch_release in any::<bool>(),
        pairs in proptest::collection::vec((0..REGIONS, 0..REGIONS), 0..6),
        sets in proptest::collection::vec((0..REGIONS, 0..4usize, 1..=40usize, 1..=5i32), 0..12),
        loose in proptest::collection::vec((0..REGIONS, 0..4usize), 0..120),
        max_batch_percent in prop_oneof![Just(20u32), 1..=100u32],
        order in proptest::sample::subsequence((0..REGIONS).collect::<Vec<_>>(), 0..=3),
        shuffle_order in any::<bool>(),
        seed in any::<u64>(),
    ) -> Fleet {
        let release = if hotpatch_release {
            RolloutRelease { id: HOTPATCH, os: OS, kind: ReleaseKind::Hotpatch, baseline_id: Some(BASELINE) }
        } else {
            RolloutRelease { id: NEXT_BASELINE, os: OS, kind: ReleaseKind::Baseline, baseline_id: None }
        };
        // (region, zone, set name, update domain) of every machine.
        let mut placements = Vec::new();
        for (j, &(region, zone, size, domains)) in sets.iter().enumerate() {
            // Names repeat across entries: a set may span zones, or be spelt in another case.
            let name = if j % 3 == 0 { format!("AS{}", j % 4) } else { format!("as{}", j % 4) };
            for k in 0..size {
                let r = mix(seed ^ (j as u64) << 32 ^ k as u64);
                let ud = (!r.is_multiple_of(11)).then_some(((r >> 8) % domains as u64) as i32);
                placements.push((region, zone, Some(name.clone()), ud));
            }
        }
        placements.extend(loose.iter().map(|&(region, zone)| (region, zone, None, None)));

        let mut machines = Vec::new();
        let mut windows = BTreeMap::new();
        for (i, (region, zone, set, ud)) in placements.into_iter().enumerate() {
            let r = mix(seed.wrapping_add(i as u64));
            let pick = |shift: u32, n: u64| (r >> shift) % n;
            let machine_id = Uuid::from_u128(u128::from(mix(r)) << 16 | i as u128);
            let state = MachineState {
                hotpatch: pick(0, 5) != 0,
                current_baseline: [Some(BASELINE), Some(BASELINE), Some(OLD_BASELINE), None][pick(4, 4) as usize],
                latest_installed: (pick(8, 10) == 0).then_some(release.id),
                reboot_pending: pick(12, 10) == 0,
            };
            machines.push(RolloutMachine {
                machine_id,
                os: if pick(16, 20) == 0 { OsVersion::WindowsServer2025 } else { OS },
                orchestration: if pick(20, 20) == 0 {
                    PatchOrchestration::ThirdParty
                } else {
                    PatchOrchestration::AutomaticByPlatform
                },
                region: region_name(region, pick(24, 6) == 0),
                availability_zone: (zone > 0).then(|| zone.to_string()),
                availability_set: set,
                update_domain: ud,
                state,
            });
            let until = match pick(28, 40) {
                0 => Some(plan_start()),
                1..=3 => Some(plan_start() + Duration::days(pick(32, 120) as i64)),
                _ => None,
            };
            let windows_of = Windows {
                hour: pick(40, 24) as i64,
                period_days: [1, 1, 1, 7][pick(45, 4) as usize],
                hours: 1 + pick(48, 6) as i64,
                until,
            };
            windows.insert(machine_id, windows_of);
        }
        let pairs = pairs
            .into_iter()
            .filter(|(a, b)| a != b)
            .map(|(a, b)| (region_name(a, false), region_name(b, a % 2 == 0)))
            .collect();
        let present: BTreeSet<String> = machines.iter().map(|m| m.region.to_ascii_lowercase()).collect();
        let mut region_order: Vec<String> =
            order.into_iter().map(|r| region_name(r, false)).filter(|r| present.contains(r)).collect();
        if shuffle_order {
            region_order.reverse();
        }
        let options = RolloutOptions { max_batch_percent, region_order, ..RolloutOptions::default() };
        Fleet { release, machines, pairs, options, windows }
    }
}

/// What a machine should get, written again from the rules: `Err` = left out, with the reason
/// the planner must give before windows are looked at.
fn expected(
    release: &RolloutRelease,
    m: &RolloutMachine,
) -> Result<(CycleKind, Uuid, bool), UnplannedReason> {
    let s = &m.state;
    if m.os != release.os {
        return Err(UnplannedReason::OtherOs);
    }
    if m.orchestration != PatchOrchestration::AutomaticByPlatform {
        return Err(UnplannedReason::NotAutomaticByPlatform);
    }
    if s.latest_installed == Some(release.id) || s.current_baseline == Some(release.id) {
        return Err(UnplannedReason::AlreadyInstalled);
    }
    let (kind, id) = if !s.hotpatch {
        (CycleKind::CumulativeUpdate, release.id)
    } else if release.kind == ReleaseKind::Baseline {
        (CycleKind::Baseline, release.id)
    } else if s.current_baseline != release.baseline_id {
        (CycleKind::Baseline, release.baseline_id.unwrap())
    } else {
        (CycleKind::Hotpatch, release.id)
    };
    Ok((kind, id, kind != CycleKind::Hotpatch || s.reboot_pending))
}

fn lower(s: &Option<String>) -> Option<String> {
    s.as_ref().map(|s| s.to_ascii_lowercase())
}

fn check(fleet: &Fleet, plan: &RolloutPlan) -> Result<(), TestCaseError> {
    let by_id: BTreeMap<Uuid, &RolloutMachine> = fleet.machines.iter().map(|m| (m.machine_id, m)).collect();
    let region = |id: &Uuid| by_id[id].region.to_ascii_lowercase();

    // Every machine exactly once: in one batch, or unplanned with the right reason.
    let mut seen = BTreeSet::new();
    for u in &plan.unplanned {
        prop_assert!(seen.insert(u.machine_id), "{} twice", u.machine_id);
        match expected(&fleet.release, by_id[&u.machine_id]) {
            Err(reason) => prop_assert_eq!(u.reason, reason),
            Ok(_) => prop_assert_eq!(u.reason, UnplannedReason::NoWindow),
        }
    }
    let batches: Vec<_> = plan.waves.iter().flat_map(|w| &w.batches).collect();
    for m in batches.iter().flat_map(|b| &b.machines) {
        prop_assert!(seen.insert(m.machine_id), "{} twice", m.machine_id);
        let want = expected(&fleet.release, by_id[&m.machine_id]);
        prop_assert_eq!(Ok((m.install, m.release_id, m.reboot)), want);
    }
    prop_assert_eq!(seen.len(), fleet.machines.len());

    // Numbering from 1, waves of non-paired regions, the canary alone.
    let pairs: BTreeSet<(String, String)> = fleet
        .pairs
        .iter()
        .flat_map(|(a, b)| {
            let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
            [(a.clone(), b.clone()), (b, a)]
        })
        .collect();
    for (i, wave) in plan.waves.iter().enumerate() {
        prop_assert_eq!(wave.index, i + 1);
        for a in &wave.regions {
            for b in &wave.regions {
                prop_assert!(
                    !pairs.contains(&(a.clone(), b.clone())),
                    "{} and {} share wave {}",
                    a,
                    b,
                    wave.index
                );
            }
        }
        let mut regions: Vec<&str> = wave.batches.iter().map(|b| b.region.as_str()).collect();
        regions.dedup();
        prop_assert_eq!(
            regions,
            wave.regions.iter().map(String::as_str).collect::<Vec<_>>(),
            "regions go in one run"
        );
        prop_assert_eq!(wave.planned_start, wave.batches.iter().map(|b| b.planned_start).min().unwrap());
        prop_assert_eq!(wave.planned_end, wave.batches.iter().map(|b| b.planned_end).max().unwrap());
    }
    // Waves one after the other: each opens when the previous one ends.
    for pair in plan.waves.windows(2) {
        prop_assert!(pair[1].planned_start >= pair[0].planned_end);
    }
    let all_regions: Vec<&String> = plan.waves.iter().flat_map(|w| &w.regions).collect();
    prop_assert_eq!(
        all_regions.len(),
        all_regions.iter().collect::<BTreeSet<_>>().len(),
        "a region in one wave"
    );
    if let Some(canary) = fleet.options.region_order.first() {
        if all_regions.contains(&canary) {
            prop_assert_eq!(&plan.waves[0].regions, &vec![canary.clone()]);
        }
    }

    // Batches: one region and zone, zones of a region in runs; sets within their caps, one
    // update domain at a time; other machines within max_batch_percent of their zone.
    let mut set_sizes: BTreeMap<(String, String), usize> = BTreeMap::new();
    let mut loose_counts: BTreeMap<(String, Option<String>), usize> = BTreeMap::new();
    for m in fleet.machines.iter().filter(|m| expected(&fleet.release, m).is_ok()) {
        let r = m.region.to_ascii_lowercase();
        match lower(&m.availability_set) {
            Some(set) => *set_sizes.entry((r, set)).or_default() += 1,
            None => *loose_counts.entry((r, lower(&m.availability_zone))).or_default() += 1,
        }
    }
    let percent = fleet.options.max_batch_percent as usize;
    let mut zone_runs: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let mut set_domains: BTreeMap<(String, Option<String>, String), Vec<Option<i32>>> = BTreeMap::new();
    // The regions of a wave in parallel from the wave's opening, a region's batches in turn.
    let wave_of: BTreeMap<usize, usize> =
        plan.waves.iter().flat_map(|w| w.batches.iter().map(|b| (b.index, w.index))).collect();
    let mut wave_open = plan.start;
    let mut region_open: BTreeMap<String, DateTime<Utc>> = BTreeMap::new();
    for (i, batch) in batches.iter().enumerate() {
        prop_assert_eq!(batch.index, i + 1);
        if i > 0 && wave_of[&batch.index] != wave_of[&batches[i - 1].index] {
            wave_open = plan.waves[wave_of[&batches[i - 1].index] - 1].planned_end;
            region_open.clear();
        }
        let open = *region_open.entry(batch.region.clone()).or_insert(wave_open);
        prop_assert!(!batch.machines.is_empty());
        let runs = zone_runs.entry(batch.region.clone()).or_default();
        if runs.last() != Some(&batch.zone) {
            prop_assert!(!runs.contains(&batch.zone), "zone {:?} of {} comes back", batch.zone, batch.region);
            runs.push(batch.zone.clone());
        }
        let mut per_set: BTreeMap<String, (usize, BTreeSet<Option<i32>>)> = BTreeMap::new();
        let mut loose = 0;
        for pm in &batch.machines {
            let m = by_id[&pm.machine_id];
            prop_assert_eq!(&region(&pm.machine_id), &batch.region);
            prop_assert_eq!(&lower(&m.availability_zone), &batch.zone);
            match lower(&m.availability_set) {
                Some(set) => {
                    let e = per_set.entry(set).or_default();
                    e.0 += 1;
                    e.1.insert(m.update_domain);
                    prop_assert_eq!(pm.update_domain, m.update_domain);
                }
                None => loose += 1,
            }
            // Its first window once the batch opens.
            let w = fleet.window(m, open).unwrap();
            prop_assert_eq!((pm.window_start, pm.window_end), (w.start, w.end));
            prop_assert!(pm.window_start >= open);
        }
        for (set, (count, domains)) in per_set {
            let size = set_sizes[&(batch.region.clone(), set.clone())];
            let cap = if size < 10 { 1 } else { (size * percent.min(20) / 100).max(1) };
            prop_assert!(
                count <= cap,
                "{} of set {} ({} machines) in batch {}",
                count,
                set,
                size,
                batch.index
            );
            prop_assert!(count * 100 <= size * 20 || size < 10 && count == 1);
            prop_assert_eq!(domains.len(), 1, "set {} mixes update domains in batch {}", set, batch.index);
            set_domains.entry((batch.region.clone(), batch.zone.clone(), set)).or_default().extend(domains);
        }
        let m = loose_counts.get(&(batch.region.clone(), batch.zone.clone())).copied().unwrap_or(0);
        prop_assert!(
            loose <= (m * percent / 100).max(1),
            "{} of {} loose machines in batch {}",
            loose,
            m,
            batch.index
        );
        prop_assert_eq!(batch.planned_start, batch.machines.iter().map(|m| m.window_start).min().unwrap());
        prop_assert_eq!(batch.planned_end, batch.machines.iter().map(|m| m.window_end).max().unwrap());
        region_open.insert(batch.region.clone(), batch.planned_end);
    }
    for (set, domains) in set_domains {
        let mut sorted = domains.clone();
        sorted.sort();
        prop_assert_eq!(domains, sorted, "set {:?}: one update domain after the other (per zone)", set);
    }
    prop_assert_eq!(plan.expected_finish, plan.waves.last().map(|w| w.planned_end));
    prop_assert_eq!(plan.expected_finish, batches.iter().map(|b| b.planned_end).max());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn random_fleets_get_plans_that_keep_every_rule(fleet in fleets()) {
        let plan = fleet.plan(&fleet.machines);
        check(&fleet, &plan)?;
    }

    #[test]
    fn the_plan_depends_on_the_machines_not_their_order(fleet in fleets(), rotate in 0usize..1000) {
        let plan = fleet.plan(&fleet.machines);
        let mut shuffled = fleet.machines.clone();
        shuffled.reverse();
        if !shuffled.is_empty() {
            let n = rotate % shuffled.len();
            shuffled.rotate_left(n);
        }
        prop_assert_eq!(&plan, &fleet.plan(&shuffled));
        prop_assert_eq!(plan, fleet.plan(&fleet.machines));
    }
}
