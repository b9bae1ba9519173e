//! Where an assessment places a machine in the catalog (DESIGN §1 "Cycle"): of the KBs its agent
//! reports installed, those that are catalog releases of the machine's OS say which baseline it
//! runs on and which release it installed last. KBs outside the catalog (drivers, .NET, another
//! OS's releases) say nothing.

use std::collections::HashSet;

use uuid::Uuid;

use super::{Kb, Release, ReleaseKind};

/// What an assessment's installed KBs say of a machine's installed state. `None` means the
/// assessment says nothing of it (no installed KB is such a release): the state recorded before
/// stands, since an agent's partial list must not erase what is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InstalledReleases {
    /// The newest installed baseline: the one the machine runs on.
    pub current_baseline: Option<Uuid>,
    /// The newest installed release of any kind, a baseline before a hotpatch of its month (an
    /// unplanned baseline replaces that month's hotpatch).
    pub latest_installed: Option<Uuid>,
}

impl InstalledReleases {
    /// What the KBs in `installed` say, given `catalog`, the releases of the machine's OS.
    /// Releases of one month that are equal in kind (a superseded hotpatch and a later one) go
    /// by release time, then id, so the answer never depends on the catalog's order.
    pub fn of<'a>(catalog: &[Release], installed: impl IntoIterator<Item = &'a Kb>) -> InstalledReleases {
        let installed: HashSet<&Kb> = installed.into_iter().collect();
        let newest =
            |r: &&Release| (r.spec.month, r.spec.kind == ReleaseKind::Baseline, r.spec.released_at, r.id);
        let found = || catalog.iter().filter(|r| installed.contains(&r.spec.kb));
        InstalledReleases {
            current_baseline: found()
                .filter(|r| r.spec.kind == ReleaseKind::Baseline)
                .max_by_key(newest)
                .map(|r| r.id),
            latest_installed: found().max_by_key(newest).map(|r| r.id),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeDelta, TimeZone, Utc};

    use super::*;
    use crate::machine::OsVersion;
    use crate::release::ReleaseSpec;

    /// A release of `month`, published on the 14th, with KB `KB50000nn` and id `nn`.
    fn release(n: u128, kind: ReleaseKind, month: &str) -> Release {
        let month: crate::Month = month.parse().unwrap();
        let released_at = Utc.with_ymd_and_hms(month.year(), month.month(), 14, 18, 0, 0).unwrap();
        Release {
            id: Uuid::from_u128(n),
            spec: ReleaseSpec {
                os: OsVersion::WindowsServer2022,
                kind,
                planned: true,
                month,
                kb: format!("KB50000{n:02}").parse().unwrap(),
                build: "20348.2700".parse().unwrap(),
                released_at,
            },
            superseded_by: None,
        }
    }

    fn kbs(ns: &[u128]) -> Vec<Kb> {
        ns.iter().map(|n| format!("KB50000{n:02}").parse().unwrap()).collect()
    }

    /// A quarter (January baseline, February and March hotpatches), February's hotpatch
    /// replaced by an unplanned baseline (5) released a week later, and April's baseline (6).
    fn catalog() -> Vec<Release> {
        let mut feb_hotpatch = release(2, ReleaseKind::Hotpatch, "2025-02");
        feb_hotpatch.superseded_by = Some(Uuid::from_u128(5));
        let mut unplanned = release(5, ReleaseKind::Baseline, "2025-02");
        unplanned.spec.planned = false;
        unplanned.spec.released_at += TimeDelta::days(7);
        vec![
            release(1, ReleaseKind::Baseline, "2025-01"),
            feb_hotpatch,
            release(3, ReleaseKind::Hotpatch, "2025-03"),
            unplanned,
            release(6, ReleaseKind::Baseline, "2025-04"),
        ]
    }

    #[test]
    fn installed_catalog_kbs_decide_the_current_baseline_and_the_latest_install() {
        let (none, id) = (None, |n| Some(Uuid::from_u128(n)));
        let cases = [
            ("the newest installed baseline is the current one", &[1, 6][..], id(6), id(6)),
            ("a hotpatch after its baseline is the latest install", &[1, 2, 3], id(1), id(3)),
            ("a baseline is later than a hotpatch of its month", &[1, 2, 5], id(5), id(5)),
            ("a hotpatch alone is the latest install and leaves the baseline", &[3], none, id(3)),
            ("releases count whatever order the agent lists them in", &[3, 1, 2], id(1), id(3)),
            ("KBs outside the catalog move neither", &[98, 99], none, none),
            ("KBs outside the catalog are ignored next to catalog ones", &[99, 1, 98], id(1), id(1)),
            ("nothing installed decides nothing", &[], none, none),
        ];
        for (rule, installed, current_baseline, latest_installed) in cases {
            let got = InstalledReleases::of(&catalog(), &kbs(installed));
            assert_eq!(got, InstalledReleases { current_baseline, latest_installed }, "{rule}");
        }
    }

    #[test]
    fn the_answer_does_not_depend_on_the_catalogs_order() {
        let mut reversed = catalog();
        reversed.reverse();
        for installed in [&[1, 2, 3, 5][..], &[1, 2], &[2, 5, 6]] {
            let installed = kbs(installed);
            assert_eq!(
                InstalledReleases::of(&reversed, &installed),
                InstalledReleases::of(&catalog(), &installed)
            );
        }
    }

    #[test]
    fn of_two_hotpatches_of_one_month_the_later_released_is_the_latest_install() {
        let mut late = release(7, ReleaseKind::Hotpatch, "2025-02");
        late.spec.released_at += TimeDelta::days(10);
        let catalog = [catalog(), vec![late]].concat();
        let got = InstalledReleases::of(&catalog, &kbs(&[1, 2, 7]));
        assert_eq!(got.latest_installed, Some(Uuid::from_u128(7)));
    }
}
