//! Rollouts against a real PostgreSQL (a fresh database per test): writing a plan, progress,
//! the operator's pause/resume/cancel, and the production dispatcher driven pass by pass with
//! the service clock, with agents claiming and completing the jobs.
//!
//! Every instant is `t0()` moved explicitly; nothing sleeps.
#![allow(clippy::unwrap_used, missing_docs)]

#[path = "../../store/tests/support/mod.rs"]
mod support;

use std::time::Instant;

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_app::rollouts::dispatcher::{self, BatchEvent};
use hotpatch_app::{App, Clock, Settings};
use hotpatch_domain::job::{Health, HealthStatus, JobKind, JobState, Outcome};
use hotpatch_domain::rollout::decisions::BatchKey;
use hotpatch_domain::{OsVersion, PatchOrchestration, ReleaseKind, ReleaseSpec};
use hotpatch_scheduler::cycle::{CycleKind, MachineState};
use hotpatch_scheduler::rollout::{
    plan_rollout, Batch, PlanWindow, PlannedMachine, RolloutMachine, RolloutOptions, RolloutPlan,
    RolloutRelease, Wave,
};
use hotpatch_store::jobs;
use hotpatch_store::rollouts::{
    self, BatchState, InstallState, NewRollout, Rollout, RolloutState, Transition,
};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::{agents, releases, PgPool, StoreError};
use sqlx::PgConnection;
use support::{insert_specs, result, spec, t0, TTL};
use uuid::Uuid;

fn hours(n: i64) -> TimeDelta {
    TimeDelta::hours(n)
}

fn mins(n: i64) -> TimeDelta {
    TimeDelta::minutes(n)
}

/// A planned baseline in the catalog (rollouts reference a release).
async fn release(pool: &PgPool) -> Uuid {
    let spec = ReleaseSpec {
        os: OsVersion::WindowsServer2022,
        kind: ReleaseKind::Baseline,
        planned: true,
        month: "2025-04".parse().unwrap(),
        kb: format!("KB{}", 5_000_000 + rand_kb()).parse().unwrap(),
        build: "20348.3400".parse().unwrap(),
        released_at: t0() - TimeDelta::days(1),
    };
    let mut conn = pool.acquire().await.unwrap();
    releases::insert(&mut conn, &spec, None).await.unwrap().release.id
}

/// A KB number unique within the test process.
fn rand_kb() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1);
    N.fetch_add(1, Ordering::Relaxed)
}

/// Registers one machine per `(region, zone)`; their ids in input order.
async fn fleet(pool: &PgPool, machines: &[(&str, Option<&str>)]) -> Vec<Uuid> {
    let specs: Vec<_> = machines
        .iter()
        .map(|(region, zone)| {
            let mut s = spec(&format!("m-{}", Uuid::now_v7().simple()), region, &[]);
            s.availability_zone = zone.map(str::to_owned);
            s
        })
        .collect();
    insert_specs(pool, &specs).await
}

/// One batch of a hand-made plan: its wave, region, zone and machines with their window.
struct B<'a> {
    wave: usize,
    region: &'a str,
    zone: Option<&'a str>,
    machines: Vec<(Uuid, DateTime<Utc>, DateTime<Utc>)>,
}

/// A plan built by hand (batch indices in the given order), every machine a baseline install.
fn plan(release_id: Uuid, threshold: u32, batches: Vec<B<'_>>) -> RolloutPlan {
    let mut waves: Vec<Wave> = Vec::new();
    for (i, b) in batches.into_iter().enumerate() {
        let machines: Vec<PlannedMachine> = b
            .machines
            .iter()
            .map(|&(machine_id, window_start, window_end)| PlannedMachine {
                machine_id,
                install: CycleKind::Baseline,
                release_id,
                reboot: true,
                availability_set: None,
                update_domain: None,
                window_start,
                window_end,
            })
            .collect();
        let batch = Batch {
            index: i + 1,
            region: b.region.to_owned(),
            zone: b.zone.map(str::to_owned),
            planned_start: machines.iter().map(|m| m.window_start).min().unwrap(),
            planned_end: machines.iter().map(|m| m.window_end).max().unwrap(),
            machines,
        };
        if waves.last().is_none_or(|w| w.index != b.wave) {
            waves.push(Wave {
                index: b.wave,
                regions: vec![],
                planned_start: batch.planned_start,
                planned_end: batch.planned_end,
                batches: vec![],
            });
        }
        let wave = waves.last_mut().unwrap();
        if !wave.regions.contains(&batch.region) {
            wave.regions.push(batch.region.clone());
        }
        wave.planned_end = wave.planned_end.max(batch.planned_end);
        wave.batches.push(batch);
    }
    RolloutPlan {
        release_id,
        start: t0(),
        options: RolloutOptions { failure_threshold_percent: threshold, ..RolloutOptions::default() },
        expected_finish: waves.last().map(|w| w.planned_end),
        waves,
        unplanned: vec![],
    }
}

/// Writes `plan` as a rollout created at `t0()`, due 30 days after.
async fn start(pool: &PgPool, plan: &RolloutPlan, automatic: bool) -> Result<Rollout, StoreError> {
    let selector = serde_json::json!({ "regions": ["eastus"] });
    let rows = hotpatch_app::rollouts::rows(plan).unwrap();
    let new = NewRollout {
        id: Uuid::now_v7(),
        selector: &selector,
        automatic,
        created_by: None,
        deadline: t0() + TimeDelta::days(30),
        plan: &rows,
    };
    let mut tx = pool.begin().await.unwrap();
    let rollout = rollouts::create(&mut tx, &new, t0()).await?;
    tx.commit().await.unwrap();
    Ok(rollout)
}

/// What one tick did.
#[derive(Debug, Default)]
struct Tick {
    events: Vec<BatchEvent>,
    opened: Vec<i32>,
    rescheduled: Vec<Uuid>,
    /// (machine, job) enqueued.
    enqueued: Vec<(Uuid, Uuid)>,
}

impl Tick {
    fn enqueued_machines(&self) -> Vec<Uuid> {
        self.enqueued.iter().map(|(m, _)| *m).collect()
    }
}

/// One pass of the production dispatcher (`hotpatch_app::rollouts::dispatcher::tick`) with the
/// service clock at `now`.
async fn tick(pool: &PgPool, now: DateTime<Utc>) -> Tick {
    let app = App::new(pool.clone(), Settings::default()).with_clock(Clock::manual(now));
    let pass = dispatcher::tick(&app).await.unwrap().expect("no other dispatcher runs");
    Tick {
        events: pass.events,
        opened: pass.opened.iter().map(|b| b.batch_index).collect(),
        rescheduled: pass.rescheduled,
        enqueued: pass.enqueued,
    }
}

