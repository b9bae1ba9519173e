//! The state a simulated machine starts in, drawn from its seed.

use std::collections::BTreeSet;

use chrono::TimeDelta;
use hotpatch_domain::job::{AvailableUpdate, InstalledUpdate};
use hotpatch_domain::{Classification, Kb, OsBuild, OsVersion};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::{SimConfig, SimulatedMachine};

impl SimulatedMachine {
    /// A machine whose initial state is drawn from `config.seed`: a build of its OS, a few
    /// installed updates, a few critical/security updates available (hotpatches, no reboot)
    /// and a few others (non-security, .NET, drivers…).
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
        let others = [
            Classification::Updates,
            Classification::Dotnet,
            Classification::Driver,
            Classification::Definition,
            Classification::Tools,
        ];
        for _ in 0..rng.gen_range(2..=3) {
            let kb = fresh_kb(&mut rng, &mut taken);
            let classification = others[rng.gen_range(0..others.len())];
            let title = format!("{} for {name} ({kb})", kind_title(classification));
            let requires_reboot = classification.default_requires_reboot();
            available.push(AvailableUpdate { kb, title, classification, requires_reboot });
        }
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
            reboot_pending: false,
            healthy: true,
            boot_count: 1,
            booted_at,
        }
    }
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
