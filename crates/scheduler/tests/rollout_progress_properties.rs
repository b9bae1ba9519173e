//! Properties of the rollout progression over real plans: random fleets (regions and geo-pairs,
//! zones, small availability sets, machines in several time zones with their own daily
//! windows) planned with `plan_rollout` into one to three overlapping rollouts, then driven tick
//! after tick through a model of the store (`progress_sim`) with random job outcomes, health
//! reports, canceled jobs, "install now" jobs, operators' pauses, resumes and cancels, and clock
//! jumps of up to a year.
#![allow(clippy::unwrap_used, missing_docs)]

mod progress_sim;

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Duration, NaiveTime, TimeZone, Utc};
use hotpatch_domain::rollout::RolloutState;
use hotpatch_domain::{OsVersion, PatchOrchestration, ReleaseKind};
use hotpatch_scheduler::cycle::MachineState;
use hotpatch_scheduler::rollout::progress::{next_window_after_miss, tick, MissedMove};
use hotpatch_scheduler::rollout::{plan_rollout, PlanWindow, RolloutMachine, RolloutOptions, RolloutRelease};
use hotpatch_scheduler::windows::{Schedule, Tz};
use progress_sim::world::{step, Behaviour, Rng};
use progress_sim::{checks, Sim, SimRollout};
use proptest::prelude::*;
use uuid::Uuid;

const REGIONS: [&str; 6] = ["eastus", "westus", "uksouth", "ukwest", "eastasia", "southeastasia"];
const ZONES: [Tz; 5] =
    [Tz::UTC, Tz::Europe__London, Tz::America__New_York, Tz::Asia__Tokyo, Tz::Australia__Sydney];

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 3, 9, 12, 0, 0).unwrap()
}

/// One machine: region, zone (0: none), set (0: none), time zone, window start hour and hours.
type MachineSpec = (usize, usize, usize, usize, u32, i64);

#[derive(Debug, Clone)]
struct Fleet {
    machines: Vec<RolloutMachine>,
    schedules: HashMap<Uuid, Schedule>,
    pairs: Vec<(String, String)>,
    /// Per rollout: which machines (by bit of their position), threshold, max batch percent.
    rollouts: Vec<(u64, u32, u32)>,
}

fn fleet(specs: &[MachineSpec], pairs: &[(usize, usize)], rollouts: &[(u64, u32, u32)]) -> Fleet {
    let (mut machines, mut schedules) = (Vec::new(), HashMap::new());
    for (i, &(region, zone, set, tz, hour, hours)) in specs.iter().enumerate() {
        let machine_id = Uuid::from_u128(0x1000 + i as u128);
        machines.push(RolloutMachine {
            machine_id,
            os: OsVersion::WindowsServer2022,
            orchestration: PatchOrchestration::AutomaticByPlatform,
            region: REGIONS[region].into(),
            availability_zone: (zone > 0).then(|| zone.to_string()),
            availability_set: (set > 0).then(|| format!("as{set}")),
            update_domain: (set > 0).then_some((i % 3) as i32),
            state: MachineState { hotpatch: true, ..MachineState::default() },
        });
        let at = NaiveTime::from_hms_opt(hour, 0, 0).unwrap();
        schedules.insert(machine_id, Schedule::daily_off_peak(ZONES[tz], at, Duration::hours(hours)));
    }
    let pairs =
        pairs.iter().filter(|(a, b)| a != b).map(|&(a, b)| (REGIONS[a].into(), REGIONS[b].into())).collect();
    Fleet { machines, schedules, pairs, rollouts: rollouts.to_vec() }
}

prop_compose! {
    /// `min_hours`: the shortest window (the liveness run steps the clock by less).
    fn fleets(min_hours: i64)(
        specs in proptest::collection::vec(
            (0..REGIONS.len(), 0..3usize, 0..3usize, 0..ZONES.len(), 0..24u32, min_hours..=6i64),
            1..40,
        ),
        pairs in proptest::collection::vec((0..REGIONS.len(), 0..REGIONS.len()), 0..4),
        rollouts in proptest::collection::vec(
            (
                any::<u64>(),
                prop_oneof![Just(0u32), Just(10), Just(50), 0..=100u32],
                prop_oneof![Just(100u32), 20..=100u32],
            ),
            1..=3,
        ),
    ) -> Fleet {
        fleet(&specs, &pairs, &rollouts)
    }
}