/// The machine's current window (test inspection).
async fn window_of(
    conn: &mut PgConnection,
    rollout_id: Uuid,
    machine_id: Uuid,
) -> (DateTime<Utc>, DateTime<Utc>) {
    sqlx::query_as(
        "select window_start, window_end from rollout_machine where rollout_id = $1 and machine_id = $2",
    )
    .bind(rollout_id)
    .bind(machine_id)
    .fetch_one(conn)
    .await
    .unwrap()
}

/// A machine's row in a rollout: (state, attempts, job_id, healthy, error).
async fn machine_row(
    pool: &PgPool,
    rollout_id: Uuid,
    machine_id: Uuid,
) -> (String, i32, Option<Uuid>, Option<bool>, Option<String>) {
    sqlx::query_as(
        "select state, attempts, job_id, healthy, error from rollout_machine where rollout_id = $1 and machine_id = $2",
    )
    .bind(rollout_id)
    .bind(machine_id)
    .fetch_one(pool)
    .await
    .unwrap()
}

/// The machine's agent claims its job at `now` and reports `outcome`.
async fn install(pool: &PgPool, machine_id: Uuid, outcome: Outcome, now: DateTime<Utc>) {
    let claimed = jobs::claim(pool, machine_id, now, TTL).await.unwrap().expect("a claimable job");
    assert_eq!(claimed.kind, JobKind::Install);
    let error = (outcome == Outcome::Failed).then_some("KB5000001 failed with 0x80070005");
    let mut conn = pool.acquire().await.unwrap();
    jobs::complete(&mut conn, claimed.id, machine_id, &result(claimed.lease.id, outcome, error), now)
        .await
        .unwrap()
        .unwrap();
}

async fn report_health(pool: &PgPool, machine_id: Uuid, status: HealthStatus, now: DateTime<Utc>) {
    agents::record_health(pool, machine_id, &Health { status, checks: vec![] }, now).await.unwrap();
}

async fn batch_states(pool: &PgPool, rollout_id: Uuid) -> Vec<BatchState> {
    let mut conn = pool.acquire().await.unwrap();
    let view = rollouts::get(&mut conn, rollout_id, t0()).await.unwrap().unwrap();
    view.waves.iter().flat_map(|w| &w.batches).map(|b| b.state).collect()
}

async fn rollout_state(pool: &PgPool, rollout_id: Uuid) -> Rollout {
    let mut conn = pool.acquire().await.unwrap();
    rollouts::get(&mut conn, rollout_id, t0()).await.unwrap().unwrap().rollout
}

#[tokio::test]
async fn region_pairs_are_seeded_and_stored_once_whatever_the_order_of_their_names() {
    let db = fresh_db().await;
    let pairs = rollouts::region_pairs(&db.pool).await.unwrap();
    assert_eq!(pairs.len(), 12);
    assert!(pairs.contains(&("eastus".into(), "westus".into())));
    assert!(pairs.contains(&("centralus".into(), "eastus2".into())));

    assert!(rollouts::set_region_pair(&db.pool, "NorwayEast", "norwaywest", t0()).await.unwrap());
    assert!(!rollouts::set_region_pair(&db.pool, "norwaywest", "norwayeast", t0()).await.unwrap());
    assert!(rollouts::region_pairs(&db.pool)
        .await
        .unwrap()
        .contains(&("norwayeast".into(), "norwaywest".into())));
    assert!(rollouts::set_region_pair(&db.pool, "eastus", "eastus", t0()).await.is_err());

    assert!(rollouts::remove_region_pair(&db.pool, "westus", "eastus").await.unwrap());
    assert!(!rollouts::remove_region_pair(&db.pool, "westus", "eastus").await.unwrap());
    assert_eq!(rollouts::region_pairs(&db.pool).await.unwrap().len(), 12);
}

#[tokio::test]
async fn creating_a_rollout_writes_every_batch_and_machine_of_its_plan() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    // Three regions (eastus and westus are paired), zones, and an availability set of 10.
    let mut specs = vec![];
    for (i, (region, zone)) in
        [("eastus", Some("1")), ("eastus", Some("2")), ("westus", None), ("westeurope", Some("3"))]
            .iter()
            .cycle()
            .take(40)
            .enumerate()
    {
        let mut s = spec(&format!("m-{i:03}"), region, &[]);
        s.availability_zone = zone.map(str::to_owned);
        if *region == "westus" {
            s.availability_set = Some("web".into());
            s.update_domain = Some((i % 3) as i32);
        }
        specs.push(s);
    }
    let ids = insert_specs(&db.pool, &specs).await;
    let machines: Vec<RolloutMachine> = ids
        .iter()
        .zip(&specs)
        .map(|(id, s)| RolloutMachine {
            machine_id: *id,
            os: OsVersion::WindowsServer2022,
            orchestration: PatchOrchestration::AutomaticByPlatform,
            region: s.region.clone(),
            availability_zone: s.availability_zone.clone(),
            availability_set: s.availability_set.clone(),
            update_domain: s.update_domain,
            state: MachineState {
                hotpatch: true,
                current_baseline: None,
                latest_installed: None,
                reboot_pending: false,
            },
        })
        .collect();
    let release = RolloutRelease {
        id: release_id,
        os: OsVersion::WindowsServer2022,
        kind: ReleaseKind::Baseline,
        baseline_id: None,
    };
    let pairs = rollouts::region_pairs(&db.pool).await.unwrap();
    // A four-hour window every day at 01:00 UTC.
    let daily = |_: &RolloutMachine, from: DateTime<Utc>| {
        let day = from.date_naive().and_hms_opt(1, 0, 0).unwrap().and_utc();
        let start = if day >= from { day } else { day + TimeDelta::days(1) };
        Some(PlanWindow { start, end: start + hours(4) })
    };
    let plan = plan_rollout(&release, &machines, &pairs, &RolloutOptions::default(), t0(), daily).unwrap();
    assert_eq!(plan.waves.len(), 2, "eastus and westus are paired");

    let rollout = start(&db.pool, &plan, false).await.unwrap();
    assert_eq!(rollout.state, RolloutState::Running);
    assert_eq!(rollout.release_id, release_id);
    assert_eq!(rollout.machine_count, 40);
    assert_eq!(rollout.options, plan.options);
    assert_eq!(rollout.expected_finish, plan.expected_finish);
    assert_eq!(rollout.halted_reason, None);

    type BatchRow = (i32, i32, String, Option<String>, DateTime<Utc>, DateTime<Utc>);
    let batches: Vec<BatchRow> = sqlx::query_as(
        "select batch_index, wave, region, zone, planned_start, planned_end from rollout_batch
         where rollout_id = $1 order by batch_index",
    )
    .bind(rollout.id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let expected: Vec<_> = plan
        .waves
        .iter()
        .flat_map(|w| {
            w.batches.iter().map(move |b| {
                (
                    b.index as i32,
                    w.index as i32,
                    b.region.clone(),
                    b.zone.clone(),
                    b.planned_start,
                    b.planned_end,
                )
            })
        })
        .collect();
    assert_eq!(batches, expected);

    type MachineRow = (
        Uuid,
        i32,
        i32,
        String,
        Uuid,
        bool,
        Option<String>,
        Option<i32>,
        DateTime<Utc>,
        DateTime<Utc>,
        String,
        i32,
    );
    let stored: Vec<MachineRow> = sqlx::query_as(
        "select machine_id, batch_index, wave, install, release_id, reboot, availability_set, update_domain,
                window_start, window_end, state, attempts
         from rollout_machine where rollout_id = $1 order by machine_id",
    )
    .bind(rollout.id)
    .fetch_all(&db.pool)
    .await
    .unwrap();
    let mut expected: Vec<MachineRow> = plan
        .waves
        .iter()
        .flat_map(|w| w.batches.iter().map(move |b| (w, b)))
        .flat_map(|(w, b)| {
            b.machines.iter().map(move |m| {
                (
                    m.machine_id,
                    b.index as i32,
                    w.index as i32,
                    "baseline".to_owned(),
                    m.release_id,
                    m.reboot,
                    m.availability_set.clone(),
                    m.update_domain,
                    m.window_start,
                    m.window_end,
                    "pending".to_owned(),
                    1,
                )
            })
        })
        .collect();
    expected.sort_by_key(|r| r.0);
    assert_eq!(stored, expected);

    let mut conn = db.pool.acquire().await.unwrap();
    let view = rollouts::get(&mut conn, rollout.id, t0()).await.unwrap().unwrap();
    assert_eq!(view.rollout, rollout);
    assert_eq!(view.machines.total, 40);
    assert_eq!(view.machines.pending, 40);
    assert_eq!(view.waves.len(), 2);
    assert_eq!(view.waves[1].regions, ["westus"]);
    assert!(view.waves.iter().flat_map(|w| &w.batches).all(|b| b.state == BatchState::Pending));
    assert_eq!(view.overdue_machines, None);
}

