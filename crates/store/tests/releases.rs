//! Release catalog queries against a real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used, missing_docs)]

use chrono::{TimeZone, Utc};
use hotpatch_domain::{Classification, OsVersion, ReleaseKind, ReleaseSpec, UpdateSpec};
use hotpatch_store::releases::{self, PatchState, ReleaseFilter, UpdateFilter};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::StoreError;

fn spec(kind: ReleaseKind, planned: bool, month: &str, kb: &str) -> ReleaseSpec {
    ReleaseSpec {
        os: OsVersion::WindowsServer2022,
        kind,
        planned,
        month: month.parse().unwrap(),
        kb: kb.parse().unwrap(),
        build: "20348.2227".parse().unwrap(),
        released_at: Utc.with_ymd_and_hms(2025, 1, 14, 18, 0, 0).unwrap(),
    }
}

#[tokio::test]
async fn a_release_round_trips_and_lists_in_publication_order() {
    let db = fresh_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    let jan = releases::insert(&mut conn, &spec(ReleaseKind::Baseline, true, "2025-01", "KB5000001"), None)
        .await
        .unwrap();
    let feb = releases::insert(&mut conn, &spec(ReleaseKind::Hotpatch, true, "2025-02", "KB5000002"), None)
        .await
        .unwrap();
    assert_eq!(releases::get(&db.pool, jan.release.id).await.unwrap(), jan);
    let all = releases::list(&db.pool, &ReleaseFilter::default(), None, 10).await.unwrap();
    assert_eq!(all, [jan.clone(), feb.clone()]);
    let hotpatches = releases::list(
        &db.pool,
        &ReleaseFilter { kind: Some(ReleaseKind::Hotpatch), ..Default::default() },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(hotpatches, [feb]);
    let page2 = releases::list(&db.pool, &ReleaseFilter::default(), Some(jan.release.id), 10).await.unwrap();
    assert_eq!(page2.len(), 1);
}

#[tokio::test]
async fn the_database_refuses_a_second_active_release_in_a_month_and_a_taken_kb() {
    let db = fresh_db().await;
    let mut conn = db.pool.acquire().await.unwrap();
    releases::insert(&mut conn, &spec(ReleaseKind::Baseline, true, "2025-01", "KB5000001"), None)
        .await
        .unwrap();
    let month = releases::insert(&mut conn, &spec(ReleaseKind::Baseline, true, "2025-01", "KB5000002"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&month, StoreError::Conflict { constraint, .. } if constraint == "release_one_active_per_os_month"),
        "{month:?}"
    );
    let kb = releases::insert(&mut conn, &spec(ReleaseKind::Baseline, true, "2025-04", "KB5000001"), None)
        .await
        .unwrap_err();
    assert!(
        matches!(&kb, StoreError::Conflict { constraint, .. } if constraint == "release_kb_key"),
        "{kb:?}"
    );
}

#[tokio::test]
async fn an_unplanned_baseline_supersedes_the_hotpatch_in_one_transaction() {
    let db = fresh_db().await;
    let mut tx = db.pool.begin().await.unwrap();
    releases::lock_catalog(&mut tx, OsVersion::WindowsServer2022).await.unwrap();
    let hotpatch =
        releases::insert(&mut tx, &spec(ReleaseKind::Hotpatch, true, "2025-05", "KB5000005"), None)
            .await
            .unwrap();
    let unplanned = releases::insert(
        &mut tx,
        &spec(ReleaseKind::Baseline, false, "2025-05", "KB5000006"),
        Some(hotpatch.release.id),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    let old = releases::get(&db.pool, hotpatch.release.id).await.unwrap();
    assert_eq!(old.release.superseded_by, Some(unplanned.release.id));
    let catalog = releases::catalog_of(&db.pool, OsVersion::WindowsServer2022).await.unwrap();
    assert_eq!(catalog.iter().filter(|r| r.is_active()).count(), 1);
    assert_eq!(releases::catalog(&db.pool).await.unwrap().len(), 2);
}

#[tokio::test]
async fn updates_default_their_reboot_from_the_classification_and_filter_by_os() {
    let db = fresh_db().await;
    let update = |kb: &str, classification, os| UpdateSpec {
        kb: kb.parse().unwrap(),
        title: format!("{kb} title"),
        classification,
        os,
        requires_reboot: None,
        released_at: Utc.with_ymd_and_hms(2025, 1, 14, 18, 0, 0).unwrap(),
    };
    let dotnet = releases::insert_update(
        &db.pool,
        &update("KB5100001", Classification::Dotnet, Some(OsVersion::WindowsServer2022)),
    )
    .await
    .unwrap();
    assert_eq!(dotnet.spec.requires_reboot, Some(true));
    let defs = releases::insert_update(&db.pool, &update("KB5100002", Classification::Definition, None))
        .await
        .unwrap();
    assert_eq!(defs.spec.requires_reboot, Some(false));
    releases::insert_update(
        &db.pool,
        &update("KB5100003", Classification::Driver, Some(OsVersion::WindowsServer2025)),
    )
    .await
    .unwrap();
    let for_2022 = releases::list_updates(
        &db.pool,
        &UpdateFilter { os: Some(OsVersion::WindowsServer2022), ..Default::default() },
        None,
        10,
    )
    .await
    .unwrap();
    assert_eq!(for_2022.iter().map(|u| u.spec.kb.as_str()).collect::<Vec<_>>(), ["KB5100001", "KB5100002"]);
    let taken = releases::insert_update(&db.pool, &update("KB5100001", Classification::Dotnet, None)).await;
    assert!(matches!(taken, Err(StoreError::Conflict { .. })));
}

#[tokio::test]
async fn a_machine_without_a_report_has_the_default_patch_state() {
    let db = fresh_db().await;
    let s = releases::patch_state(&db.pool, uuid::Uuid::now_v7()).await.unwrap();
    assert_eq!(s, PatchState::default());
}

#[tokio::test]
async fn a_machines_patch_state_is_replaced_and_goes_with_the_machine() {
    use hotpatch_domain::{assess, HotpatchStatus, MachineSpec, RegionCapabilities};
    use hotpatch_store::machines::{self, MachineWrite};
    let db = fresh_db().await;
    let spec: MachineSpec = serde_json::from_value(serde_json::json!({
        "name": "web-1", "platform": "azure_vm", "os": "windows_server_2022",
        "image": {"publisher": "MicrosoftWindowsServer", "offer": "WindowsServer",
                  "sku": "2022-datacenter-azure-edition-hotpatch"},
        "region": "westeurope", "timezone": "UTC", "hotpatch_enabled": true
    }))
    .unwrap();
    let eligibility = assess(&spec, &RegionCapabilities::new(["uksouth"]));
    let mut conn = db.pool.acquire().await.unwrap();
    let m = machines::insert(
        &mut conn,
        &MachineWrite {
            spec: &spec,
            eligibility: &eligibility,
            hotpatch_status: HotpatchStatus::Enabled,
            enrollment: None,
        },
    )
    .await
    .unwrap();
    let jan = releases::insert(&mut conn, &spec_of(ReleaseKind::Baseline, "2025-01", "KB5000001"), None)
        .await
        .unwrap()
        .release
        .id;
    let state = PatchState {
        current_baseline: Some(jan),
        latest_installed: Some(jan),
        reboot_pending: true,
        updated_at: None,
    };
    let saved = releases::set_patch_state(&db.pool, m.id, &state).await.unwrap();
    assert_eq!((saved.current_baseline, saved.reboot_pending), (Some(jan), true));
    let rebooted = PatchState { reboot_pending: false, ..state };
    releases::set_patch_state(&db.pool, m.id, &rebooted).await.unwrap();
    let read = releases::patch_state(&db.pool, m.id).await.unwrap();
    assert_eq!((read.latest_installed, read.reboot_pending), (Some(jan), false));
    assert!(read.updated_at.is_some());
    machines::delete(&db.pool, m.id).await.unwrap();
    assert_eq!(releases::patch_state(&db.pool, m.id).await.unwrap(), PatchState::default());
}

fn spec_of(kind: ReleaseKind, month: &str, kb: &str) -> ReleaseSpec {
    spec(kind, true, month, kb)
}