/// The fleet's rollouts as planned, started at [`start`] (ids in creation order, as uuid v7).
fn simulation(f: &Fleet) -> Sim {
    let release = RolloutRelease {
        id: Uuid::from_u128(0xB),
        os: OsVersion::WindowsServer2022,
        kind: ReleaseKind::Baseline,
        baseline_id: None,
    };
    let mut rollouts = Vec::new();
    for (k, &(members, threshold, max_batch_percent)) in f.rollouts.iter().enumerate() {
        // Every machine in the first rollout; each of the others takes about half of them.
        let machines: Vec<RolloutMachine> = f
            .machines
            .iter()
            .enumerate()
            .filter(|(i, _)| k == 0 || members >> (i % 64) & 1 == 1)
            .map(|(_, m)| m.clone())
            .collect();
        let options = RolloutOptions {
            failure_threshold_percent: threshold,
            max_batch_percent,
            ..RolloutOptions::default()
        };
        let plan = plan_rollout(&release, &machines, &f.pairs, &options, start(), |m, from| {
            PlanWindow::first_of_schedule(&f.schedules[&m.machine_id], from)
        })
        .unwrap();
        rollouts.push(SimRollout::from_plan(Uuid::from_u128((k as u128 + 1) << 64), &plan));
    }
    let pairs: BTreeSet<(String, String)> =
        f.pairs.iter().flat_map(|(a, b)| [(a.clone(), b.clone()), (b.clone(), a.clone())]).collect();
    Sim::new(start(), rollouts, f.schedules.clone(), pairs)
}