#[tokio::test]
async fn a_rollout_of_100000_machines_is_written_in_chunks_and_timed() {
    const N: usize = 100_000;
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    // Machines straight in SQL: the register path (eligibility per machine) is not what is timed.
    let ids: Vec<Uuid> = (0..N).map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "insert into machine (id, name, platform, os, region, timezone, hotpatch_enabled, patch_orchestration,
                              eligible, eligibility, hotpatch_status)
         select id, 'm-' || id, 'azure_vm', 'windows_server_2022', 'eastus', 'UTC', true, 'automatic_by_platform',
                true, '{}', 'enabled'
         from unnest($1::uuid[]) as t(id)",
    )
    .bind(&ids)
    .execute(&db.pool)
    .await
    .unwrap();
    // 600 batches of ~167 machines in 5 waves (machines spread over them, as sets and zones do).
    let mut groups: Vec<Vec<Uuid>> = vec![vec![]; 600];
    for (i, id) in ids.iter().enumerate() {
        groups[i % 600].push(*id);
    }
    let batches: Vec<B<'_>> = groups
        .into_iter()
        .enumerate()
        .map(|(i, machines)| {
            let start = t0() + hours(i as i64);
            B {
                wave: 1 + i / 120,
                region: "region",
                zone: Some("1"),
                machines: machines.into_iter().map(|m| (m, start, start + hours(4))).collect(),
            }
        })
        .collect();
    let plan = plan(release_id, 10, batches);

    let started = Instant::now();
    let rollout = start(&db.pool, &plan, true).await.unwrap();
    let took = started.elapsed();
    eprintln!("rollouts::create of {N} machines in 600 batches took {took:?} (including commit)");
    assert_eq!(rollout.machine_count, N as i32);

    let mut conn = db.pool.acquire().await.unwrap();
    let started = Instant::now();
    let view = rollouts::get(&mut conn, rollout.id, t0()).await.unwrap().unwrap();
    eprintln!("rollouts::get of {N} machines took {:?}", started.elapsed());
    assert_eq!(view.machines.pending, N as i64);
    assert_eq!(view.waves.len(), 5);
}

#[tokio::test]
async fn a_second_automatic_rollout_of_one_release_is_a_conflict() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    start(&db.pool, &p, true).await.unwrap();
    match start(&db.pool, &p, true).await {
        Err(StoreError::Conflict { constraint, .. }) => {
            assert_eq!(constraint, "rollout_one_automatic_per_release")
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
    // An operator may start another one by hand.
    start(&db.pool, &p, false).await.unwrap();
}

#[tokio::test]
async fn progress_counts_machines_by_state_per_wave_and_batch() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(
        &db.pool,
        &[("eastus", Some("1")), ("eastus", Some("1")), ("eastus", Some("1")), ("westus", None)],
    )
    .await;
    let w = |id| (id, t0() + hours(1), t0() + hours(5));
    let p = plan(
        release_id,
        50,
        vec![
            B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![w(m[0]), w(m[1]), w(m[2])] },
            B { wave: 2, region: "westus", zone: None, machines: vec![w(m[3])] },
        ],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    tick(&db.pool, t0()).await;
    let t = tick(&db.pool, t0() + hours(1)).await;
    assert_eq!(t.enqueued.len(), 3);
    install(&db.pool, m[0], Outcome::Succeeded, t0() + hours(2)).await;
    install(&db.pool, m[1], Outcome::Failed, t0() + hours(2)).await;
    report_health(&db.pool, m[0], HealthStatus::Healthy, t0() + hours(3)).await;
    tick(&db.pool, t0() + hours(3)).await;

    let mut conn = db.pool.acquire().await.unwrap();
    let view = rollouts::get(&mut conn, r.id, t0() + hours(3)).await.unwrap().unwrap();
    let c = view.machines;
    assert_eq!((c.total, c.pending, c.queued, c.succeeded, c.failed, c.canceled), (4, 1, 1, 1, 1, 0));
    assert_eq!((c.healthy, c.unhealthy), (1, 0));
    assert_eq!(view.waves.len(), 2);
    let b1 = &view.waves[0].batches[0];
    assert_eq!((b1.index, b1.wave, b1.region.as_str(), b1.zone.as_deref()), (1, 1, "eastus", Some("1")));
    assert_eq!(b1.state, BatchState::Open);
    assert_eq!(b1.opened_at, Some(t0()));
    assert_eq!((b1.machines.succeeded, b1.machines.failed, b1.machines.queued), (1, 1, 1));
    assert_eq!(view.waves[0].machines, b1.machines);
    let b2 = &view.waves[1].batches[0];
    assert_eq!((b2.state, b2.zone.as_deref(), b2.machines.pending), (BatchState::Pending, None, 1));
    assert_eq!(view.overdue_machines, None);

    // Past the deadline, the machines that have not installed are overdue.
    let late = r.deadline + hours(1);
    let view = rollouts::get(&mut conn, r.id, late).await.unwrap().unwrap();
    assert_eq!(view.overdue_machines, Some(3));
    assert!(view.rollout.is_overdue(late));
    assert!(rollouts::get(&mut conn, Uuid::now_v7(), t0()).await.unwrap().is_none());
}

