//! The simulator against a recording stand-in server: it adopts labelled machines, imports the
//! missing ones as eligible specs, mints one token per machine and runs one agent per token.
#![allow(clippy::unwrap_used, missing_docs)]

mod mock;

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use hotpatch_agent::fleet::{machine_spec, LABEL};
use hotpatch_agent::{Fleet, FleetConfig};
use hotpatch_domain::{assess, MachineSpec, OsVersion, RegionCapabilities};
use mock::Mock;
use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

#[tokio::test]
async fn the_simulator_adopts_labelled_machines_imports_the_rest_and_runs_an_agent_for_each() {
    let mock = Arc::new(Mock::default());
    *mock.existing.lock().unwrap() = vec![
        json!({"id": Uuid::new_v4(), "name": "load-00000", "os": "windows_server_2022", "labels": {"sim": "load"}}),
        json!({"id": Uuid::new_v4(), "name": "load-00001", "os": "windows_server_2025", "labels": {"sim": "load"}}),
    ];
    let base = mock::serve(mock.clone()).await;
    let mut config = FleetConfig::new(&base, "operator-token", 5);
    config.prefix = "load".to_owned();
    config.regions = vec!["uksouth".to_owned(), "westeurope".to_owned()];
    config.stagger = Duration::from_millis(100);
    config.agent.wait = Duration::from_secs(1);
    let cancel = CancellationToken::new();
    let fleet = Fleet::start(config, cancel.clone()).await.unwrap();
    assert_eq!(fleet.len(), 5);

    let list = mock.calls().into_iter().find(|c| c.what == "list").unwrap();
    assert!(list.body.as_array().unwrap().contains(&json!(["label", "sim:load"])), "{}", list.body);
    let imports: Vec<_> = mock.calls().into_iter().filter(|c| c.what == "import").collect();
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0].token, "operator-token");
    let specs: Vec<MachineSpec> = serde_json::from_value(imports[0].body.clone()).unwrap();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["load-00002", "load-00003", "load-00004"]);
    let recorded = mock.calls().into_iter().filter(|c| c.what == "recorded").count();
    assert_eq!(recorded, 2, "only adopted machines take up their recorded state");
    assert!(specs.iter().all(|s| s.labels.get(LABEL).map(String::as_str) == Some("load")));

    for _ in 0..100 {
        let claimants: HashSet<String> =
            mock.calls().into_iter().filter(|c| c.what == "claim").map(|c| c.token).collect();
        if claimants.len() == 5 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claimants: HashSet<String> =
        mock.calls().into_iter().filter(|c| c.what == "claim").map(|c| c.token).collect();
    assert_eq!(claimants.len(), 5, "one agent per machine, each with its own token");
    assert!(claimants.iter().all(|t| t.starts_with("agent-")));
    assert_eq!(fleet.stats().progress().machines, 5);

    cancel.cancel();
    let errors = tokio::time::timeout(Duration::from_secs(3), fleet.wait()).await.unwrap();
    assert_eq!(errors, 0);
}

#[test]
fn simulated_machines_are_eligible_and_spread_over_regions_zones_time_zones_and_oses() {
    let regions: Vec<String> = ["uksouth", "eastasia", "westeurope"].map(String::from).to_vec();
    let ws2025: BTreeSet<String> = ["uksouth", "eastasia"].map(String::from).into();
    let caps = RegionCapabilities { ws2025_azure_edition: ws2025.clone() };
    let specs: Vec<MachineSpec> = (0..60).map(|i| machine_spec("sim", i, &regions, &ws2025)).collect();
    for s in &specs {
        let verdict = assess(s, &caps);
        assert!(verdict.eligible, "{}: {:?}", s.name, verdict.reasons);
    }
    assert_eq!(specs[7].name, "sim-00007");
    let combos: HashSet<(&str, Option<&str>)> =
        specs.iter().map(|s| (s.region.as_str(), s.availability_zone.as_deref())).collect();
    assert_eq!(combos.len(), 12, "every region gets zones 1 to 3, and machines without one");
    for s in &specs {
        assert_eq!(
            s.availability_zone.is_none(),
            s.availability_set.is_some(),
            "{}: a zone or a set",
            s.name
        );
        assert_eq!(s.availability_set.is_some(), s.update_domain.is_some(), "{}", s.name);
    }
    let sets: HashSet<(&str, i32)> =
        specs.iter().filter_map(|s| Some((s.availability_set.as_deref()?, s.update_domain?))).collect();
    assert_eq!(sets.len(), 3 * 5, "one set per region, over five update domains");
    let oses: HashSet<(&str, OsVersion)> = specs.iter().map(|s| (s.region.as_str(), s.os)).collect();
    assert!(oses.contains(&("uksouth", OsVersion::WindowsServer2025)));
    assert!(oses.contains(&("uksouth", OsVersion::WindowsServer2022)));
    assert!(!oses.contains(&("westeurope", OsVersion::WindowsServer2025)));
    let zones: HashSet<&str> = specs.iter().map(|s| s.timezone.name()).collect();
    assert!(zones.len() >= 5);
}
