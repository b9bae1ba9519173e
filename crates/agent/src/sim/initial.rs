//! The state a simulated machine starts in, drawn from its seed: at random, or from the release
//! catalog ([`SimCatalog`]).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use hotpatch_domain::job::{AvailableUpdate, InstalledUpdate};
use hotpatch_domain::{Classification, Kb, OsBuild, OsVersion, Release};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::catalog::{as_available, SimCatalog};
use super::{SimConfig, SimulatedMachine};

/// Classifications of the updates outside the catalog a machine is offered (non-security).
const OTHERS: [Classification; 5] = [
    Classification::Updates,
    Classification::Dotnet,
    Classification::Driver,
    Classification::Definition,
    Classification::Tools,
];

impl SimulatedMachine {
    /// A machine whose initial state is drawn from `config.seed`: a build of its OS, a few
    /// installed updates, a few critical/security updates available (hotpatches, no reboot)
    /// and a few others (non-security, .NET, drivers…). None of them is a catalog release.
    pub fn new(config: SimConfig) -> SimulatedMachine {
        let mut rng = StdRng::seed_from_u64(config.seed);
        let now = (config.clock)();
        let os_build = match config.os {
            OsVersion::WindowsServer2022 => OsBuild { build: 20348, revision: rng.gen_range(2200..2300) },
            OsVersion::WindowsServer2025 => OsBuild { build: 26100, revision: rng.gen_range(1742..2300) },
        };
        let name = os_name(config.os);
        let mut taken = BTreeSet::new();
        let mut installed = Vec::new();
        let mut age_days: Vec<i64> = (0..rng.gen_range(3..=5)).map(|_| rng.gen_range(10..400)).collect();
        age_days.sort_unstable_by(|a, b| b.cmp(a));
        for days in age_days {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification =
                [Classification::Security, Classification::Critical, Classification::Updates]
                    [rng.gen_range(0..3)];
            installed.push(InstalledUpdate {
                title: Some(format!("{} for {name} ({kb})", kind_title(classification))),
                kb,
                classification: Some(classification),
                installed_on: (now - TimeDelta::days(days)).date_naive(),
                installed_by: Some("windows_update".to_owned()),
            });
        }
        let mut available = Vec::new();
        for _ in 0..rng.gen_range(2..=3) {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification = [Classification::Security, Classification::Critical][rng.gen_range(0..2)];
            let title = format!("Hotpatch {} for {name} ({kb})", kind_title(classification));
            available.push(AvailableUpdate { kb, title, classification, requires_reboot: false });
        }
        available.extend(others(&mut rng, &mut taken, config.os));
        let known = available.iter().map(|u| (u.kb.clone(), u.clone())).collect();
        let booted_at = now - TimeDelta::hours(rng.gen_range(1..24 * 30));
        SimulatedMachine {
            config,
            rng,
            os_build,
            pending_build: None,
            installed,
            available,
            known,
            catalog: None,
            newer_releases: BTreeSet::new(),
            reboot_pending: false,
            healthy: true,
            boot_count: 1,
            booted_at,
        }
    }

