//! The simulated machine's behaviour: what each job does to its state.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotpatch_agent::executor::Executor;
use hotpatch_agent::sim::{SimConfig, SimulatedMachine, INSTALLED_BY};
use hotpatch_domain::job::{ClaimedJob, HealthStatus, JobKind, Lease, Outcome};
use hotpatch_domain::{Kb, OsBuild, OsVersion};
use serde_json::{json, Value};
use uuid::Uuid;

fn at() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).unwrap()
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        os: OsVersion::WindowsServer2022,
        seed,
        job_duration: Duration::ZERO,
        reboot_duration: Duration::ZERO,
        fail_rate: 0.0,
        unhealthy_rate: 0.0,
        clock: Arc::new(at),
    }
}

fn machine() -> SimulatedMachine {
    SimulatedMachine::new(config(7))
}

fn job(kind: JobKind, payload: Value) -> ClaimedJob {
    ClaimedJob {
        id: Uuid::new_v4(),
        kind,
        machine_id: Uuid::new_v4(),
        attempt: 1,
        payload,
        lease: Lease { id: Uuid::new_v4(), expires_at: at() },
    }
}

fn first_recommended(m: &SimulatedMachine) -> Kb {
    m.available().iter().find(|u| u.is_recommended()).unwrap().kb.clone()
}

#[test]
fn a_hotpatch_install_does_not_reboot() {
    let mut m = machine();
    let (boots, booted_at) = (m.boot_count(), m.booted_at());
    let kb = first_recommended(&m);
    let out = m.apply(&job(JobKind::Install, json!({"kbs": [kb.as_str()], "requires_reboot": false})));
    assert_eq!(out.outcome, Outcome::Succeeded);
    assert_eq!(out.installed, vec![kb.clone()]);
    assert!(!out.rebooted && !out.reboot_pending);
    assert_eq!((m.boot_count(), m.booted_at()), (boots, booted_at));
    let installed = m.installed().last().unwrap();
    assert_eq!((&installed.kb, installed.installed_by.as_deref()), (&kb, Some(INSTALLED_BY)));
    assert!(!m.available().iter().any(|u| u.kb == kb));
}

#[test]
fn a_baseline_install_reboots_once_and_takes_the_new_build() {
    let mut m = machine();
    let boots = m.boot_count();
    let payload = json!({"kbs": ["KB5040437"], "reboot": "if_required", "requires_reboot": true, "build": "20348.2582"});
    let out = m.apply(&job(JobKind::Install, payload));
    assert!(out.rebooted && !out.reboot_pending);
    assert_eq!(m.boot_count(), boots + 1);
    assert_eq!(m.booted_at(), at());
    assert_eq!(m.os_build(), OsBuild { build: 20348, revision: 2582 });
}

#[test]
fn a_baseline_with_reboot_never_leaves_a_reboot_pending_until_a_reboot_job() {
    let mut m = machine();
    let (boots, build) = (m.boot_count(), m.os_build());
    let payload =
        json!({"kbs": ["KB5040437"], "reboot": "never", "requires_reboot": true, "build": "20348.2582"});
    let out = m.apply(&job(JobKind::Install, payload));
    assert!(!out.rebooted && out.reboot_pending && m.reboot_pending());
    assert_eq!((m.boot_count(), m.os_build()), (boots, build));

    let out = m.apply(&job(JobKind::Reboot, Value::Null));
    assert!(out.rebooted && !out.reboot_pending && !m.reboot_pending());
    assert_eq!(m.boot_count(), boots + 1);
    assert_eq!(m.os_build(), OsBuild { build: 20348, revision: 2582 });
}

#[test]
fn an_install_with_no_payload_installs_the_recommended_updates_only() {
    let mut m = machine();
    let recommended: Vec<Kb> =
        m.available().iter().filter(|u| u.is_recommended()).map(|u| u.kb.clone()).collect();
    let out = m.apply(&job(JobKind::Install, Value::Null));
    assert_eq!(out.installed, recommended);
    assert!(!out.rebooted, "hotpatch-class updates need no reboot");
    assert!(m.available().iter().all(|u| !u.is_recommended()));
}

#[test]
fn a_malformed_install_payload_fails_the_job_and_changes_nothing() {
    let mut m = machine();
    let before = m.snapshot();
    let out = m.apply(&job(JobKind::Install, json!({"kbs": ["not-a-kb"]})));
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(out.error.unwrap().contains("invalid payload"));
    assert_eq!(m.snapshot(), before);
}

