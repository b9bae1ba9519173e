//! A registered machine: whether it takes hotpatches follows the one rule, read from its fields.

#![allow(clippy::unwrap_used)]

mod support;

use chrono::Utc;
use hotpatch_domain::{assess, Enrollment, HotpatchStatus, Machine, MachineSpec};
use support::*;
use uuid::Uuid;

fn registered(spec: MachineSpec, enrollment: Option<Enrollment>) -> Machine {
    let eligibility = assess(&spec, &seeded_regions());
    let now = Utc::now();
    Machine {
        id: Uuid::now_v7(),
        hotpatch_status: HotpatchStatus::from_flags(eligibility.eligible, spec.hotpatch_enabled),
        spec,
        eligibility,
        enrollment,
        created_at: now,
        updated_at: now,
    }
}

#[test]
fn an_eligible_machine_takes_hotpatches_only_while_turned_on() {
    let on = MachineSpec { hotpatch_enabled: true, ..azure_vm() };
    assert!(registered(on, None).takes_hotpatches());
    let off = MachineSpec { hotpatch_enabled: false, ..azure_vm() };
    assert!(!registered(off, None).takes_hotpatches());
}

#[test]
fn an_ineligible_machine_never_takes_hotpatches() {
    let mut spec = MachineSpec { hotpatch_enabled: true, ..azure_vm() };
    spec.image = Some(marketplace("2022-datacenter-azure-edition"));
    let m = registered(spec, None);
    assert!(!m.eligibility.eligible, "a non-hotpatch image is not eligible");
    assert!(!m.takes_hotpatches());
}

#[test]
fn an_arc_machine_takes_hotpatches_once_its_enrollment_is_enabled() {
    let spec = MachineSpec { hotpatch_enabled: true, ..arc_machine() };
    assert!(registered(spec.clone(), None).eligibility.eligible);
    assert!(!registered(spec.clone(), Some(Enrollment::Pending)).takes_hotpatches());
    assert!(registered(spec, Some(Enrollment::Enabled)).takes_hotpatches());
}