    /// A machine that starts from the catalog, drawn from `config.seed`: on the current cycle's
    /// baseline (one machine in three a cycle behind, on the previous one) with some of that
    /// cycle's hotpatches, at the build of the last of them; offered what the catalog says comes
    /// next (the current baseline, or the newer hotpatches of its cycle) and a few updates
    /// outside the catalog. Installing what it is offered brings it up to date. When the catalog
    /// has no baseline of the machine's OS, this is [`SimulatedMachine::new`].
    pub fn from_catalog(config: SimConfig, catalog: Arc<SimCatalog>) -> SimulatedMachine {
        let os = config.os;
        let cycles = catalog.cycles(os);
        let Some(current) = cycles.len().checked_sub(1) else { return SimulatedMachine::new(config) };
        let mut rng = StdRng::seed_from_u64(config.seed);
        let now = (config.clock)();
        let mut taken: BTreeSet<String> =
            catalog.releases(os).iter().map(|r| r.spec.kb.as_str().to_owned()).collect();
        let name = os_name(os);
        // Older updates outside the catalog first: the last installed update is the latest.
        let mut installed = Vec::new();
        let mut age_days: Vec<i64> = (0..rng.gen_range(1..=3)).map(|_| rng.gen_range(60..400)).collect();
        age_days.sort_unstable_by(|a, b| b.cmp(a));
        for days in age_days {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification = OTHERS[rng.gen_range(0..3)];
            installed.push(InstalledUpdate {
                title: Some(format!("{} for {name} ({kb})", kind_title(classification))),
                kb,
                classification: Some(classification),
                installed_on: (now - TimeDelta::days(days)).date_naive(),
                installed_by: Some("windows_update".to_owned()),
            });
        }
        let behind = current > 0 && rng.gen_bool(1.0 / 3.0);
        let cycle = cycles[if behind { current - 1 } else { current }];
        let hotpatches = rng.gen_range(0..=cycle.hotpatches.len());
        let mut os_build = cycle.baseline.spec.build;
        for release in std::iter::once(cycle.baseline).chain(&cycle.hotpatches[..hotpatches]) {
            let installed_on = installed_on(&mut rng, release, now);
            installed.push(catalog_installed(release, installed_on));
            os_build = release.spec.build;
        }
        let mut available: Vec<AvailableUpdate> =
            catalog.offered(os, installed.iter().map(|u| &u.kb)).into_iter().map(as_available).collect();
        available.extend(others(&mut rng, &mut taken, os));
        let mut known: BTreeMap<Kb, AvailableUpdate> =
            catalog.releases(os).iter().map(|r| (r.spec.kb.clone(), as_available(r))).collect();
        known.extend(available.iter().map(|u| (u.kb.clone(), u.clone())));
        let booted_at = now - TimeDelta::hours(rng.gen_range(1..24 * 30));
        SimulatedMachine {
            config,
            rng,
            os_build,
            pending_build: None,
            installed,
            available,
            known,
            catalog: Some(catalog),
            newer_releases: BTreeSet::new(),
            reboot_pending: false,
            healthy: true,
            boot_count: 1,
            booted_at,
        }
    }
}

/// A catalog release as the machine lists it installed by Windows Update.
fn catalog_installed(release: &Release, on: NaiveDate) -> InstalledUpdate {
    let offered = as_available(release);
    InstalledUpdate {
        kb: offered.kb,
        title: Some(offered.title),
        classification: Some(offered.classification),
        installed_on: on,
        installed_by: Some("windows_update".to_owned()),
    }
}

/// When a machine installed a release: within a week of its release, never after `now`.
fn installed_on(rng: &mut StdRng, release: &Release, now: DateTime<Utc>) -> NaiveDate {
    (release.spec.released_at + TimeDelta::days(rng.gen_range(0..7))).min(now).date_naive()
}

/// Two or three updates outside the catalog (non-security, .NET, drivers…) to offer.
fn others(rng: &mut StdRng, taken: &mut BTreeSet<String>, os: OsVersion) -> Vec<AvailableUpdate> {
    (0..rng.gen_range(2..=3))
        .map(|_| {
            let kb = fresh_kb(rng, taken);
            let classification = OTHERS[rng.gen_range(0..OTHERS.len())];
            let title = format!("{} for {} ({kb})", kind_title(classification), os_name(os));
            let requires_reboot = classification.default_requires_reboot();
            AvailableUpdate { kb, title, classification, requires_reboot }
        })
        .collect()
}

pub(super) fn os_name(os: OsVersion) -> &'static str {
    match os {
        OsVersion::WindowsServer2022 => "Windows Server 2022",
        OsVersion::WindowsServer2025 => "Windows Server 2025",
    }
}

/// How an update of this classification is titled, e.g. "Security Update".
fn kind_title(c: Classification) -> &'static str {
    match c {
        Classification::Critical => "Critical Update",
        Classification::Security => "Security Update",
        Classification::UpdateRollup => "Update Rollup",
        Classification::FeaturePack => "Feature Pack",
        Classification::ServicePack => "Service Pack",
        Classification::Definition => "Security Intelligence Update",
        Classification::Tools => "Tools Update",
        Classification::Updates => "Cumulative Update Preview",
        Classification::Dotnet => "Cumulative Update for .NET Framework",
        Classification::Driver => "Driver Update",
        Classification::Firmware => "Firmware Update",
    }
}

/// A KB number not yet in `taken`: `KB5` and six digits.
fn fresh_kb(rng: &mut StdRng, taken: &mut BTreeSet<String>) -> Kb {
    loop {
        let text = format!("KB5{:06}", rng.gen_range(0..1_000_000));
        if taken.insert(text.clone()) {
            if let Ok(kb) = text.parse() {
                return kb;
            }
        }
    }
}
