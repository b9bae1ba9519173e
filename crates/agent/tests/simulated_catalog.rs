//! Simulated machines that start from the release catalog: where they start in the cycle, what
//! they are offered, and how installing it moves them to where the server expects.
#![allow(clippy::unwrap_used, missing_docs)]

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_agent::sim::{SimCatalog, SimConfig, SimulatedMachine};
use hotpatch_domain::job::{ClaimedJob, JobKind, Lease, Outcome};
use hotpatch_domain::payload::InstallPayload;
use hotpatch_domain::{Classification, InstalledReleases, Kb, OsVersion, Release, ReleaseKind, ReleaseSpec};
use serde_json::{json, Value};
use uuid::Uuid;

const OS: OsVersion = OsVersion::WindowsServer2022;

fn now() -> DateTime<Utc> {
    "2025-12-20T12:00:00Z".parse().unwrap()
}

/// A Windows Server 2022 release of `month` with KB `KB99220nn`, build `20348.30nn` and id `nn`.
fn release(n: u128, kind: ReleaseKind, month: &str) -> Release {
    Release {
        id: Uuid::from_u128(n),
        spec: ReleaseSpec {
            os: OS,
            kind,
            planned: true,
            month: month.parse().unwrap(),
            kb: format!("KB99220{n:02}").parse().unwrap(),
            build: format!("20348.30{n:02}").parse().unwrap(),
            released_at: format!("{month}-10T18:00:00Z").parse().unwrap(),
        },
        superseded_by: None,
    }
}

/// The sample catalog's shape: baselines in January, April, July and October, hotpatches in
/// the other months, August's hotpatch superseded by an unplanned baseline (9), and January
/// 2026's baseline (14) not out yet.
fn catalog() -> SimCatalog {
    use ReleaseKind::{Baseline, Hotpatch};
    let mut august_hotpatch = release(8, Hotpatch, "2025-08");
    august_hotpatch.superseded_by = Some(Uuid::from_u128(9));
    let mut unplanned = release(9, Baseline, "2025-08");
    unplanned.spec.planned = false;
    unplanned.spec.released_at += TimeDelta::days(7);
    let releases = vec![
        release(1, Baseline, "2025-01"),
        release(2, Hotpatch, "2025-02"),
        release(3, Hotpatch, "2025-03"),
        release(4, Baseline, "2025-04"),
        release(5, Hotpatch, "2025-05"),
        release(6, Hotpatch, "2025-06"),
        release(7, Baseline, "2025-07"),
        august_hotpatch,
        unplanned,
        release(10, Hotpatch, "2025-09"),
        release(11, Baseline, "2025-10"),
        release(12, Hotpatch, "2025-11"),
        release(13, Hotpatch, "2025-12"),
        release(14, Baseline, "2026-01"),
    ];
    SimCatalog::new(releases, now())
}

fn kb(n: u128) -> Kb {
    format!("KB99220{n:02}").parse().unwrap()
}

fn config(seed: u64) -> SimConfig {
    SimConfig {
        os: OS,
        seed,
        job_duration: Duration::ZERO,
        reboot_duration: Duration::ZERO,
        clock: Arc::new(now),
        ..SimConfig::default()
    }
}

fn machine(seed: u64) -> SimulatedMachine {
    SimulatedMachine::from_catalog(config(seed), Arc::new(catalog()))
}

fn job(payload: Value) -> ClaimedJob {
    ClaimedJob {
        id: Uuid::new_v4(),
        kind: JobKind::Install,
        machine_id: Uuid::new_v4(),
        attempt: 1,
        payload,
        lease: Lease { id: Uuid::new_v4(), expires_at: now() },
    }
}

/// The catalog KBs among `kbs`, by release number, in their order.
fn releases_in<'a>(kbs: impl IntoIterator<Item = &'a Kb>) -> Vec<u128> {
    kbs.into_iter().filter_map(|k| (1..=14).find(|&n| &kb(n) == k)).collect()
}

