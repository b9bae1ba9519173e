//! A rollout plan for 100,000 machines over 10 regions (5 geo-pairs, a canary): per region
//! 60% of the machines outside sets over 3 zones and 40% in availability sets of 1–40 machines
//! over up to 5 update domains. Criterion reports the time of one whole plan, in two variants:
//! - `with_next_windows`: every window comes from the window engine
//!   (`PlanWindow::first_of_schedule` on the default off-peak schedule in one of each region's
//!   time zones), as the API will do it;
//! - `with_fixed_windows`: a trivial daily window, to show the planner's own cost.
//!
//! `cargo bench -p hotpatch-scheduler --bench rollout` (set `ROLLOUT_BENCH_MACHINES` for another
//! fleet size). The plan's shape (waves, batches, expected finish) is printed once to stderr.
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chrono::{DateTime, Duration, TimeZone, Utc};
use chrono_tz::Tz;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotpatch_domain::{OsVersion, PatchOrchestration, ReleaseKind};
use hotpatch_scheduler::cycle::MachineState;
use hotpatch_scheduler::rollout::{plan_rollout, PlanWindow, RolloutMachine, RolloutOptions, RolloutRelease};
use hotpatch_scheduler::windows::Schedule;
use uuid::Uuid;

const BASELINE: Uuid = Uuid::from_u128(0xB);

/// Regions, their geo-pair (the next one) and two time zones each.
const REGIONS: [(&str, [&str; 2]); 10] = [
    ("eastus", ["America/New_York", "America/Chicago"]),
    ("westus", ["America/Los_Angeles", "America/Denver"]),
    ("uksouth", ["Europe/London", "Europe/Dublin"]),
    ("ukwest", ["Europe/London", "Europe/Dublin"]),
    ("northeurope", ["Europe/Dublin", "Europe/Lisbon"]),
    ("westeurope", ["Europe/Amsterdam", "Europe/Berlin"]),
    ("eastasia", ["Asia/Hong_Kong", "Asia/Taipei"]),
    ("southeastasia", ["Asia/Singapore", "Asia/Kuala_Lumpur"]),
    ("australiaeast", ["Australia/Sydney", "Australia/Brisbane"]),
    ("australiasoutheast", ["Australia/Melbourne", "Australia/Hobart"]),
];

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn fleet(n: usize) -> Vec<RolloutMachine> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut machines = Vec::with_capacity(n);
    let per_region = n / REGIONS.len();
    for (r, (region, _)) in REGIONS.iter().enumerate() {
        let count = if r + 1 == REGIONS.len() { n - machines.len() } else { per_region };
        let mut in_sets = count * 2 / 5;
        let mut set = 0;
        let mut placed = 0;
        while placed < count {
            let (zone, set_name, domains, size) = if in_sets > 0 {
                let size = (1 + rng.next() % 40) as usize;
                set += 1;
                let size = size.min(in_sets);
                in_sets -= size;
                (None, Some(format!("as-{set}")), 1 + rng.next() % 5, size)
            } else {
                (Some((1 + rng.next() % 3).to_string()), None, 1, 1)
            };
            for _ in 0..size {
                let state = MachineState {
                    hotpatch: !rng.next().is_multiple_of(10),
                    current_baseline: (!rng.next().is_multiple_of(20)).then_some(BASELINE),
                    ..MachineState::default()
                };
                machines.push(RolloutMachine {
                    machine_id: Uuid::from_u128(u128::from(rng.next()) << 64 | machines.len() as u128),
                    os: OsVersion::WindowsServer2022,
                    orchestration: PatchOrchestration::AutomaticByPlatform,
                    region: (*region).to_owned(),
                    availability_zone: zone.clone(),
                    availability_set: set_name.clone(),
                    update_domain: set_name.as_ref().map(|_| (rng.next() % domains) as i32),
                    state,
                });
            }
            placed += size;
        }
    }
    machines
}

fn plan_100k(c: &mut Criterion) {
    let n = std::env::var("ROLLOUT_BENCH_MACHINES").ok().and_then(|s| s.parse().ok()).unwrap_or(100_000);
    let machines = fleet(n);
    let release = RolloutRelease {
        id: Uuid::from_u128(0xC),
        os: OsVersion::WindowsServer2022,
        kind: ReleaseKind::Hotpatch,
        baseline_id: Some(BASELINE),
    };
    let pairs: Vec<(String, String)> =
        REGIONS.chunks(2).map(|p| (p[0].0.to_owned(), p[1].0.to_owned())).collect();
    let options = RolloutOptions { region_order: vec!["westeurope".into()], ..RolloutOptions::default() };
    let start = Utc.with_ymd_and_hms(2025, 2, 11, 18, 0, 0).unwrap();

    // Each region's two off-peak schedules; a machine takes one by its id.
    let schedules: Vec<(&str, [Schedule; 2])> = REGIONS
        .iter()
        .map(|(r, zones)| (*r, zones.map(|z| Schedule::default_off_peak(z.parse::<Tz>().unwrap()))))
        .collect();
    let engine = |m: &RolloutMachine, from: DateTime<Utc>| {
        let (_, pair) = schedules.iter().find(|(r, _)| *r == m.region)?;
        let schedule = &pair[(m.machine_id.as_u128() & 1) as usize];
        PlanWindow::first_of_schedule(schedule, from)
    };
    let fixed = |_: &RolloutMachine, from: DateTime<Utc>| {
        let day = from.date_naive().and_hms_opt(1, 0, 0).unwrap().and_utc();
        let start = if day >= from { day } else { day + Duration::days(1) };
        Some(PlanWindow { start, end: start + Duration::hours(4) })
    };

    let plan = plan_rollout(&release, &machines, &pairs, &options, start, engine).unwrap();
    let batches: usize = plan.waves.iter().map(|w| w.batches.len()).sum();
    let largest = plan.waves.iter().flat_map(|w| &w.batches).map(|b| b.machines.len()).max().unwrap_or(0);
    eprintln!(
        "{n} machines: {} waves {:?}, {batches} batches (largest {largest}), {} unplanned, expected finish {:?}",
        plan.waves.len(),
        plan.waves.iter().map(|w| w.regions.len()).collect::<Vec<_>>(),
        plan.unplanned.len(),
        plan.expected_finish,
    );

    let mut group = c.benchmark_group("rollout");
    group.sample_size(10).throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("plan_{n}_machines_with_next_windows"), |b| {
        b.iter(|| plan_rollout(&release, black_box(&machines), &pairs, &options, start, engine).unwrap())
    });
    group.bench_function(format!("plan_{n}_machines_with_fixed_windows"), |b| {
        b.iter(|| plan_rollout(&release, black_box(&machines), &pairs, &options, start, fixed).unwrap())
    });
    group.finish();
}

criterion_group!(benches, plan_100k);
criterion_main!(benches);
