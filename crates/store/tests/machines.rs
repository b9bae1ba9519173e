//! Machine queries against a real PostgreSQL (a fresh database per test).
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeMap;

use hotpatch_domain::{
    assess, Eligibility, HotpatchStatus, Image, MachineSpec, OsVersion, Platform, RegionCapabilities,
};
use hotpatch_store::machines::{self, MachineFilter, MachineWrite};
use hotpatch_store::testing::fresh_db;
use hotpatch_store::StoreError;

fn spec(name: &str, region: &str) -> MachineSpec {
    MachineSpec {
        name: name.to_owned(),
        platform: Platform::AzureVm,
        os: OsVersion::WindowsServer2022,
        image: Some(Image {
            publisher: "MicrosoftWindowsServer".into(),
            offer: "WindowsServer".into(),
            sku: "2022-datacenter-azure-edition-core".into(),
            kind: Default::default(),
        }),
        edition: None,
        os_build: Some("20348.2700".parse().unwrap()),
        vbs_enabled: None,
        region: region.to_owned(),
        availability_zone: Some("2".into()),
        availability_set: Some("as-web".into()),
        update_domain: Some(3),
        fault_domain: Some(1),
        scale_set: None,
        timezone: "Asia/Kathmandu".parse().unwrap(),
        hotpatch_enabled: true,
        patch_orchestration: Default::default(),
        labels: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
    }
}

fn writes<'a>(specs: &'a [MachineSpec], eligibility: &'a [Eligibility]) -> Vec<MachineWrite<'a>> {
    specs
        .iter()
        .zip(eligibility)
        .map(|(s, e)| MachineWrite {
            spec: s,
            eligibility: e,
            hotpatch_status: HotpatchStatus::Enabled,
            enrollment: None,
        })
        .collect()
}

#[tokio::test]
async fn insert_many_returns_machines_in_input_order_and_they_read_back_identically() {
    let db = fresh_db().await;
    let caps = RegionCapabilities::default();
    let specs: Vec<MachineSpec> = (0..50).rev().map(|i| spec(&format!("m-{i:02}"), "westeurope")).collect();
    let eligibilities: Vec<_> = specs.iter().map(|s| assess(s, &caps)).collect();
    let writes = writes(&specs, &eligibilities);
    let mut conn = db.pool.acquire().await.unwrap();
    let inserted = machines::insert_many(&mut conn, &writes).await.unwrap();
    let names: Vec<&str> = inserted.iter().map(|m| m.spec.name.as_str()).collect();
    let expected: Vec<String> = (0..50).rev().map(|i| format!("m-{i:02}")).collect();
    assert_eq!(names, expected);
    for m in &inserted {
        assert_eq!(&machines::get(&db.pool, m.id).await.unwrap(), m);
    }
    assert_eq!(inserted[0].spec, specs[0], "every field survives the round trip");
}

#[tokio::test]
async fn a_taken_name_is_a_conflict_naming_the_constraint() {
    let db = fresh_db().await;
    let s = spec("dup", "westeurope");
    let e = assess(&s, &RegionCapabilities::default());
    let w = MachineWrite {
        spec: &s,
        eligibility: &e,
        hotpatch_status: HotpatchStatus::Enabled,
        enrollment: None,
    };
    let mut conn = db.pool.acquire().await.unwrap();
    machines::insert(&mut conn, &w).await.unwrap();
    match machines::insert(&mut conn, &w).await {
        Err(StoreError::Conflict { constraint, detail }) => {
            assert_eq!(constraint, "machine_name_key");
            assert!(detail.contains("dup"), "{detail}");
        }
        other => panic!("expected a conflict, got {other:?}"),
    }
}

#[tokio::test]
async fn list_filters_combine_and_page_in_id_order() {
    let db = fresh_db().await;
    let caps = RegionCapabilities::default();
    let specs: Vec<MachineSpec> =
        (0..6).map(|i| spec(&format!("m-{i}"), if i % 2 == 0 { "uksouth" } else { "eastus" })).collect();
    let e: Vec<_> = specs.iter().map(|s| assess(s, &caps)).collect();
    let writes = writes(&specs, &e);
    let mut conn = db.pool.acquire().await.unwrap();
    machines::insert_many(&mut conn, &writes).await.unwrap();

    let filter = MachineFilter { region: Some("uksouth".into()), ..Default::default() };
    let first = machines::list(&db.pool, &filter, None, 2).await.unwrap();
    let rest = machines::list(&db.pool, &filter, Some(first[1].id), 10).await.unwrap();
    let names: Vec<&str> = first.iter().chain(&rest).map(|m| m.spec.name.as_str()).collect();
    assert_eq!(names, ["m-0", "m-2", "m-4"]);

    let mut labels = BTreeMap::new();
    labels.insert("env".to_owned(), "staging".to_owned());
    let none =
        machines::list(&db.pool, &MachineFilter { labels, ..Default::default() }, None, 10).await.unwrap();
    assert!(none.is_empty());
}
