//! What agents report, against a real PostgreSQL (a fresh database per test): inventory with the
//! installed state and recommended-update flag decided for it, liveness, health, and the periodic
//! assessment schedule.
#![allow(clippy::unwrap_used, missing_docs)]

mod support;

use std::collections::HashSet;

use chrono::{NaiveDate, TimeDelta, TimeZone, Utc};
use hotpatch_domain::job::{AvailableUpdate, Health, HealthCheck, HealthStatus, InstalledUpdate, Inventory};
use hotpatch_domain::{Classification, InstalledReleases, OsVersion, Platform, ReleaseKind, ReleaseSpec};
use hotpatch_store::agents::{self, InventoryWrite, StoredInventory};
use hotpatch_store::releases::{self, PatchState};
use hotpatch_store::status::{self, GroupBy};
use hotpatch_store::testing::fresh_db;
use support::{machine, machines, secs, t0};
use uuid::Uuid;

fn release(os: OsVersion, kind: ReleaseKind, month: &str, kb: &str) -> ReleaseSpec {
    ReleaseSpec {
        os,
        kind,
        planned: true,
        month: month.parse().unwrap(),
        kb: kb.parse().unwrap(),
        build: "20348.2700".parse().unwrap(),
        released_at: Utc.with_ymd_and_hms(2025, 1, 14, 18, 0, 0).unwrap(),
    }
}

fn inventory(installed: &[&str], reboot_pending: bool) -> Inventory {
    Inventory {
        os_build: "20348.2700".parse().unwrap(),
        reboot_pending,
        installed_updates: installed
            .iter()
            .map(|kb| InstalledUpdate {
                kb: kb.parse().unwrap(),
                title: Some(format!("{kb} title")),
                classification: Some(Classification::Security),
                installed_on: NaiveDate::from_ymd_opt(2025, 5, 14).unwrap(),
                installed_by: Some("hotpatch".into()),
            })
            .collect(),
        available_updates: vec![AvailableUpdate {
            kb: "KB5100001".parse().unwrap(),
            title: ".NET cumulative update".into(),
            classification: Classification::Dotnet,
            requires_reboot: true,
        }],
    }
}

/// `inventory` as recorded with the installed state the service decided, and no recommended update.
fn write(
    inventory: &Inventory,
    current_baseline: Option<Uuid>,
    latest_installed: Option<Uuid>,
) -> InventoryWrite<'_> {
    InventoryWrite {
        inventory,
        installed: InstalledReleases { current_baseline, latest_installed },
        recommended_pending: false,
    }
}

#[tokio::test]
async fn an_inventory_is_stored_with_the_installed_state_decided_for_it_and_nothing_decided_keeps_it() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let ws2022 = OsVersion::WindowsServer2022;
    let mut publish =
        async |spec: ReleaseSpec| releases::insert(&mut conn, &spec, None).await.unwrap().release.id;
    let jan = Some(publish(release(ws2022, ReleaseKind::Baseline, "2025-01", "KB5000001")).await);
    let feb = Some(publish(release(ws2022, ReleaseKind::Hotpatch, "2025-02", "KB5000002")).await);
    let mar = Some(publish(release(ws2022, ReleaseKind::Hotpatch, "2025-03", "KB5000003")).await);

    let first = inventory(&["KB5000001", "KB5000002", "KB5999999"], true);
    agents::record_inventory(&mut conn, m, &write(&first, jan, feb), t0(), t0() + TimeDelta::days(1))
        .await
        .unwrap();
    let stored = agents::inventory(&mut *conn, m).await.unwrap().unwrap();
    let expected = StoredInventory {
        os_build: Some("20348.2700".into()),
        reboot_pending: true,
        installed_updates: first.installed_updates.clone(),
        available_updates: first.available_updates.clone(),
        assessed_at: t0(),
    };
    assert_eq!(stored, expected);
    let state = releases::patch_state(&mut *conn, m).await.unwrap();
    assert_eq!((state.current_baseline, state.latest_installed, state.reboot_pending), (jan, feb, true));
    let agent = agents::get(&mut *conn, m).await.unwrap().unwrap();
    assert_eq!((agent.last_seen_at, agent.next_assessment_at), (Some(t0()), t0() + TimeDelta::days(1)));

    // Nothing decided: the installed state stays, the reboot flag follows.
    let unknown = inventory(&["KB5999999", "KB5888888"], false);
    let next_day = t0() + TimeDelta::days(1);
    agents::record_inventory(
        &mut conn,
        m,
        &write(&unknown, None, None),
        next_day,
        next_day + TimeDelta::days(1),
    )
    .await
    .unwrap();
    let state = releases::patch_state(&mut *conn, m).await.unwrap();
    assert_eq!((state.current_baseline, state.latest_installed, state.reboot_pending), (jan, feb, false));
    let stored = agents::inventory(&mut *conn, m).await.unwrap().unwrap();
    assert_eq!((stored.installed_updates, stored.assessed_at), (unknown.installed_updates, next_day));
    let agent = agents::get(&mut *conn, m).await.unwrap().unwrap();
    assert_eq!(agent.next_assessment_at, next_day + TimeDelta::days(1));

    // One decided, one not: each on its own.
    let later = inventory(&["KB5000003"], false);
    let at = next_day + secs(60);
    agents::record_inventory(&mut conn, m, &write(&later, None, mar), at, next_day + TimeDelta::days(1))
        .await
        .unwrap();
    let state = releases::patch_state(&mut *conn, m).await.unwrap();
    assert_eq!(
        state,
        PatchState { current_baseline: jan, latest_installed: mar, reboot_pending: false, ..state }
    );
}