#[test]
fn a_fail_rate_of_one_always_fails_and_of_zero_never_does() {
    let mut always = SimulatedMachine::new(SimConfig { fail_rate: 1.0, ..config(1) });
    let mut never = SimulatedMachine::new(SimConfig { fail_rate: 0.0, ..config(1) });
    for kind in [JobKind::Assess, JobKind::Install, JobKind::Reboot, JobKind::Assess] {
        let failed = always.apply(&job(kind, Value::Null));
        assert_eq!(failed.outcome, Outcome::Failed);
        assert!(failed.error.is_some_and(|e| !e.is_empty()));
        assert_eq!(never.apply(&job(kind, Value::Null)).outcome, Outcome::Succeeded);
    }
}

#[test]
fn an_unhealthy_rate_of_one_makes_the_machine_unhealthy_after_an_install_until_rolled_back() {
    let mut m = SimulatedMachine::new(SimConfig { unhealthy_rate: 1.0, ..config(3) });
    assert!(m.is_healthy());
    m.apply(&job(JobKind::Assess, Value::Null));
    assert!(m.is_healthy(), "only installs can break the workload");
    m.apply(&job(JobKind::Install, Value::Null));
    assert_eq!(m.health_now().status, HealthStatus::Unhealthy);
    m.apply(&job(JobKind::Rollback, Value::Null));
    assert_eq!(m.health_now().status, HealthStatus::Healthy);
}

#[test]
fn a_rollback_removes_the_latest_installed_update_and_reboots() {
    let mut m = machine();
    let kb = first_recommended(&m);
    m.apply(&job(JobKind::Install, json!({"kbs": [kb.as_str()]})));
    let count = m.installed().len();
    let boots = m.boot_count();
    let out = m.apply(&job(JobKind::Rollback, json!({"build": "20348.2113"})));
    assert!(out.rebooted && out.outcome == Outcome::Succeeded);
    assert_eq!(m.installed().len(), count - 1);
    assert!(!m.installed().iter().any(|u| u.kb == kb));
    assert!(m.available().iter().any(|u| u.kb == kb), "the removed update is offered again");
    assert_eq!(m.boot_count(), boots + 1);
    assert_eq!(m.os_build(), OsBuild { build: 20348, revision: 2113 });
}

#[test]
fn the_inventory_lists_installed_and_available_updates_with_valid_kbs() {
    let mut m = machine();
    let inv = m.apply(&job(JobKind::Assess, json!({}))).inventory.unwrap();
    assert!(inv.installed_updates.len() >= 3);
    assert!(inv.available_updates.iter().filter(|u| u.is_recommended()).count() >= 2);
    assert!(inv.available_updates.iter().filter(|u| !u.is_recommended()).count() >= 2);
    let kbs = inv.installed_updates.iter().map(|u| &u.kb).chain(inv.available_updates.iter().map(|u| &u.kb));
    for kb in kbs {
        let digits = kb.as_str().strip_prefix("KB").unwrap();
        assert!(digits.len() == 7 && digits.bytes().all(|c| c.is_ascii_digit()), "{kb}");
    }
    assert_eq!(inv.os_build.build, 20348);
    assert!(inv.installed_updates.iter().all(|u| u.installed_on < at().date_naive()));
    // The wire form parses back as the server reads it.
    let wire = serde_json::to_value(&inv).unwrap();
    assert_eq!(serde_json::from_value::<hotpatch_domain::job::Inventory>(wire).unwrap(), inv);
}

#[test]
fn the_same_seed_gives_the_same_machine_and_the_same_failures() {
    let run = |seed| {
        let mut m = SimulatedMachine::new(SimConfig { fail_rate: 0.5, ..config(seed) });
        let outcomes: Vec<Outcome> =
            (0..20).map(|_| m.apply(&job(JobKind::Assess, Value::Null)).outcome).collect();
        (m.snapshot(), outcomes)
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42).0, run(43).0);
    let ws2025 = SimulatedMachine::new(SimConfig { os: OsVersion::WindowsServer2025, ..config(42) });
    assert!(ws2025.os_build() >= OsBuild { build: 26100, revision: 1742 });
}

#[tokio::test]
async fn running_an_assessment_through_the_executor_returns_the_inventory() {
    let mut m = machine();
    let out = m.run(&job(JobKind::Assess, Value::Null)).await;
    assert_eq!(out.inventory, Some(m.inventory().await.unwrap()));
    assert_eq!(m.health().await.status, HealthStatus::Healthy);
}