/// Where the server places the machine: (current baseline, latest installed), by release number.
fn placed(m: &SimulatedMachine) -> (Option<u128>, Option<u128>) {
    let releases = catalog().releases(OS).to_vec();
    let got = InstalledReleases::of(&releases, m.installed().iter().map(|u| &u.kb));
    (got.current_baseline.map(|id| id.as_u128()), got.latest_installed.map(|id| id.as_u128()))
}

#[test]
fn the_catalog_keeps_the_active_releases_that_are_out_in_cycles() {
    let catalog = catalog();
    let cycles: Vec<(u128, Vec<u128>)> = catalog
        .cycles(OS)
        .iter()
        .map(|c| (c.baseline.id.as_u128(), c.hotpatches.iter().map(|h| h.id.as_u128()).collect()))
        .collect();
    let expected = vec![(1, vec![2, 3]), (4, vec![5, 6]), (7, vec![]), (9, vec![10]), (11, vec![12, 13])];
    assert_eq!(cycles, expected, "the superseded hotpatch (8) and the future baseline (14) are left out");
    assert!(catalog.covers(OS));
    assert!(!catalog.covers(OsVersion::WindowsServer2025));
}

#[test]
fn a_machine_starts_on_a_cycles_baseline_with_the_first_hotpatches_of_that_cycle() {
    let allowed: [&[u128]; 5] = [&[11], &[11, 12], &[11, 12, 13], &[9], &[9, 10]];
    let mut seen = BTreeSet::new();
    for seed in 0..300 {
        let m = machine(seed);
        let installed = releases_in(m.installed().iter().map(|u| &u.kb));
        assert!(allowed.contains(&installed.as_slice()), "seed {seed}: {installed:?}");
        let last = *installed.last().unwrap();
        assert_eq!(
            m.os_build(),
            catalog().releases(OS).iter().find(|r| r.id.as_u128() == last).unwrap().spec.build
        );
        assert_eq!(m.installed().last().map(|u| &u.kb), Some(&kb(last)), "the latest install is the release");
        assert!(m.installed().iter().all(|u| u.installed_on <= now().date_naive()));
        assert_eq!(placed(&m), (Some(installed[0]), Some(last)), "seed {seed}");
        seen.insert(installed);
    }
    assert_eq!(seen.len(), 5, "every start occurs in a fleet of 300: {seen:?}");
}

#[test]
fn a_machine_behind_is_offered_the_current_baseline_and_one_on_it_the_newer_hotpatches() {
    for seed in 0..100 {
        let m = machine(seed);
        let installed = releases_in(m.installed().iter().map(|u| &u.kb));
        let offered: Vec<_> = m.available().iter().filter(|u| u.is_recommended()).collect();
        let expected: &[u128] = match installed.as_slice() {
            [9] | [9, 10] => &[11],
            [11] => &[12, 13],
            [11, 12] => &[13],
            _ => &[],
        };
        assert_eq!(releases_in(offered.iter().map(|u| &u.kb)), expected, "seed {seed}: {installed:?}");
        for u in offered {
            assert_eq!(u.classification, Classification::Security);
            assert_eq!(u.requires_reboot, u.kb == kb(11), "only the baseline reboots: {u:?}");
        }
        assert!(m.available().iter().any(|u| !u.is_recommended()), "non-security updates are offered too");
    }
}

