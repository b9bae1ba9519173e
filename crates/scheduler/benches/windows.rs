//! Next 3 maintenance windows for 1,000,000 machines spread over every chrono-tz zone,
//! with a mix of recurrences (README "Benchmarks"). Criterion reports the time of one
//! pass over the whole fleet; divide by 1,000,000 for ns per machine (also printed as
//! throughput in elements/s). Compare with `tz_next_window` of `../shared/limits/tzbench`
//! run in the same sitting.
//!
//! `cargo bench -p hotpatch-scheduler --bench windows` (set `WINDOWS_BENCH_MACHINES` for
//! another fleet size).
#![allow(missing_docs, clippy::unwrap_used)]

use std::hint::black_box;

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use chrono_tz::TZ_VARIANTS;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use hotpatch_scheduler::windows::{
    next_windows, Blackout, Day, Frequency, NthWeekday, RecurrenceSpec, Schedule, ScheduleSpec,
};

/// xorshift64*: the same generator and seed as tzbench, so the zones and instants are
/// drawn alike.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn recurrence(frequency: Frequency) -> RecurrenceSpec {
    RecurrenceSpec {
        frequency,
        interval: 1,
        days_of_week: Vec::new(),
        day_of_month: None,
        nth_weekday: None,
        offset_days: 0,
    }
}

/// One machine's schedule: half on the default off-peak window, the rest on weekend
/// nights across midnight, "second Tuesday + 4 days", the last day of the month, and
/// a daily 02:30 start (in the DST gap of many zones) with a Christmas blackout.
fn schedule(kind: u64, tz: chrono_tz::Tz) -> Schedule {
    let time = |h, m| NaiveTime::from_hms_opt(h, m, 0).unwrap();
    let (recurrence, start_time, hours, blackouts) = match kind % 20 {
        0..=9 => return Schedule::default_off_peak(tz),
        10..=13 => {
            let mut r = recurrence(Frequency::Weekly);
            r.days_of_week = vec![Day::Saturday, Day::Sunday];
            (r, time(22, 0), 6, Vec::new())
        }
        14..=16 => {
            let mut r = recurrence(Frequency::Monthly);
            r.nth_weekday = Some(NthWeekday { week: 2, day: Day::Tuesday });
            r.offset_days = 4;
            (r, time(2, 30), 3, Vec::new())
        }
        17..=18 => {
            let mut r = recurrence(Frequency::Monthly);
            r.day_of_month = Some(-1);
            (r, time(23, 0), 2, Vec::new())
        }
        _ => {
            let christmas = |y: i32| Blackout {
                from: format!("{y}-12-20T00:00:00Z").parse().unwrap(),
                to: format!("{}-01-02T00:00:00Z", y + 1).parse().unwrap(),
            };
            (recurrence(Frequency::Daily), time(2, 30), 4, (2024..2028).map(christmas).collect())
        }
    };
    Schedule::new(ScheduleSpec {
        recurrence,
        start_time,
        duration: TimeDelta::hours(hours),
        timezone: tz,
        blackouts,
    })
    .unwrap()
}

fn fleet(n: usize) -> Vec<(Schedule, DateTime<Utc>)> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let t_lo = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z").unwrap().timestamp();
    let span = 3 * 365 * 86_400u64;
    (0..n)
        .map(|_| {
            let tz = TZ_VARIANTS[(rng.next() % TZ_VARIANTS.len() as u64) as usize];
            let from = DateTime::from_timestamp(t_lo + (rng.next() % span) as i64, 0).unwrap();
            (schedule(rng.next(), tz), from)
        })
        .collect()
}

fn next_three_windows(c: &mut Criterion) {
    let n = std::env::var("WINDOWS_BENCH_MACHINES").ok().and_then(|s| s.parse().ok()).unwrap_or(1_000_000);
    let machines = fleet(n);
    let mut group = c.benchmark_group("windows");
    group.sample_size(10).throughput(Throughput::Elements(n as u64));
    group.bench_function(format!("next_3_windows_{n}_machines"), |b| {
        b.iter(|| {
            let mut acc = 0i64;
            for (schedule, from) in &machines {
                for w in next_windows(schedule, black_box(*from), 3) {
                    acc = acc.wrapping_add(w.start.timestamp() ^ w.end.timestamp());
                }
            }
            acc
        })
    });
    group.finish();
}

criterion_group!(benches, next_three_windows);
criterion_main!(benches);