#[tokio::test]
async fn a_machines_catalog_is_the_releases_of_its_os_and_none_for_no_machine() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let mut publish = async |os, month, kb| {
        releases::insert(&mut conn, &release(os, ReleaseKind::Baseline, month, kb), None)
            .await
            .unwrap()
            .release
            .id
    };
    let feb = publish(OsVersion::WindowsServer2022, "2025-02", "KB5000002").await;
    publish(OsVersion::WindowsServer2025, "2025-01", "KB5000004").await;
    let jan = publish(OsVersion::WindowsServer2022, "2025-01", "KB5000001").await;
    let catalog = releases::catalog_of_machine(&mut *conn, m).await.unwrap();
    assert_eq!(catalog.iter().map(|r| r.id).collect::<Vec<_>>(), [jan, feb], "its OS only, oldest first");
    assert!(releases::catalog_of_machine(&mut *conn, Uuid::now_v7()).await.unwrap().is_empty());
}

#[tokio::test]
async fn the_fleet_reads_the_recommended_update_pending_as_recorded_with_the_inventory() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 3).await;
    let mut conn = db.pool.acquire().await.unwrap();
    let report = inventory(&[], false);
    for (m, recommended_pending) in [(ids[0], true), (ids[1], false)] {
        let write = InventoryWrite { recommended_pending, ..write(&report, None, None) };
        agents::record_inventory(&mut conn, m, &write, t0(), t0() + TimeDelta::days(1)).await.unwrap();
    }
    let mut classes: Vec<_> = status::fleet_classes(&mut conn, &GroupBy::Nothing)
        .await
        .unwrap()
        .into_iter()
        .map(|c| (c.assessed, c.recommended_pending, c.machines, c.os, c.platform, c.enrollment))
        .collect();
    classes.sort_by_key(|c| (c.0, c.1));
    let (os, platform) = (OsVersion::WindowsServer2022, Platform::AzureVm);
    assert_eq!(
        classes,
        [
            (false, false, 1, os, platform, None),
            (true, false, 1, os, platform, None),
            (true, true, 1, os, platform, None)
        ],
        "never assessed, assessed without and with a recommended update"
    );
}

#[tokio::test]
async fn seen_marks_are_written_as_a_batch_and_never_move_last_seen_back() {
    let db = fresh_db().await;
    let (a, b) = (machine(&db.pool).await, machine(&db.pool).await);
    let schedule = t0() + TimeDelta::hours(6);
    for m in [a, b] {
        agents::ensure(&db.pool, m, schedule).await.unwrap();
    }
    let seen = async |m| agents::get(&db.pool, m).await.unwrap().unwrap().last_seen_at;
    let skipped = agents::mark_seen(&db.pool, &[(a, t0() + secs(30)), (b, t0())]).await.unwrap();
    assert_eq!(skipped, Vec::<Uuid>::new());
    assert_eq!((seen(a).await, seen(b).await), (Some(t0() + secs(30)), Some(t0())));
    agents::mark_seen(&db.pool, &[(a, t0()), (b, t0() + secs(5))]).await.unwrap();
    assert_eq!(seen(a).await, Some(t0() + secs(30)), "an older mark (another replica's, late) loses");
    assert_eq!(seen(b).await, Some(t0() + secs(5)));
    let agent = agents::get(&db.pool, a).await.unwrap().unwrap();
    assert_eq!(agent.next_assessment_at, schedule, "being seen leaves the schedule alone");
    let unknown = Uuid::now_v7();
    assert_eq!(
        agents::mark_seen(&db.pool, &[(unknown, t0())]).await.unwrap(),
        Vec::<Uuid>::new(),
        "a machine without an agent (deleted since) is dropped, not kept for later"
    );
}