#[test]
fn installing_the_current_release_as_a_rollout_sends_it_brings_every_machine_up_to_date() {
    let catalog = catalog();
    let find = |n: u128| catalog.releases(OS).iter().find(|r| r.id.as_u128() == n).unwrap().clone();
    for seed in 0..60 {
        let mut m = machine(seed);
        if placed(&m).0 != Some(11) {
            let out =
                m.apply(&job(serde_json::to_value(InstallPayload::of_release(&find(11), true)).unwrap()));
            assert_eq!(out.outcome, Outcome::Succeeded);
            assert!(out.rebooted, "a baseline reboots");
            assert_eq!(placed(&m).0, Some(11), "seed {seed}");
            assert_eq!(releases_in(m.available().iter().map(|u| &u.kb)), vec![12, 13], "its hotpatches next");
        }
        let out = m.apply(&job(serde_json::to_value(InstallPayload::of_release(&find(13), false)).unwrap()));
        assert_eq!(out.outcome, Outcome::Succeeded);
        assert!(!out.rebooted, "a hotpatch does not reboot");
        assert_eq!(placed(&m), (Some(11), Some(13)), "seed {seed}");
        assert_eq!(m.os_build(), find(13).spec.build);
        assert!(
            m.available().iter().all(|u| !u.is_recommended()),
            "nothing recommended is left: seed {seed}"
        );
    }
}

#[test]
fn installing_the_offered_security_updates_twice_brings_every_machine_up_to_date() {
    for seed in 0..60 {
        let mut m = machine(seed);
        for _ in 0..2 {
            // Install now's default: the available critical and security updates, no build given.
            let out = m.apply(&job(json!({"classifications": ["critical", "security"]})));
            assert_eq!(out.outcome, Outcome::Succeeded);
        }
        assert_eq!(placed(&m), (Some(11), Some(13)), "seed {seed}");
        assert_eq!(m.os_build().to_string(), "20348.3013", "the build of the newest release installed");
        assert!(!m.reboot_pending());
        assert!(m.available().iter().all(|u| !u.is_recommended()), "seed {seed}");
    }
}

#[test]
fn an_adopted_machine_is_offered_what_its_recorded_updates_need() {
    let mut m = machine(1);
    let mut no_release = machine(2).installed().to_vec();
    no_release.retain(|u| releases_in([&u.kb]).is_empty());
    m.restore("20348.3001".parse().unwrap(), no_release);
    assert_eq!(placed(&m), (None, None));
    assert_eq!(
        releases_in(m.available().iter().map(|u| &u.kb)),
        vec![11],
        "no release installed: the baseline"
    );

    let recorded = machine(3);
    let installed: Vec<_> = recorded.installed().to_vec();
    let mut m = machine(4);
    m.restore(recorded.os_build(), installed.clone());
    assert_eq!(m.installed(), installed.as_slice());
    assert_eq!(placed(&m), placed(&recorded));
    let offered = |m: &SimulatedMachine| releases_in(m.available().iter().map(|u| &u.kb));
    assert_eq!(offered(&m), offered(&recorded));
}

#[test]
fn a_release_published_after_the_catalog_was_read_ends_the_catalogs_offers() {
    let mut m = machine(5);
    let payload = json!({"kbs": ["KB9922099"], "requires_reboot": true, "build": "20348.3099",
        "release_id": Uuid::from_u128(99)});
    let out = m.apply(&job(payload));
    assert_eq!(out.outcome, Outcome::Succeeded);
    assert_eq!(m.os_build().to_string(), "20348.3099");
    assert!(m.available().iter().all(|u| !u.is_recommended()), "{:?}", m.available());
}

#[test]
fn without_a_baseline_of_its_os_in_the_catalog_a_machine_draws_random_updates() {
    let ws2025 = SimConfig { os: OsVersion::WindowsServer2025, ..config(8) };
    let from_catalog = SimulatedMachine::from_catalog(ws2025.clone(), Arc::new(catalog()));
    assert_eq!(from_catalog.snapshot(), SimulatedMachine::new(ws2025).snapshot());
    let empty = SimulatedMachine::from_catalog(config(8), Arc::new(SimCatalog::default()));
    assert_eq!(empty.snapshot(), SimulatedMachine::new(config(8)).snapshot());
    assert!(releases_in(empty.installed().iter().map(|u| &u.kb)).is_empty());
}

#[test]
fn the_same_seed_draws_the_same_machine_from_the_catalog() {
    for seed in [0, 7, 1234] {
        assert_eq!(machine(seed).snapshot(), machine(seed).snapshot());
    }
}