#[tokio::test]
async fn pause_resume_and_cancel_tell_a_missing_rollout_from_one_in_the_wrong_state() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let now = t0() + mins(1);

    let missing = Uuid::now_v7();
    assert_eq!(rollouts::pause(&mut conn, missing, now).await.unwrap(), Transition::NotFound);
    assert_eq!(rollouts::resume(&mut conn, missing, now).await.unwrap(), Transition::NotFound);
    assert_eq!(rollouts::cancel(&mut conn, missing, now).await.unwrap(), Transition::NotFound);

    assert_eq!(
        rollouts::resume(&mut conn, r.id, now).await.unwrap(),
        Transition::WrongState(RolloutState::Running)
    );
    let Transition::Done(paused) = rollouts::pause(&mut conn, r.id, now).await.unwrap() else {
        panic!("not paused")
    };
    assert_eq!((paused.state, paused.updated_at), (RolloutState::Paused, now));
    assert_eq!(
        rollouts::pause(&mut conn, r.id, now).await.unwrap(),
        Transition::WrongState(RolloutState::Paused)
    );

    // Paused: batches do not open and nothing is due.
    let t = tick(&db.pool, t0() + hours(1)).await;
    assert!(t.opened.is_empty() && t.enqueued.is_empty());

    let Transition::Done(resumed) = rollouts::resume(&mut conn, r.id, now).await.unwrap() else {
        panic!("not resumed")
    };
    assert_eq!(resumed.state, RolloutState::Running);
    let t = tick(&db.pool, t0() + hours(1)).await;
    assert_eq!((t.opened.as_slice(), t.enqueued_machines()), (&[1][..], vec![m[0]]));

    let Transition::Done(canceled) = rollouts::cancel(&mut conn, r.id, now).await.unwrap() else {
        panic!("not canceled")
    };
    assert_eq!(canceled.rollout.state, RolloutState::Canceled);
    assert_eq!(canceled.rollout.finished_at, Some(now));
    for result in [
        rollouts::pause(&mut conn, r.id, now).await.unwrap(),
        rollouts::resume(&mut conn, r.id, now).await.unwrap(),
    ] {
        assert_eq!(result, Transition::WrongState(RolloutState::Canceled));
    }
    assert!(matches!(
        rollouts::cancel(&mut conn, r.id, now).await.unwrap(),
        Transition::WrongState(RolloutState::Canceled)
    ));
}

#[tokio::test]
async fn an_operators_cancel_waits_for_the_tick_that_holds_the_rollout() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let window = (m[0], t0(), t0() + hours(4));
    let p =
        plan(release_id, 10, vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![window] }]);
    let r = start(&db.pool, &p, false).await.unwrap();

    let mut tick_tx = db.pool.begin().await.unwrap();
    assert_eq!(rollouts::lock_rollouts(&mut *tick_tx).await.unwrap(), 1);
    let id = r.id;
    let during = support::on_side_connection(&db.url, move |mut conn| async move {
        sqlx::query("set lock_timeout = '200ms'").execute(&mut conn).await.unwrap();
        rollouts::cancel(&mut conn, id, t0()).await
    });
    assert!(matches!(during, Err(StoreError::Database(_))), "{during:?}");
    tick_tx.commit().await.unwrap();

    let mut conn = db.pool.acquire().await.unwrap();
    assert!(matches!(rollouts::cancel(&mut conn, r.id, t0()).await.unwrap(), Transition::Done(_)));
    assert_eq!(rollouts::lock_rollouts(&db.pool).await.unwrap(), 0);
}

#[tokio::test]
async fn a_machine_due_while_its_rollout_is_paused_is_not_marked_queued() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let first = BatchKey { rollout_id: r.id, batch_index: 1 };
    assert_eq!(rollouts::open_batches(&mut *conn, &[first], t0()).await.unwrap(), [first]);
    let job_id = jobs::enqueue(&mut *conn, &support::job(JobKind::Install, m[0], t0())).await.unwrap();
    rollouts::pause(&mut conn, r.id, t0()).await.unwrap();
    assert!(!rollouts::mark_queued(&mut *conn, r.id, m[0], job_id, t0()).await.unwrap());
    assert!(rollouts::cancel_queued_job(&mut *conn, job_id, t0()).await.unwrap());
    assert_eq!(machine_row(&db.pool, r.id, m[0]).await.0, "pending");
}