/// One tick at the simulation's `now`: decide, check, apply, check.
fn run_tick(sim: &mut Sim, limit: usize) -> Result<(), TestCaseError> {
    let d = tick(&sim.snapshot(), sim.now, limit);
    checks::decisions(sim, &d, limit).map_err(TestCaseError::fail)?;
    sim.apply(&d).map_err(TestCaseError::fail)?;
    checks::enqueued_in_open_batches(sim, &d).map_err(TestCaseError::fail)?;
    checks::rows(sim).map_err(TestCaseError::fail)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Halted, paused and canceled rollouts never open nor enqueue (nor one halted in the tick);
    /// waves go one after the other, a region one batch at a time, geo-pairs never together; a
    /// machine is enqueued once, inside its window, never beside another disruptive job; the limit
    /// holds; a missed window moves to a window starting at or after `now`.
    #[test]
    fn random_walks_keep_every_safety_rule(
        f in fleets(1),
        seed in any::<u64>(),
        limit in prop_oneof![1..4usize, Just(1000usize)],
        fail in 0..40u32,
        unhealthy in 0..20u32,
        claim in 10..100u32,
        operator in 0..15u32,
        jump in 0..10u32,
    ) {
        let mut sim = simulation(&f);
        let mut rng = Rng(seed | 1);
        let behaviour = Behaviour {
            claim, finish: 60, fail, unhealthy, report_again: 10, cancel_job: 3, install_now: 10,
            operator, jump,
            max_step_mins: 300,
        };
        for _ in 0..150 {
            run_tick(&mut sim, limit)?;
            step(&mut sim, &mut rng, &behaviour);
        }
    }

    /// With agents that claim, finish and report, and nobody pausing or canceling, every rollout
    /// ends: succeeded, or halted by its failures.
    #[test]
    fn every_rollout_ends_succeeded_or_halted_when_machines_keep_reporting(
        f in fleets(2),
        seed in any::<u64>(),
        limit in prop_oneof![1..4usize, Just(1000usize)],
        fail in prop_oneof![Just(0u32), 0..30u32],
        unhealthy in prop_oneof![Just(0u32), 0..10u32],
    ) {
        let mut sim = simulation(&f);
        let mut rng = Rng(seed | 1);
        let behaviour = Behaviour::diligent(fail, unhealthy);
        let batches: usize = sim.rollouts.iter().map(|r| r.batches.len()).sum();
        let ended = |sim: &Sim| {
            sim.rollouts.iter().all(|r| matches!(r.state, RolloutState::Succeeded | RolloutState::Halted))
        };
        // A day per batch at most (the plan puts them a window apart), ticks under two hours apart.
        for _ in 0..(batches + 10) * 40 {
            if ended(&sim) {
                break;
            }
            run_tick(&mut sim, limit)?;
            step(&mut sim, &mut rng, &behaviour);
        }
        let states: Vec<RolloutState> = sim.rollouts.iter().map(|r| r.state).collect();
        prop_assert!(ended(&sim), "still {:?} at {}", states, sim.now);
    }

    /// The window in progress while enough of it is left, else the first window at or after
    /// `now`, wherever `now` falls: for a daily UTC schedule, today's if it has not ended an
    /// hour (or half its length) before, else tomorrow's; in any zone, within a day and a DST hour.
    #[test]
    fn a_missed_window_always_moves_to_the_window_in_progress_or_the_first_after_now(
        tz in 0..ZONES.len(),
        hour in 0..24u32,
        minute in prop_oneof![Just(0u32), 0..60u32],
        hours in 1..=20i64,
        secs in 0..(20 * 365 * 86_400i64),
    ) {
        let now = Utc.with_ymd_and_hms(2020, 1, 1, 0, 0, 0).unwrap() + Duration::seconds(secs);
        let at = NaiveTime::from_hms_opt(hour, minute, 0).unwrap();
        let schedule = Schedule::daily_off_peak(ZONES[tz], at, Duration::hours(hours));
        let MissedMove::Reschedule { start, end } = next_window_after_miss(&schedule, now) else {
            return Err(TestCaseError::fail("a daily schedule always has a window"));
        };
        let needed = Duration::hours(1).min((end - start) / 2);
        prop_assert!(end > start && end - now >= needed, "{}–{} at {}", start, end, now);
        prop_assert!(start >= now || end > now, "a window in the past at {}", now);
        prop_assert!(start - now <= Duration::hours(25), "{} after {}", start, now);
        if tz == 0 {
            let length = Duration::hours(hours);
            let needed = Duration::hours(1).min(length / 2);
            // The latest start whose window is still usable: yesterday's, today's or tomorrow's.
            let today = now.date_naive().and_time(at).and_utc();
            let want = [today - Duration::days(1), today, today + Duration::days(1)]
                .into_iter()
                .find(|s| *s >= now || *s + length - now >= needed)
                .unwrap();
            prop_assert_eq!(start, want);
        }
    }

    /// The decisions depend on the rows, not on the order the store read them in.
    #[test]
    fn the_tick_depends_on_the_rows_not_their_order(
        f in fleets(1),
        seed in any::<u64>(),
        ticks in 1..60usize,
    ) {
        let mut sim = simulation(&f);
        let mut rng = Rng(seed | 1);
        let behaviour = Behaviour { max_step_mins: 240, ..Behaviour::diligent(20, 10) };
        for _ in 0..ticks {
            run_tick(&mut sim, 1000)?;
            step(&mut sim, &mut rng, &behaviour);
        }
        let snapshot = sim.snapshot();
        let mut reversed = snapshot.clone();
        reversed.rollouts.reverse();
        reversed.rollouts.iter_mut().for_each(|r| r.batches.reverse());
        reversed.ended_jobs.reverse();
        reversed.health.reverse();
        reversed.candidates.reverse();
        let (mut a, mut b) = (tick(&snapshot, sim.now, 1000), tick(&reversed, sim.now, 1000));
        for d in [&mut a, &mut b] {
            d.results.sort_by_key(|r| (r.rollout_id, r.machine_id));
            d.health.sort_by_key(|h| (h.rollout_id, h.machine_id));
        }
        prop_assert_eq!(a, b);
    }
}
