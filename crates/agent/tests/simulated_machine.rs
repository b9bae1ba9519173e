//! The simulated machine's behaviour: what each job does to its state.
#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use hotpatch_agent::executor::Executor;
use hotpatch_agent::sim::{SimConfig, SimulatedMachine, INSTALLED_BY};
use hotpatch_domain::job::{AvailableUpdate, ClaimedJob, HealthStatus, JobKind, Lease, Outcome};
use hotpatch_domain::payload::{InstallPayload, PlanRelease, RebootSetting, RollbackPayload, RollbackStep};
use hotpatch_domain::{Classification, Kb, OsBuild, OsVersion, Release, ReleaseKind, ReleaseSpec};
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

// ---------------------------------------------------------------------------------------------
// The shared install and rollback payloads (hotpatch_domain::payload).
// ---------------------------------------------------------------------------------------------

fn install_job(p: &InstallPayload) -> ClaimedJob {
    job(JobKind::Install, serde_json::to_value(p).unwrap())
}

fn kbs_of(m: &SimulatedMachine, keep: impl Fn(&AvailableUpdate) -> bool) -> Vec<Kb> {
    m.available().iter().filter(|u| keep(u)).map(|u| u.kb.clone()).collect()
}

#[test]
fn kb_include_installs_an_update_of_another_classification_as_well() {
    let mut m = machine();
    let extra = kbs_of(&m, |u| !u.is_recommended() && !u.requires_reboot);
    let extra = extra.first().cloned().unwrap_or_else(|| kbs_of(&m, |u| !u.is_recommended())[0].clone());
    let mut want = kbs_of(&m, AvailableUpdate::is_recommended);
    want.push(extra.clone());
    let out = m.apply(&install_job(&InstallPayload {
        kb_include: vec![extra.clone()],
        ..InstallPayload::default()
    }));
    assert_eq!(out.outcome, Outcome::Succeeded);
    let mut installed = out.installed.clone();
    installed.sort();
    want.sort();
    assert_eq!(installed, want);
    assert!(m.installed().iter().any(|u| u.kb == extra));
}

#[test]
fn no_classifications_and_kb_include_installs_only_those_kbs() {
    let mut m = machine();
    let one = kbs_of(&m, AvailableUpdate::is_recommended)[0].clone();
    let p = InstallPayload {
        classifications: Some(vec![]),
        kb_include: vec![one.clone()],
        ..InstallPayload::default()
    };
    let out = m.apply(&install_job(&p));
    assert_eq!(out.installed, vec![one]);
}

#[test]
fn exclude_kbs_requiring_reboot_leaves_those_updates_available_and_does_not_reboot() {
    let mut m = machine();
    let boots = m.boot_count();
    let p = InstallPayload {
        classifications: Some(Classification::ALL.to_vec()),
        exclude_kbs_requiring_reboot: true,
        ..InstallPayload::default()
    };
    let needing = kbs_of(&m, |u| u.requires_reboot);
    assert!(!needing.is_empty(), "the seed offers updates that need a reboot");
    let out = m.apply(&install_job(&p));
    assert_eq!(out.installed, kbs_of(&SimulatedMachine::new(config(7)), |u| !u.requires_reboot));
    assert!(!out.rebooted && !out.reboot_pending);
    assert_eq!(m.boot_count(), boots);
    assert_eq!(kbs_of(&m, |_| true), needing, "only the updates needing a reboot are left");

    // Without the option the same install reboots.
    let mut m = machine();
    let out = m.apply(&install_job(&InstallPayload { exclude_kbs_requiring_reboot: false, ..p }));
    assert!(out.rebooted && m.boot_count() == boots + 1);
}

#[test]
fn exclude_kbs_requiring_reboot_skips_a_baseline() {
    let mut m = machine();
    let (boots, build) = (m.boot_count(), m.os_build());
    let payload = json!({"kbs": ["KB5040437"], "requires_reboot": true, "build": "20348.2582",
                         "exclude_kbs_requiring_reboot": true});
    let out = m.apply(&job(JobKind::Install, payload));
    assert_eq!(out.outcome, Outcome::Succeeded);
    assert!(out.installed.is_empty() && !out.rebooted && !out.reboot_pending);
    assert_eq!((m.boot_count(), m.os_build()), (boots, build));
}