#[tokio::test]
async fn canceling_cancels_queued_jobs_and_pending_machines_but_lets_leased_jobs_run_to_their_end() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(
        &db.pool,
        &[("eastus", Some("1")), ("eastus", Some("1")), ("eastus", Some("1")), ("westus", None)],
    )
    .await;
    let now = t0() + hours(1);
    let p = plan(
        release_id,
        10,
        vec![
            B {
                wave: 1,
                region: "eastus",
                zone: Some("1"),
                machines: vec![
                    (m[0], t0(), t0() + hours(4)),
                    (m[1], t0(), t0() + hours(4)),
                    (m[2], t0() + hours(24), t0() + hours(28)),
                ],
            },
            B { wave: 2, region: "westus", zone: None, machines: vec![(m[3], t0(), t0() + hours(4))] },
        ],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    let t = tick(&db.pool, now).await;
    assert_eq!(t.enqueued.len(), 2);
    let leased = jobs::claim(&db.pool, m[1], now, TTL).await.unwrap().unwrap();

    let mut conn = db.pool.acquire().await.unwrap();
    let Transition::Done(c) = rollouts::cancel(&mut conn, r.id, now + mins(5)).await.unwrap() else {
        panic!("not canceled")
    };
    assert_eq!(c.jobs_canceled, 1);
    let job_of = |machine| t.enqueued.iter().find(|(mm, _)| *mm == machine).unwrap().1;
    let queued_job = jobs::get(&db.pool, job_of(m[0]), m[0]).await.unwrap().unwrap();
    assert_eq!(
        (queued_job.state, queued_job.error.as_deref()),
        (JobState::Canceled, Some("rollout canceled"))
    );
    assert_eq!(jobs::get(&db.pool, leased.id, m[1]).await.unwrap().unwrap().state, JobState::Leased);

    assert_eq!(machine_row(&db.pool, r.id, m[0]).await.0, "canceled");
    assert_eq!(machine_row(&db.pool, r.id, m[1]).await.0, "queued");
    assert_eq!(machine_row(&db.pool, r.id, m[2]).await.0, "canceled");
    assert_eq!(machine_row(&db.pool, r.id, m[3]).await.0, "canceled");
    assert_eq!(batch_states(&db.pool, r.id).await, [BatchState::Canceled, BatchState::Canceled]);

    // The leased job ends; its result is recorded all the same.
    let mut conn2 = db.pool.acquire().await.unwrap();
    jobs::complete(&mut conn2, leased.id, m[1], &support::succeeded(&leased), now + mins(30))
        .await
        .unwrap()
        .unwrap();
    let t = tick(&db.pool, now + mins(31)).await;
    assert!(t.enqueued.is_empty() && t.opened.is_empty());
    assert_eq!(machine_row(&db.pool, r.id, m[1]).await.0, "succeeded");
    let view = rollouts::get(&mut conn, r.id, now).await.unwrap().unwrap();
    assert_eq!((view.machines.succeeded, view.machines.canceled), (1, 3));
    assert_eq!(view.rollout.state, RolloutState::Canceled);
}

#[tokio::test]
async fn the_dispatcher_takes_a_rollout_wave_by_wave_to_success_on_results_and_health() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(
        &db.pool,
        &[("eastus", Some("1")), ("eastus", Some("1")), ("westeurope", Some("1")), ("westus", None)],
    )
    .await;
    let (a1, a2, b1, c1) = (m[0], m[1], m[2], m[3]);
    let window = |id, from: i64| (id, t0() + hours(from), t0() + hours(from + 4));
    // Wave 1: eastus (two batches, one after the other) beside westeurope; wave 2: westus.
    let p = plan(
        release_id,
        10,
        vec![
            B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![window(a1, 1)] },
            B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![window(a2, 1)] },
            B { wave: 1, region: "westeurope", zone: Some("1"), machines: vec![window(b1, 2)] },
            B { wave: 2, region: "westus", zone: None, machines: vec![window(c1, 2)] },
        ],
    );
    let r = start(&db.pool, &p, false).await.unwrap();

    // The regions of wave 1 open in parallel; eastus's second batch and wave 2 wait.
    let t = tick(&db.pool, t0()).await;
    assert_eq!(t.opened, [1, 3]);
    assert!(t.enqueued.is_empty(), "no window has started");
    assert_eq!(
        batch_states(&db.pool, r.id).await,
        [BatchState::Open, BatchState::Pending, BatchState::Open, BatchState::Pending]
    );

    // Installs start inside each machine's window, once.
    let t = tick(&db.pool, t0() + hours(1) - TimeDelta::seconds(1)).await;
    assert!(t.enqueued.is_empty());
    let t = tick(&db.pool, t0() + hours(1)).await;
    assert_eq!(t.enqueued_machines(), [a1]);
    let job = jobs::get(&db.pool, t.enqueued[0].1, a1).await.unwrap().unwrap();
    assert_eq!((job.kind, job.rollout_id), (JobKind::Install, Some(r.id)));
    let t = tick(&db.pool, t0() + hours(2)).await;
    assert_eq!(t.enqueued_machines(), [b1]);
    let mut conn = db.pool.acquire().await.unwrap();
    let mr = rollouts::machine_rollout(&mut *conn, a1).await.unwrap().unwrap();
    assert_eq!(
        (mr.rollout_id, mr.rollout_state, mr.state, mr.batch_index),
        (r.id, RolloutState::Running, InstallState::Queued, 1)
    );
    assert_eq!((mr.window_start, mr.window_end, mr.attempts), (t0() + hours(1), t0() + hours(5), 1));

    // Installed is not enough: the batch waits for a health report newer than the install.
    report_health(&db.pool, a1, HealthStatus::Healthy, t0() + hours(2)).await;
    install(&db.pool, a1, Outcome::Succeeded, t0() + hours(2) + mins(10)).await;
    let t = tick(&db.pool, t0() + hours(2) + mins(15)).await;
    assert!(t.events.is_empty() && t.opened.is_empty());
    assert_eq!(machine_row(&db.pool, r.id, a1).await.0, "succeeded");

    // Healthy: batch 1 succeeds and eastus's next batch opens in the same tick; its machine is
    // inside its window, so its install starts at once.
    report_health(&db.pool, a1, HealthStatus::Healthy, t0() + hours(2) + mins(20)).await;
    let t = tick(&db.pool, t0() + hours(2) + mins(25)).await;
    assert_eq!(t.events, [BatchEvent::BatchSucceeded { rollout_id: r.id, batch_index: 1 }]);
    assert_eq!(t.opened, [2]);
    assert_eq!(t.enqueued_machines(), [a2]);

    // westeurope finishes first: wave 2 still waits for eastus.
    install(&db.pool, b1, Outcome::Succeeded, t0() + hours(3)).await;
    report_health(&db.pool, b1, HealthStatus::Healthy, t0() + hours(3) + mins(5)).await;
    let t = tick(&db.pool, t0() + hours(3) + mins(10)).await;
    assert_eq!(t.events, [BatchEvent::BatchSucceeded { rollout_id: r.id, batch_index: 3 }]);
    assert!(t.opened.is_empty());

    install(&db.pool, a2, Outcome::Succeeded, t0() + hours(3) + mins(20)).await;
    report_health(&db.pool, a2, HealthStatus::Healthy, t0() + hours(3) + mins(25)).await;
    let t = tick(&db.pool, t0() + hours(3) + mins(30)).await;
    assert_eq!(t.events, [BatchEvent::BatchSucceeded { rollout_id: r.id, batch_index: 2 }]);
    assert_eq!(t.opened, [4]);
    assert_eq!(t.enqueued_machines(), [c1]);

    install(&db.pool, c1, Outcome::Succeeded, t0() + hours(4)).await;
    report_health(&db.pool, c1, HealthStatus::Healthy, t0() + hours(4) + mins(5)).await;
    let end = t0() + hours(4) + mins(10);
    let t = tick(&db.pool, end).await;
    assert_eq!(
        t.events,
        [
            BatchEvent::BatchSucceeded { rollout_id: r.id, batch_index: 4 },
            BatchEvent::RolloutSucceeded { rollout_id: r.id }
        ]
    );

    let view = rollouts::get(&mut conn, r.id, end).await.unwrap().unwrap();
    assert_eq!((view.rollout.state, view.rollout.finished_at), (RolloutState::Succeeded, Some(end)));
    assert_eq!((view.machines.succeeded, view.machines.healthy), (4, 4));
    assert!(view
        .waves
        .iter()
        .flat_map(|w| &w.batches)
        .all(|b| b.state == BatchState::Succeeded && b.finished_at.is_some()));
    assert!(rollouts::machine_rollout(&mut *conn, a1).await.unwrap().is_none(), "the rollout is over");
    let t = tick(&db.pool, end + hours(1)).await;
    assert!(t.events.is_empty() && t.opened.is_empty() && t.enqueued.is_empty());
}