#[tokio::test]
async fn a_seen_mark_on_a_row_another_transaction_holds_is_skipped_and_returned() {
    let db = fresh_db().await;
    let (a, b) = (machine(&db.pool).await, machine(&db.pool).await);
    for m in [a, b] {
        agents::ensure(&db.pool, m, t0()).await.unwrap();
    }
    let mut holder = db.pool.begin().await.unwrap();
    sqlx::query("select 1 from machine_agent where machine_id = $1 for update")
        .bind(a)
        .execute(&mut *holder)
        .await
        .unwrap();
    let skipped = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        agents::mark_seen(&db.pool, &[(a, t0()), (b, t0())]),
    )
    .await
    .expect("the mark does not wait for the lock")
    .unwrap();
    assert_eq!(skipped, vec![a]);
    holder.rollback().await.unwrap();
    let seen = async |m| agents::get(&db.pool, m).await.unwrap().unwrap().last_seen_at;
    assert_eq!((seen(a).await, seen(b).await), (None, Some(t0())));
}

#[tokio::test]
async fn a_health_report_round_trips() {
    let db = fresh_db().await;
    let m = machine(&db.pool).await;
    assert_eq!(agents::get(&db.pool, m).await.unwrap(), None, "no agent yet");
    let schedule = t0() + TimeDelta::hours(6);
    agents::ensure(&db.pool, m, schedule).await.unwrap();
    agents::ensure(&db.pool, m, schedule + TimeDelta::days(3)).await.unwrap();
    let health = Health {
        status: HealthStatus::Unhealthy,
        checks: vec![
            HealthCheck { name: "w3svc".into(), status: HealthStatus::Unhealthy, detail: Some("503".into()) },
            HealthCheck { name: "disk".into(), status: HealthStatus::Healthy, detail: None },
        ],
    };
    agents::record_health(&db.pool, m, &health, t0() + secs(5)).await.unwrap();
    let agent = agents::get(&db.pool, m).await.unwrap().unwrap();
    assert_eq!(agent.health, Some(health));
    assert_eq!((agent.health_reported_at, agent.last_seen_at), (Some(t0() + secs(5)), Some(t0() + secs(5))));
    assert_eq!(agent.next_assessment_at, schedule, "ensure keeps the first schedule, health leaves it");

    let healthy = Health { status: HealthStatus::Healthy, checks: vec![] };
    agents::record_health(&db.pool, m, &healthy, t0() + secs(10)).await.unwrap();
    assert_eq!(agents::get(&db.pool, m).await.unwrap().unwrap().health, Some(healthy));
}

#[tokio::test]
async fn due_assessments_are_taken_once_and_rescheduled() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 3).await;
    let [overdue, due, later] = ids[..] else { panic!("three machines") };
    for (m, at) in [(due, t0()), (overdue, t0() - secs(60)), (later, t0() + secs(3600))] {
        agents::ensure(&db.pool, m, at).await.unwrap();
    }
    let mut conn = db.pool.acquire().await.unwrap();
    let day = TimeDelta::days(1);
    let mut taken = agents::take_due_assessments(&mut *conn, t0(), day, 10).await.unwrap();
    taken.sort();
    let mut want = vec![overdue, due];
    want.sort();
    assert_eq!(taken, want);
    assert!(agents::take_due_assessments(&mut *conn, t0(), day, 10).await.unwrap().is_empty());
    for m in [overdue, due] {
        let next = agents::get(&mut *conn, m).await.unwrap().unwrap().next_assessment_at;
        let jitter = TimeDelta::hours(3);
        assert!(next >= t0() + day - jitter && next <= t0() + day + jitter, "a day ± 10% later: {next}");
    }
    let taken = agents::take_due_assessments(&mut *conn, t0() + secs(3600), day, 1).await.unwrap();
    assert_eq!(taken, [later]);
}

async fn due_fleet(pool: &sqlx::PgPool, n: usize) -> Vec<Uuid> {
    let ids = machines(pool, n).await;
    for (i, m) in ids.iter().enumerate() {
        agents::ensure(pool, *m, t0() - secs(i as i64)).await.unwrap();
    }
    ids
}

