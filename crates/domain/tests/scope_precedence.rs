//! Which configuration governs a machine: how a scope takes a machine, and the precedence
//! among the configurations that do (machine id, then labels, then region; the oldest, then
//! the smallest id, among equals). One table per rule.

#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};
use hotpatch_domain::schedule::{applicable_configuration, Candidate, Scope, ScopeMatch};
use uuid::Uuid;

const MACHINE: Uuid = Uuid::from_u128(0x0190a5a0_0000_7000_8000_000000000001);
const OTHER: Uuid = Uuid::from_u128(0x0190a5a0_0000_7000_8000_000000000002);

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn ids(ids: &[Uuid]) -> Vec<Uuid> {
    ids.to_vec()
}

fn regions(rs: &[&str]) -> Vec<String> {
    rs.iter().map(|r| (*r).to_owned()).collect()
}

/// The machine every table asks about: `env=prod`, `team=web`, in `westeurope`.
fn machine_labels() -> BTreeMap<String, String> {
    labels(&[("env", "prod"), ("team", "web")])
}

fn matches(scope: &Scope) -> Option<ScopeMatch> {
    scope.matches(MACHINE, &machine_labels(), "westeurope")
}

fn day(d: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2025, 1, d, 0, 0, 0).unwrap()
}

fn id(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

/// The id and match of the configuration that governs the machine among `(id, created day, scope)`.
fn governing(candidates: &[(Uuid, u32, Scope)]) -> Option<(Uuid, ScopeMatch)> {
    let candidates =
        candidates.iter().map(|(id, d, scope)| Candidate { id: *id, created_at: day(*d), scope });
    applicable_configuration(MACHINE, &machine_labels(), "westeurope", candidates).map(|(c, how)| (c.id, how))
}

fn named() -> Scope {
    Scope { machine_ids: ids(&[MACHINE]), ..Scope::default() }
}

fn labelled() -> Scope {
    Scope { labels: labels(&[("env", "prod")]), ..Scope::default() }
}

fn regional() -> Scope {
    Scope { regions: regions(&["westeurope"]), ..Scope::default() }
}

#[test]
fn a_scope_takes_a_machine_by_id_by_all_of_its_labels_or_by_region() {
    let cases = [
        (named(), Some(ScopeMatch::MachineId)),
        (Scope { machine_ids: ids(&[OTHER]), ..Scope::default() }, None),
        (labelled(), Some(ScopeMatch::Label)),
        (Scope { labels: machine_labels(), ..Scope::default() }, Some(ScopeMatch::Label)),
        (regional(), Some(ScopeMatch::Region)),
        (
            Scope { regions: regions(&["northeurope", "westeurope"]), ..Scope::default() },
            Some(ScopeMatch::Region),
        ),
        (Scope { regions: regions(&["northeurope"]), ..Scope::default() }, None),
        (Scope::default(), None),
    ];
    for (scope, expected) in cases {
        assert_eq!(matches(&scope), expected, "{scope:?}");
    }
}

#[test]
fn a_label_scope_matches_only_when_the_machine_carries_every_label_with_its_value() {
    let cases = [
        (labels(&[("env", "prod"), ("team", "db")]), None),
        (labels(&[("env", "test")]), None),
        (labels(&[("owner", "me")]), None),
        (labels(&[("env", "PROD")]), None),
        (labels(&[("team", "web")]), Some(ScopeMatch::Label)),
    ];
    for (l, expected) in cases {
        assert_eq!(matches(&Scope { labels: l.clone(), ..Scope::default() }), expected, "{l:?}");
    }
}

#[test]
fn an_empty_label_scope_matches_no_machine() {
    assert_eq!(matches(&Scope::default()), None);
    assert_eq!(Scope::default().matches(MACHINE, &BTreeMap::new(), "westeurope"), None);
}

#[test]
fn a_scope_matching_several_ways_matches_the_strongest_way() {
    let all = Scope {
        machine_ids: ids(&[MACHINE]),
        labels: labels(&[("env", "prod")]),
        regions: regions(&["westeurope"]),
    };
    assert_eq!(matches(&all), Some(ScopeMatch::MachineId));
    let labels_and_region = Scope { machine_ids: ids(&[OTHER]), ..all };
    assert_eq!(matches(&labels_and_region), Some(ScopeMatch::Label));
}

#[test]
fn a_configuration_naming_the_machine_beats_one_matching_its_labels_and_one_listing_its_region() {
    // The named one is the newest: the kind of match decides before age.
    let candidates = [(id(1), 1, regional()), (id(2), 2, labelled()), (id(3), 3, named())];
    assert_eq!(governing(&candidates), Some((id(3), ScopeMatch::MachineId)));
}

#[test]
fn a_configuration_matching_all_its_labels_beats_one_listing_its_region() {
    let candidates = [(id(1), 1, regional()), (id(2), 9, labelled())];
    assert_eq!(governing(&candidates), Some((id(2), ScopeMatch::Label)));
}

#[test]
fn among_equal_matches_the_oldest_wins() {
    let candidates = [(id(1), 5, regional()), (id(2), 2, regional()), (id(3), 3, regional())];
    assert_eq!(governing(&candidates), Some((id(2), ScopeMatch::Region)));
}

#[test]
fn among_equal_matches_created_at_once_the_smallest_id_wins() {
    let candidates = [(id(9), 1, labelled()), (id(4), 1, labelled()), (id(7), 1, labelled())];
    assert_eq!(governing(&candidates), Some((id(4), ScopeMatch::Label)));
}

#[test]
fn a_machine_in_no_scope_has_no_configuration() {
    let elsewhere =
        Scope { regions: regions(&["eastus"]), labels: labels(&[("env", "test")]), ..Scope::default() };
    assert_eq!(governing(&[(id(1), 1, elsewhere), (id(2), 1, Scope::default())]), None);
    assert_eq!(governing(&[]), None);
}

#[test]
fn the_kinds_of_match_are_ordered_strongest_first() {
    assert!(ScopeMatch::MachineId < ScopeMatch::Label);
    assert!(ScopeMatch::Label < ScopeMatch::Region);
    assert_eq!(serde_json::to_value(ScopeMatch::MachineId).unwrap(), "machine_id");
}