#[test]
fn an_install_that_would_exceed_its_maximum_duration_fails_and_changes_nothing() {
    let slow = SimConfig {
        job_duration: Duration::from_secs(20 * 60),
        reboot_duration: Duration::from_secs(15 * 60),
        ..config(7)
    };
    let baseline = |limit: &str| json!({"kbs": ["KB5040437"], "requires_reboot": true, "build": "20348.2582", "maximum_duration": limit});
    // 20 minutes of work and a 15-minute reboot do not fit in 30 minutes.
    let mut m = SimulatedMachine::new(slow.clone());
    let before = m.snapshot();
    let out = m.apply(&job(JobKind::Install, baseline("PT30M")));
    assert_eq!(out.outcome, Outcome::Failed);
    assert!(out.error.as_deref().unwrap().starts_with("maximum duration exceeded"), "{:?}", out.error);
    assert_eq!(m.snapshot(), before);
    // They fit in an hour.
    let out = m.apply(&job(JobKind::Install, baseline("PT1H")));
    assert!(out.outcome == Outcome::Succeeded && out.rebooted);
    // A hotpatch (no reboot) fits in 30 minutes.
    let mut m = SimulatedMachine::new(slow);
    let kb = first_recommended(&m);
    let out = m.apply(&job(JobKind::Install, json!({"kbs": [kb.as_str()], "maximum_duration": "PT30M"})));
    assert_eq!(out.outcome, Outcome::Succeeded);
}

#[test]
fn a_rollout_install_of_a_catalog_release_is_what_the_simulator_runs() {
    let release = |kind, kb: &str, build: &str| Release {
        id: Uuid::new_v4(),
        spec: ReleaseSpec {
            os: OsVersion::WindowsServer2022,
            kind,
            planned: true,
            month: "2025-04".parse().unwrap(),
            kb: kb.parse().unwrap(),
            build: build.parse().unwrap(),
            released_at: at(),
        },
        superseded_by: None,
    };
    let mut m = machine();
    let (boots, booted_at) = (m.boot_count(), m.booted_at());
    let hotpatch = release(ReleaseKind::Hotpatch, "KB5050002", "20348.3160");
    let out = m.apply(&install_job(&InstallPayload::of_release(&hotpatch, false)));
    assert_eq!(out.installed, vec![hotpatch.spec.kb.clone()]);
    assert!(!out.rebooted, "a hotpatch changes no uptime");
    assert_eq!((m.boot_count(), m.booted_at(), m.os_build()), (boots, booted_at, hotpatch.spec.build));

    let baseline = release(ReleaseKind::Baseline, "KB5050010", "20348.3200");
    let out = m.apply(&install_job(&InstallPayload::of_release(&baseline, true)));
    assert!(out.rebooted && m.boot_count() == boots + 1);
    assert_eq!(m.os_build(), baseline.spec.build);

    // `reboot: always` restarts even for a hotpatch.
    let next = release(ReleaseKind::Hotpatch, "KB5050011", "20348.3210");
    let p = InstallPayload { reboot: RebootSetting::Always, ..InstallPayload::of_release(&next, false) };
    assert!(m.apply(&install_job(&p)).rebooted && m.boot_count() == boots + 2);
}

#[test]
fn a_rollback_plan_uninstalls_the_hotpatch_reinstalls_the_baseline_and_reboots_into_its_build() {
    let mut m = machine();
    let hotpatch_kb = first_recommended(&m);
    m.apply(&job(JobKind::Install, json!({"kbs": [hotpatch_kb.as_str()], "build": "20348.2300"})));
    let (boots, count) = (m.boot_count(), m.installed().len());
    let plan_release = |kb: &Kb, kind, build: &str| PlanRelease {
        id: Uuid::new_v4(),
        kb: kb.clone(),
        month: "2025-01".parse().unwrap(),
        kind,
        build: build.parse().unwrap(),
    };
    let baseline_kb: Kb = "KB5050001".parse().unwrap();
    let plan = RollbackPayload {
        steps: vec![
            RollbackStep::Uninstall {
                release: plan_release(&hotpatch_kb, ReleaseKind::Hotpatch, "20348.2300"),
            },
            RollbackStep::Install {
                release: plan_release(&baseline_kb, ReleaseKind::Baseline, "20348.2227"),
            },
            RollbackStep::Reboot,
        ],
        build: Some("20348.2227".parse().unwrap()),
    };
    let rollback = job(JobKind::Rollback, serde_json::to_value(&plan).unwrap());
    let out = m.apply(&rollback);
    assert_eq!(out.outcome, Outcome::Succeeded);
    assert_eq!(out.installed, vec![baseline_kb.clone()]);
    assert!(out.rebooted && !out.reboot_pending);
    assert_eq!(m.boot_count(), boots + 1);
    assert_eq!(m.os_build(), OsBuild { build: 20348, revision: 2227 });
    assert!(!m.installed().iter().any(|u| u.kb == hotpatch_kb));
    assert!(m.installed().iter().any(|u| u.kb == baseline_kb));
    assert!(m.available().iter().any(|u| u.kb == hotpatch_kb), "the hotpatch is offered again");
    assert_eq!(m.installed().len(), count, "one out, the baseline in");

    // A retried attempt (lost lease) removes nothing more.
    let installed = m.installed().to_vec();
    m.apply(&rollback);
    assert_eq!(m.installed(), installed.as_slice());
}