#[tokio::test]
async fn a_failure_rate_over_the_threshold_halts_the_rollout_and_resume_reopens_the_batch() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1")); 10]).await;
    let other = fleet(&db.pool, &[("westeurope", None)]).await[0];
    let w = |id| (id, t0() + hours(1), t0() + hours(5));
    let p = plan(
        release_id,
        10,
        vec![
            B { wave: 1, region: "eastus", zone: Some("1"), machines: m.iter().map(|&id| w(id)).collect() },
            B { wave: 2, region: "westeurope", zone: None, machines: vec![w(other)] },
        ],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    tick(&db.pool, t0()).await;
    assert_eq!(tick(&db.pool, t0() + hours(1)).await.enqueued.len(), 10);

    // One failure in ten is at the 10% threshold: not over it.
    let at = t0() + hours(2);
    install(&db.pool, m[0], Outcome::Failed, at).await;
    for &id in &m[1..6] {
        install(&db.pool, id, Outcome::Succeeded, at).await;
    }
    let t = tick(&db.pool, at + mins(1)).await;
    assert!(t.events.is_empty());
    let (state, _, _, _, error) = machine_row(&db.pool, r.id, m[0]).await;
    assert_eq!((state.as_str(), error.as_deref()), ("failed", Some("KB5000001 failed with 0x80070005")));

    // A second bad machine (unhealthy after its install) puts it over: the rollout halts.
    report_health(&db.pool, m[1], HealthStatus::Unhealthy, at + mins(2)).await;
    let t = tick(&db.pool, at + mins(3)).await;
    let reason =
        "2 of 10 machines failed or are unhealthy in batch 1 (region eastus, zone 1): over the 10% threshold";
    assert_eq!(
        t.events,
        [BatchEvent::BatchHalted { rollout_id: r.id, batch_index: 1, reason: reason.into() }]
    );
    let halted = rollout_state(&db.pool, r.id).await;
    assert_eq!((halted.state, halted.halted_reason.as_deref()), (RolloutState::Halted, Some(reason)));
    assert_eq!(batch_states(&db.pool, r.id).await, [BatchState::Halted, BatchState::Pending]);

    // Halted: results are still recorded, nothing new starts, nothing succeeds.
    for &id in &m[6..] {
        install(&db.pool, id, Outcome::Succeeded, at + mins(4)).await;
    }
    for &id in &m[2..] {
        report_health(&db.pool, id, HealthStatus::Healthy, at + mins(5)).await;
    }
    let t = tick(&db.pool, at + mins(6)).await;
    assert!(t.events.is_empty() && t.opened.is_empty() && t.enqueued.is_empty());
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(
        rollouts::resume(&mut conn, r.id, at + mins(7)).await.unwrap().state(),
        Some(RolloutState::Running)
    );
    let resumed = rollout_state(&db.pool, r.id).await;
    assert_eq!(resumed.halted_reason, None);
    assert_eq!(batch_states(&db.pool, r.id).await, [BatchState::Open, BatchState::Pending]);

    // The failed machine waits for its next window (not retried in the one that failed it); the
    // unhealthy one counts until it reports healthy (one in ten: not over the threshold).
    let (state, attempts, job, _, _) = machine_row(&db.pool, r.id, m[0]).await;
    assert_eq!((state.as_str(), attempts), ("pending", 1));
    assert!(job.is_some());
    let t = tick(&db.pool, at + mins(8)).await;
    assert!(t.events.is_empty() && t.enqueued.is_empty());
    assert_eq!(machine_row(&db.pool, r.id, m[1]).await.3, Some(false));
    report_health(&db.pool, m[1], HealthStatus::Healthy, at + mins(9)).await;
    tick(&db.pool, at + mins(10)).await;
    assert_eq!(machine_row(&db.pool, r.id, m[1]).await.3, Some(true));

    // Its window ends: it moves to the next one, and installs there.
    let t = tick(&db.pool, t0() + hours(5)).await;
    assert_eq!(t.rescheduled, [m[0]]);
    assert!(t.enqueued.is_empty());
    // Its schedule's next window: 01:00 Berlin time (the default off-peak window), t0 + 14 h.
    let t = tick(&db.pool, t0() + hours(14)).await;
    assert_eq!(t.enqueued_machines(), [m[0]]);
    assert!(tick(&db.pool, t0() + hours(14)).await.enqueued.is_empty(), "one install at a time");
    let (_, attempts, _, _, _) = machine_row(&db.pool, r.id, m[0]).await;
    assert_eq!(attempts, 2);
    install(&db.pool, m[0], Outcome::Succeeded, t0() + hours(15)).await;
    report_health(&db.pool, m[0], HealthStatus::Healthy, t0() + hours(26) + mins(1)).await;
    let t = tick(&db.pool, t0() + hours(26) + mins(2)).await;
    assert_eq!(t.events, [BatchEvent::BatchSucceeded { rollout_id: r.id, batch_index: 1 }]);
    assert_eq!(t.opened, [2]);
}

