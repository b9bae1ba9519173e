//! The release catalog as simulated machines know it: the server's baselines and hotpatches of
//! each OS, read once when the simulator starts. A machine drawn from it starts on a cycle's
//! baseline with some of that cycle's hotpatches (DESIGN §1 "Cycle") and is offered what the
//! server expects it to install next, so its assessments place it in the catalog the way a real
//! machine's would.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use hotpatch_domain::job::AvailableUpdate;
use hotpatch_domain::{Classification, Kb, OsVersion, Release, ReleaseKind};

use super::initial::os_name;

/// The catalog releases the simulated machines know: for each OS, the active ones (not
/// superseded) that were out when it was read, oldest first.
#[derive(Debug, Clone, Default)]
pub struct SimCatalog {
    by_os: BTreeMap<OsVersion, Vec<Release>>,
}

/// A baseline and the hotpatches that apply on it (the active ones of the months after it, up to
/// the next baseline), oldest first.
#[derive(Debug, Clone, Copy)]
pub struct Cycle<'a> {
    /// The cycle's baseline.
    pub baseline: &'a Release,
    /// Its hotpatches.
    pub hotpatches: &'a [Release],
}

impl SimCatalog {
    /// The catalog of `releases` as it stood at `now`: superseded releases and those not yet out
    /// are left out.
    pub fn new(releases: impl IntoIterator<Item = Release>, now: DateTime<Utc>) -> SimCatalog {
        let mut by_os: BTreeMap<OsVersion, Vec<Release>> = BTreeMap::new();
        for r in releases.into_iter().filter(|r| r.is_active() && r.is_out(now)) {
            by_os.entry(r.spec.os).or_default().push(r);
        }
        for list in by_os.values_mut() {
            // A baseline sorts before a hotpatch of its month (an unplanned baseline replaces it).
            list.sort_by_key(|r| {
                (r.spec.month, r.spec.kind != ReleaseKind::Baseline, r.spec.released_at, r.id)
            });
        }
        SimCatalog { by_os }
    }

    /// The releases of `os`, oldest first.
    pub fn releases(&self, os: OsVersion) -> &[Release] {
        self.by_os.get(&os).map_or(&[], Vec::as_slice)
    }

    /// Whether a machine of `os` can start from the catalog: it has a baseline of that OS.
    pub fn covers(&self, os: OsVersion) -> bool {
        self.releases(os).iter().any(|r| r.spec.kind == ReleaseKind::Baseline)
    }

    /// The cycles of `os`, oldest first; the last one is the current cycle.
    pub fn cycles(&self, os: OsVersion) -> Vec<Cycle<'_>> {
        let releases = self.releases(os);
        let starts: Vec<usize> = releases
            .iter()
            .enumerate()
            .filter(|(_, r)| r.spec.kind == ReleaseKind::Baseline)
            .map(|(i, _)| i)
            .collect();
        starts
            .iter()
            .enumerate()
            .map(|(n, &start)| {
                let end = starts.get(n + 1).copied().unwrap_or(releases.len());
                Cycle { baseline: &releases[start], hotpatches: &releases[start + 1..end] }
            })
            .collect()
    }

    /// The release of `os` with this KB.
    pub fn find(&self, os: OsVersion, kb: &Kb) -> Option<&Release> {
        self.releases(os).iter().find(|r| &r.spec.kb == kb)
    }

    /// What Windows Update offers a machine of `os` with these KBs installed: the current
    /// baseline when it is not installed (a hotpatch applies only on its cycle's baseline; the
    /// baseline is cumulative), else the current cycle's hotpatches newer than the newest one
    /// installed. Empty when `os` has no baseline.
    pub fn offered<'a>(&self, os: OsVersion, installed: impl IntoIterator<Item = &'a Kb>) -> Vec<&Release> {
        let installed: Vec<&Kb> = installed.into_iter().collect();
        let Some(current) = self.cycles(os).pop() else { return Vec::new() };
        if !installed.contains(&&current.baseline.spec.kb) {
            return vec![current.baseline];
        }
        let newest_installed = current.hotpatches.iter().rposition(|h| installed.contains(&&h.spec.kb));
        let after = newest_installed.map_or(0, |i| i + 1);
        current.hotpatches[after..].iter().collect()
    }
}

/// How Windows Update lists a catalog release: a security update, with a reboot for a baseline.
pub fn as_available(release: &Release) -> AvailableUpdate {
    let spec = &release.spec;
    let what = match spec.kind {
        ReleaseKind::Baseline => "Cumulative Update",
        ReleaseKind::Hotpatch => "Hotpatch",
    };
    AvailableUpdate {
        kb: spec.kb.clone(),
        title: format!("{} {what} for {} ({})", spec.month, os_name(spec.os), spec.kb),
        classification: Classification::Security,
        requires_reboot: spec.kind.requires_reboot(),
    }
}