#[tokio::test]
async fn two_replicas_in_their_own_transactions_never_take_the_same_machine() {
    let db = fresh_db().await;
    let ids = due_fleet(&db.pool, 10).await;
    let day = TimeDelta::days(1);
    let mut one = db.pool.begin().await.unwrap();
    let mut two = db.pool.begin().await.unwrap();
    let a = agents::take_due_assessments(&mut *one, t0(), day, 6).await.unwrap();
    let b = agents::take_due_assessments(&mut *two, t0(), day, 6).await.unwrap();
    one.commit().await.unwrap();
    two.commit().await.unwrap();
    assert_eq!((a.len(), b.len()), (6, 4), "the second skips what the first holds");
    let (a, b): (HashSet<Uuid>, HashSet<Uuid>) = (a.into_iter().collect(), b.into_iter().collect());
    assert!(a.is_disjoint(&b), "taken twice: {:?}", a.intersection(&b).collect::<Vec<_>>());
    assert_eq!(a.union(&b).copied().collect::<HashSet<_>>(), ids.into_iter().collect());
    let mut conn = db.pool.acquire().await.unwrap();
    assert!(agents::take_due_assessments(&mut *conn, t0(), day, 100).await.unwrap().is_empty());
}

/// `machine_class` (migration 0021) against the join it stands for, row by row.
async fn assert_classes_match_the_join(pool: &hotpatch_store::PgPool, step: &str) {
    type Row = (
        Uuid,
        String,
        String,
        bool,
        bool,
        Option<String>,
        serde_json::Value,
        Option<Uuid>,
        Option<Uuid>,
        bool,
        bool,
        bool,
    );
    let kept: Vec<Row> = sqlx::query_as(
        "select machine_id, region, os, hotpatch_enabled, eligible, enrollment, labels, current_baseline_id,
                latest_installed_id, reboot_pending, assessed, recommended_pending
         from machine_class order by machine_id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let joined: Vec<Row> = sqlx::query_as(
        "select m.id, m.region, m.os, m.hotpatch_enabled, m.eligible, m.enrollment, m.labels,
                ps.current_baseline_id, ps.latest_installed_id, coalesce(ps.reboot_pending, false),
                inv.machine_id is not null, coalesce(inv.recommended_pending, false)
         from machine m
         left join machine_patch_state ps on ps.machine_id = m.id
         left join machine_inventory inv on inv.machine_id = m.id
         order by m.id",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert_eq!(kept, joined, "after {step}");
}

#[tokio::test]
async fn the_summary_s_machine_class_rows_follow_every_write_of_what_they_copy() {
    let db = fresh_db().await;
    let ids = machines(&db.pool, 3).await;
    assert_classes_match_the_join(&db.pool, "an import").await;
    let mut conn = db.pool.acquire().await.unwrap();
    let baseline = releases::insert(
        &mut conn,
        &release(OsVersion::WindowsServer2022, ReleaseKind::Baseline, "2025-01", "KB5000001"),
        None,
    )
    .await
    .unwrap()
    .release
    .id;
    let report = inventory(&[], true);
    let recorded = InventoryWrite { recommended_pending: true, ..write(&report, Some(baseline), None) };
    agents::record_inventory(&mut conn, ids[0], &recorded, t0(), t0() + TimeDelta::days(1)).await.unwrap();
    assert_classes_match_the_join(&db.pool, "an assessment").await;
    let state = PatchState {
        current_baseline: Some(baseline),
        latest_installed: Some(baseline),
        reboot_pending: false,
        updated_at: None,
    };
    releases::set_patch_state(&mut *conn, ids[1], &state).await.unwrap();
    let state = PatchState { reboot_pending: true, ..state };
    releases::set_patch_state(&mut *conn, ids[1], &state).await.unwrap();
    assert_classes_match_the_join(&db.pool, "installed states recorded and changed").await;
    sqlx::query("update machine set region = 'northeurope', labels = '{\"env\": \"dev\"}', hotpatch_enabled = not hotpatch_enabled")
        .execute(&db.pool)
        .await
        .unwrap();
    assert_classes_match_the_join(&db.pool, "machines changed").await;
    sqlx::query("delete from machine_inventory").execute(&db.pool).await.unwrap();
    sqlx::query("delete from machine_patch_state").execute(&db.pool).await.unwrap();
    assert_classes_match_the_join(&db.pool, "assessments and installed states deleted").await;
    sqlx::query("delete from machine where id = $1").bind(ids[2]).execute(&db.pool).await.unwrap();
    assert_classes_match_the_join(&db.pool, "a machine deleted").await;
}