#[tokio::test]
async fn failures_at_or_under_the_threshold_let_the_batch_succeed_and_stay_failed() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1")); 10]).await;
    let p = plan(
        release_id,
        10,
        vec![B {
            wave: 1,
            region: "eastus",
            zone: Some("1"),
            machines: m.iter().map(|&id| (id, t0(), t0() + hours(4))).collect(),
        }],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    assert_eq!(tick(&db.pool, t0()).await.enqueued.len(), 10);
    install(&db.pool, m[0], Outcome::Failed, t0() + hours(1)).await;
    for &id in &m[1..] {
        install(&db.pool, id, Outcome::Succeeded, t0() + hours(1)).await;
        report_health(&db.pool, id, HealthStatus::Healthy, t0() + hours(2)).await;
    }
    let t = tick(&db.pool, t0() + hours(2) + mins(1)).await;
    assert_eq!(
        t.events,
        [
            BatchEvent::BatchSucceeded { rollout_id: r.id, batch_index: 1 },
            BatchEvent::RolloutSucceeded { rollout_id: r.id }
        ]
    );
    assert_eq!(machine_row(&db.pool, r.id, m[0]).await.0, "failed");
    // Nothing is retried after the rollout ended.
    assert!(tick(&db.pool, t0() + hours(24)).await.rescheduled.is_empty());
}

#[tokio::test]
async fn a_missed_window_cancels_the_unclaimed_job_and_moves_the_machine_to_its_next_window() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1")), ("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        100,
        vec![B {
            wave: 1,
            region: "eastus",
            zone: Some("1"),
            machines: vec![(m[0], t0(), t0() + hours(4)), (m[1], t0(), t0() + hours(4))],
        }],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    let t = tick(&db.pool, t0()).await;
    assert_eq!(t.enqueued.len(), 2);
    let unclaimed = t.enqueued.iter().find(|(mm, _)| *mm == m[0]).unwrap().1;
    // m[1]'s agent claims its job and is still at it when the window closes.
    let leased = jobs::claim(&db.pool, m[1], t0() + hours(3), TTL * 100).await.unwrap().unwrap();

    let t = tick(&db.pool, t0() + hours(4)).await;
    assert_eq!(t.rescheduled, [m[0]]);
    let job = jobs::get(&db.pool, unclaimed, m[0]).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Canceled);
    let (state, attempts, job_id, _, _) = machine_row(&db.pool, r.id, m[0]).await;
    assert_eq!((state.as_str(), attempts, job_id), ("pending", 2, None));
    let mut conn = db.pool.acquire().await.unwrap();
    // Its schedule's first window at or after now: the default off-peak 01:00–05:00 Berlin time.
    assert_eq!(window_of(&mut conn, r.id, m[0]).await, (t0() + hours(14), t0() + hours(18)));
    assert_eq!(machine_row(&db.pool, r.id, m[1]).await.0, "queued", "a leased job runs on");
    assert_eq!(jobs::get(&db.pool, leased.id, m[1]).await.unwrap().unwrap().state, JobState::Leased);

    // The next window: due again, as attempt 2.
    assert!(tick(&db.pool, t0() + hours(13)).await.enqueued.is_empty());
    let t = tick(&db.pool, t0() + hours(14)).await;
    assert_eq!(t.enqueued_machines(), [m[0]]);
    assert_eq!(machine_row(&db.pool, r.id, m[0]).await.1, 2);

    // Failing and moving guard on the state the dispatcher decided from: a machine whose job is
    // still queued neither fails nor moves; once its job is canceled it can fail, and a failed
    // machine no longer moves.
    let why = "no maintenance window left in the schedule to retry the install in";
    let later = (t0() + hours(38), t0() + hours(42));
    assert!(!rollouts::mark_failed(&db.pool, r.id, m[0], why, t0() + hours(14)).await.unwrap());
    assert!(rollouts::cancel_queued_job(&db.pool, t.enqueued[0].1, t0() + hours(14)).await.unwrap());
    assert!(rollouts::mark_failed(&db.pool, r.id, m[0], why, t0() + hours(14)).await.unwrap());
    assert!(!rollouts::reschedule(&db.pool, r.id, m[0], later, 3, t0() + hours(14)).await.unwrap());
}

#[tokio::test]
async fn a_job_canceled_by_someone_else_sends_the_machine_back_to_wait_for_its_next_window() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    let t = tick(&db.pool, t0()).await;
    assert!(rollouts::cancel_queued_job(&db.pool, t.enqueued[0].1, t0() + mins(5)).await.unwrap());

    let t = tick(&db.pool, t0() + mins(6)).await;
    assert!(t.enqueued.is_empty() && t.rescheduled.is_empty(), "{t:?}");
    assert_eq!(machine_row(&db.pool, r.id, m[0]).await.0, "pending");
    // Not again in this window; moved on when it ends.
    assert!(tick(&db.pool, t0() + hours(1)).await.enqueued.is_empty());
    assert_eq!(tick(&db.pool, t0() + hours(4)).await.rescheduled, [m[0]]);
    // Its next window: 01:00 Berlin time (the default off-peak window) is t0 + 14 h.
    assert_eq!(tick(&db.pool, t0() + hours(14)).await.enqueued_machines(), [m[0]]);
}

#[tokio::test]
async fn due_installs_skip_a_machine_with_another_active_install() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1")), ("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        100,
        vec![B {
            wave: 1,
            region: "eastus",
            zone: Some("1"),
            machines: vec![(m[0], t0(), t0() + hours(4)), (m[1], t0(), t0() + hours(4))],
        }],
    );
    start(&db.pool, &p, false).await.unwrap();
    // An "install now" holds m[0].
    jobs::enqueue(&db.pool, &support::job(JobKind::Install, m[0], t0())).await.unwrap();
    let t = tick(&db.pool, t0()).await;
    assert_eq!(t.enqueued_machines(), [m[1]]);
}

#[tokio::test]
async fn rollouts_list_newest_first_by_page_and_by_state() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    let mut ids = vec![];
    for _ in 0..3 {
        ids.push(start(&db.pool, &p, false).await.unwrap().id);
    }
    let mut conn = db.pool.acquire().await.unwrap();
    rollouts::pause(&mut conn, ids[1], t0()).await.unwrap();

    let all = rollouts::list(&db.pool, None, None, 10).await.unwrap();
    assert_eq!(all.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[2], ids[1], ids[0]]);
    let page = rollouts::list(&db.pool, None, Some(ids[2]), 1).await.unwrap();
    assert_eq!(page.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1]]);
    let paused = rollouts::list(&db.pool, Some(RolloutState::Paused), None, 10).await.unwrap();
    assert_eq!(paused.iter().map(|r| r.id).collect::<Vec<_>>(), [ids[1]]);
    assert!(!all[0].is_overdue(t0()));
    assert!(all[0].is_overdue(all[0].deadline + mins(1)));
}

#[tokio::test]
async fn a_machine_s_rollout_is_its_latest_unfinished_one() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    let first = start(&db.pool, &p, false).await.unwrap();
    let second = start(&db.pool, &p, false).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert_eq!(rollouts::machine_rollout(&mut *conn, m[0]).await.unwrap().unwrap().rollout_id, second.id);
    rollouts::cancel(&mut conn, second.id, t0()).await.unwrap();
    let mr = rollouts::machine_rollout(&mut *conn, m[0]).await.unwrap().unwrap();
    assert_eq!((mr.rollout_id, mr.state), (first.id, InstallState::Pending));
    rollouts::cancel(&mut conn, first.id, t0()).await.unwrap();
    assert!(rollouts::machine_rollout(&mut *conn, m[0]).await.unwrap().is_none());
}

#[tokio::test]
async fn deleting_a_machine_takes_it_out_of_its_rollouts_with_its_jobs() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1")), ("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        100,
        vec![B {
            wave: 1,
            region: "eastus",
            zone: Some("1"),
            machines: vec![(m[0], t0(), t0() + hours(4)), (m[1], t0(), t0() + hours(4))],
        }],
    );
    let r = start(&db.pool, &p, false).await.unwrap();
    assert_eq!(tick(&db.pool, t0()).await.enqueued.len(), 2);
    hotpatch_store::machines::delete(&db.pool, m[0]).await.unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    let view = rollouts::get(&mut conn, r.id, t0()).await.unwrap().unwrap();
    assert_eq!((view.machines.total, view.machines.queued), (1, 1));
}

#[tokio::test]
async fn deleting_a_rollout_by_hand_takes_its_batches_and_machines_along_and_keeps_its_jobs() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1")), ("eastus", Some("1"))]).await;
    let one = |id| {
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(id, t0(), t0() + hours(4))] }]
    };
    let gone = start(&db.pool, &plan(release_id, 10, one(m[0])), false).await.unwrap();
    let kept = start(&db.pool, &plan(release_id, 10, one(m[1])), false).await.unwrap();
    let t = tick(&db.pool, t0()).await;
    assert_eq!(t.enqueued.len(), 2);
    sqlx::query("delete from rollout where id = $1").bind(gone.id).execute(&db.pool).await.unwrap();

    let left: Vec<(Uuid,)> = sqlx::query_as(
        "select rollout_id from rollout_machine union all select rollout_id from rollout_batch",
    )
    .fetch_all(&db.pool)
    .await
    .unwrap();
    assert_eq!(left, [(kept.id,), (kept.id,)]);
    let job_of = |machine| t.enqueued.iter().find(|(mm, _)| *mm == machine).unwrap().1;
    let orphan = jobs::get(&db.pool, job_of(m[0]), m[0]).await.unwrap().unwrap();
    assert_eq!((orphan.state, orphan.rollout_id), (JobState::Queued, None));
    let job = jobs::get(&db.pool, job_of(m[1]), m[1]).await.unwrap().unwrap();
    assert_eq!(job.rollout_id, Some(kept.id));
}

#[tokio::test]
async fn a_machine_due_in_two_rollouts_gets_one_install_at_a_time_latest_rollout_first() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let m = fleet(&db.pool, &[("eastus", Some("1"))]).await;
    let p = plan(
        release_id,
        10,
        vec![B { wave: 1, region: "eastus", zone: Some("1"), machines: vec![(m[0], t0(), t0() + hours(4))] }],
    );
    let older = start(&db.pool, &p, false).await.unwrap();
    let newer = start(&db.pool, &p, false).await.unwrap();
    let t = tick(&db.pool, t0()).await;
    assert_eq!(t.enqueued_machines(), [m[0]]);
    assert_eq!(machine_row(&db.pool, newer.id, m[0]).await.0, "queued");
    assert_eq!(machine_row(&db.pool, older.id, m[0]).await.0, "pending");
    install(&db.pool, m[0], Outcome::Succeeded, t0() + hours(1)).await;
    let t = tick(&db.pool, t0() + hours(1)).await;
    assert_eq!(t.enqueued_machines(), [m[0]]);
    assert_eq!(machine_row(&db.pool, older.id, m[0]).await.0, "queued");
}

/// `Transition` helpers for the tests.
trait TransitionExt {
    fn state(&self) -> Option<RolloutState>;
}

impl TransitionExt for Transition<Rollout> {
    fn state(&self) -> Option<RolloutState> {
        match self {
            Transition::Done(r) => Some(r.state),
            _ => None,
        }
    }
}

/// `stats::rollouts` as one series of `(series, state)` → count, zeros left out.
async fn rollout_counts(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> std::collections::BTreeMap<(String, String), i64> {
    let rows = hotpatch_store::stats::rollouts(pool, now).await.unwrap();
    rows.into_iter().filter(|r| r.count > 0).map(|r| ((r.series, r.state), r.count)).collect()
}

#[tokio::test]
async fn metrics_count_rollouts_by_state_the_machines_of_unfinished_ones_and_those_past_their_deadline() {
    let db = fresh_db().await;
    let release_id = release(&db.pool).await;
    let ids = fleet(&db.pool, &[("eastus", None), ("eastus", None), ("westus", None)]).await;
    let w = |m: Uuid| (m, t0() + hours(1), t0() + hours(3));
    let kept = start(
        &db.pool,
        &plan(
            release_id,
            50,
            vec![B { wave: 1, region: "eastus", zone: None, machines: vec![w(ids[0]), w(ids[1])] }],
        ),
        false,
    )
    .await
    .unwrap();
    let canceled = start(
        &db.pool,
        &plan(release_id, 50, vec![B { wave: 1, region: "westus", zone: None, machines: vec![w(ids[2])] }]),
        false,
    )
    .await
    .unwrap();
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(matches!(rollouts::cancel(&mut conn, canceled.id, t0()).await.unwrap(), Transition::Done(_)));

    let key = |series: &str, state: &str| (series.to_owned(), state.to_owned());
    let within = rollout_counts(&db.pool, t0()).await;
    assert_eq!(
        within,
        [(key("rollout", "running"), 1), (key("rollout", "canceled"), 1), (key("machine", "pending"), 2)]
            .into_iter()
            .collect(),
        "the canceled rollout's machine is history; none is overdue yet"
    );
    let late = rollout_counts(&db.pool, kept.deadline + TimeDelta::seconds(1)).await;
    assert_eq!(late.get(&key("overdue", "")), Some(&1), "{late:?}");
}
