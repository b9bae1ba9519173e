//! The machine model: enrollment, partial updates, time zones, OS builds, the wire format and validation.

#![allow(clippy::unwrap_used)]

mod support;

use std::collections::BTreeMap;

use hotpatch_domain::validation::{MAX_LABELS, MAX_NAME_LEN};
use hotpatch_domain::{
    Edition, Enrollment, FieldError, Image, ImageKind, MachinePatch, MachineSpec, OrchestrationMode, OsBuild,
    OsVersion, PatchOrchestration, Platform, ScaleSet, Timezone,
};
use proptest::prelude::*;
use serde_json::{json, Value};
use support::*;

// --- enrollment -------------------------------------------------------------------------------

#[test]
fn enrollment_follows_the_operators_requests() {
    use Enrollment::*;
    // (from, enable requested, to)
    let cases = [
        (NotEnrolled, true, Pending),
        (NotEnrolled, false, NotEnrolled),
        (Pending, true, Pending),
        (Pending, false, Canceled),
        (Enabled, true, Enabled),
        (Enabled, false, Disabled),
        (Disabled, true, Pending),
        (Disabled, false, Disabled),
        (Canceled, true, Pending),
        (Canceled, false, Canceled),
    ];
    for (from, enable, to) in cases {
        assert_eq!(from.requested(enable), to, "{from:?} + enable={enable}");
    }
}

#[test]
fn enabling_never_skips_the_machines_confirmation() {
    use Enrollment::*;
    for from in [NotEnrolled, Pending, Disabled, Canceled] {
        assert_ne!(from.requested(true), Enabled, "{from:?}: only the machine confirms enrollment");
    }
}

#[test]
fn repeating_a_request_changes_nothing() {
    use Enrollment::*;
    for from in [NotEnrolled, Pending, Enabled, Disabled, Canceled] {
        for enable in [true, false] {
            let once = from.requested(enable);
            assert_eq!(once.requested(enable), once, "{from:?} + enable={enable} twice");
        }
    }
}

#[test]
fn enrollment_wire_names_are_snake_case() {
    use Enrollment::*;
    for (e, wire) in [
        (NotEnrolled, "not_enrolled"),
        (Pending, "pending"),
        (Enabled, "enabled"),
        (Disabled, "disabled"),
        (Canceled, "canceled"),
    ] {
        assert_eq!(serde_json::to_value(e).unwrap(), wire);
        assert_eq!(wire.parse::<Enrollment>().unwrap(), e);
        let s: &'static str = e.into();
        assert_eq!(s, wire);
    }
}

// --- partial updates --------------------------------------------------------------------------

fn patch(v: Value) -> MachinePatch {
    serde_json::from_value(v).unwrap()
}

/// A spec with every optional field set.
fn full_spec() -> MachineSpec {
    MachineSpec {
        availability_zone: Some("1".to_owned()),
        availability_set: Some("as-web".to_owned()),
        update_domain: Some(3),
        fault_domain: Some(1),
        scale_set: scale_set(OrchestrationMode::Flexible),
        edition: Some(Edition::Datacenter),
        os_build: Some("20348.2700".parse().unwrap()),
        vbs_enabled: Some(true),
        labels: BTreeMap::from([("env".to_owned(), "prod".to_owned())]),
        ..azure_vm()
    }
}

#[test]
fn empty_patch_keeps_everything() {
    assert_eq!(full_spec().patched(patch(json!({}))), full_spec());
}

#[test]
fn absent_fields_keep_their_value() {
    let patched = full_spec().patched(patch(json!({ "name": "web-02" })));
    assert_eq!(patched, MachineSpec { name: "web-02".to_owned(), ..full_spec() });
}

#[test]
fn null_clears_an_optional_field() {
    let optional = [
        "image",
        "edition",
        "os_build",
        "vbs_enabled",
        "availability_zone",
        "availability_set",
        "update_domain",
        "fault_domain",
        "scale_set",
    ];
    for field in optional {
        let patched = full_spec().patched(patch(json!({ field: null })));
        let cleared = serde_json::to_value(&patched).unwrap();
        assert_eq!(cleared[field], Value::Null, "{field} is cleared");
        // …and nothing else moved.
        let mut expected = serde_json::to_value(full_spec()).unwrap();
        expected[field] = Value::Null;
        assert_eq!(cleared, expected, "{field}");
    }
}

#[test]
fn null_for_a_required_field_is_rejected_not_ignored() {
    for field in
        ["name", "platform", "os", "region", "timezone", "hotpatch_enabled", "patch_orchestration", "labels"]
    {
        let err = serde_json::from_value::<MachinePatch>(json!({ field: null })).unwrap_err();
        assert!(err.to_string().contains("null"), "{field}: {err}");
    }
}

#[test]
fn a_value_sets_the_field() {
    let p = patch(json!({
        "name": "web-02",
        "platform": "azure_stack_hci_vm",
        "os": "windows_server_2025",
        "image": { "publisher": "MicrosoftWindowsServer", "offer": "WindowsServer", "sku": "2025-datacenter-azure-edition" },
        "edition": "standard",
        "os_build": "26100.2033",
        "vbs_enabled": false,
        "region": "eastasia",
        "availability_zone": "2",
        "availability_set": "as-api",
        "update_domain": 7,
        "fault_domain": 2,
        "scale_set": { "name": "vmss-api", "orchestration_mode": "uniform" },
        "timezone": "Asia/Kathmandu",
        "hotpatch_enabled": false,
        "patch_orchestration": "update_manager",
        "labels": { "tier": "api" },
    }));
    let patched = full_spec().patched(p);
    let expected = MachineSpec {
        name: "web-02".to_owned(),
        platform: Platform::AzureStackHciVm,
        os: OsVersion::WindowsServer2025,
        image: Some(marketplace("2025-datacenter-azure-edition")),
        edition: Some(Edition::Standard),
        os_build: Some(OsBuild { build: 26100, revision: 2033 }),
        vbs_enabled: Some(false),
        region: "eastasia".to_owned(),
        availability_zone: Some("2".to_owned()),
        availability_set: Some("as-api".to_owned()),
        update_domain: Some(7),
        fault_domain: Some(2),
        scale_set: Some(ScaleSet {
            name: "vmss-api".to_owned(),
            orchestration_mode: OrchestrationMode::Uniform,
        }),
        timezone: "Asia/Kathmandu".parse().unwrap(),
        hotpatch_enabled: false,
        patch_orchestration: PatchOrchestration::UpdateManager,
        // Labels are replaced as a whole, not merged.
        labels: BTreeMap::from([("tier".to_owned(), "api".to_owned())]),
    };
    assert_eq!(patched, expected);
}

#[test]
fn patch_rejects_unknown_fields_and_bad_values() {
    for bad in [
        json!({ "hostname": "x" }),
        json!({ "platform": "aws_ec2" }),
        json!({ "timezone": "Mars/Olympus" }),
        json!({ "os_build": "26100" }),
        json!({ "image": { "publisher": "p", "offer": "o" } }),
    ] {
        assert!(serde_json::from_value::<MachinePatch>(bad.clone()).is_err(), "{bad}");
    }
}

// --- time zones -------------------------------------------------------------------------------

#[test]
fn timezone_accepts_iana_names() {
    for name in ["Europe/Berlin", "Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe", "UTC"] {
        let tz: Timezone = name.parse().unwrap();
        assert_eq!(tz.name(), name);
        assert_eq!(tz.to_string(), name);
        assert_eq!(serde_json::to_value(tz).unwrap(), name);
        assert_eq!(serde_json::from_value::<Timezone>(json!(name)).unwrap(), tz);
    }
}

#[test]
fn timezone_rejects_what_is_not_an_iana_name() {
    for bad in ["Mars/Olympus", "+01:00", "", "CEST", "europe/berlin", " Europe/Berlin", "Europe/Berlin "] {
        let err = bad.parse::<Timezone>().unwrap_err();
        assert!(err.contains("IANA"), "{bad:?}: {err}");
        assert!(serde_json::from_value::<Timezone>(json!(bad)).is_err(), "{bad:?}");
    }
}

// --- OS builds --------------------------------------------------------------------------------

#[test]
fn os_build_parses_build_and_revision() {
    let b: OsBuild = "26100.1742".parse().unwrap();
    assert_eq!(b, OsBuild { build: 26100, revision: 1742 });
    assert_eq!(b.to_string(), "26100.1742");
    assert_eq!(serde_json::to_value(b).unwrap(), "26100.1742");
    assert_eq!(serde_json::from_value::<OsBuild>(json!("26100.1742")).unwrap(), b);
}

#[test]
fn os_builds_are_ordered_numerically_not_as_text() {
    let b = |s: &str| s.parse::<OsBuild>().unwrap();
    assert!(b("26100.1742") < b("26100.10000"));
    assert!(b("26100.999") < b("26100.1742"));
    assert!(b("26100.9999") < b("26200.1"));
    assert!(b("9999.9999") < b("26100.0"));
    assert_eq!(b("26100.1742"), b("26100.1742"));
}

#[test]
fn os_build_rejects_other_shapes() {
    for bad in [
        "26100",
        "a.b",
        "1.2.3",
        "",
        ".",
        "26100.",
        ".1742",
        "26100.17a2",
        "-1.5",
        "+1.5",
        " 26100.1742",
        "99999999999.1",
    ] {
        let err = bad.parse::<OsBuild>().unwrap_err();
        assert!(err.contains("26100.1742"), "{bad:?}: the error shows an example: {err}");
        assert!(serde_json::from_value::<OsBuild>(json!(bad)).is_err(), "{bad:?}");
    }
    assert!(serde_json::from_value::<OsBuild>(json!(26100.1742)).is_err(), "a JSON number is not a build");
}

proptest! {
    #[test]
    fn os_build_round_trips_and_orders_like_its_numbers(a in any::<(u32, u32)>(), b in any::<(u32, u32)>()) {
        let x = OsBuild { build: a.0, revision: a.1 };
        let y = OsBuild { build: b.0, revision: b.1 };
        prop_assert_eq!(x.to_string().parse::<OsBuild>().unwrap(), x);
        prop_assert_eq!(x.cmp(&y), a.cmp(&b));
    }
}

// --- the wire format of a machine -------------------------------------------------------------

fn spec_json() -> Value {
    json!({
        "name": "web-01",
        "platform": "azure_vm",
        "os": "windows_server_2022",
        "image": {
            "publisher": "MicrosoftWindowsServer",
            "offer": "WindowsServer",
            "sku": "2022-datacenter-azure-edition-hotpatch"
        },
        "region": "uksouth",
        "timezone": "Europe/London",
        "hotpatch_enabled": true
    })
}

#[test]
fn machine_spec_reads_the_documented_shape_with_defaults() {
    let spec: MachineSpec = serde_json::from_value(spec_json()).unwrap();
    assert_eq!(spec, azure_vm());
    assert_eq!(spec.image.as_ref().map(|i| i.kind), Some(ImageKind::Marketplace));
    assert_eq!(spec.patch_orchestration, PatchOrchestration::AutomaticByPlatform);

    let minimal: MachineSpec = serde_json::from_value(json!({
        "name": "arc-01", "platform": "arc_connected", "os": "windows_server_2025",
        "region": "westeurope", "timezone": "UTC"
    }))
    .unwrap();
    assert!(!minimal.hotpatch_enabled, "hotpatch is off unless asked for");
    assert!(minimal.labels.is_empty() && minimal.image.is_none());
}

#[test]
fn machine_spec_round_trips_through_json() {
    for spec in [azure_vm(), azure_vm_2025(), hci_vm(), arc_machine(), full_spec()] {
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(serde_json::from_value::<MachineSpec>(json).unwrap(), spec);
    }
}

#[test]
fn machine_spec_rejects_unknown_fields() {
    let mut top = spec_json();
    top["hostname"] = json!("web-01");
    let mut nested = spec_json();
    nested["image"]["version"] = json!("latest");
    let mut scale = spec_json();
    scale["scale_set"] = json!({ "name": "vmss", "orchestration_mode": "flexible", "capacity": 3 });
    for bad in [top, nested, scale] {
        let err = serde_json::from_value::<MachineSpec>(bad).unwrap_err();
        assert!(err.to_string().contains("unknown field"), "{err}");
    }
}

#[test]
fn machine_spec_rejects_wrong_enum_values() {
    let cases = [
        ("platform", json!("aws_ec2")),
        ("platform", json!("AzureVm")),
        ("os", json!("windows_server_2019")),
        ("os", json!("WindowsServer2022")),
        ("edition", json!("enterprise")),
        ("patch_orchestration", json!("manual")),
        ("scale_set", json!({ "name": "vmss", "orchestration_mode": "Uniform" })),
        ("image", json!({ "publisher": "p", "offer": "o", "sku": "s", "kind": "gallery" })),
    ];
    for (field, value) in cases {
        let mut bad = spec_json();
        bad[field] = value.clone();
        assert!(serde_json::from_value::<MachineSpec>(bad).is_err(), "{field} = {value}");
    }
}

#[test]
fn machine_spec_requires_name_platform_os_region_and_timezone() {
    for field in ["name", "platform", "os", "region", "timezone"] {
        let mut bad = spec_json();
        bad.as_object_mut().unwrap().remove(field);
        let err = serde_json::from_value::<MachineSpec>(bad).unwrap_err();
        assert!(err.to_string().contains(field), "{field}: {err}");
    }
}

// --- validation -------------------------------------------------------------------------------

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn valid_spec_has_no_errors() {
    for spec in [azure_vm(), azure_vm_2025(), hci_vm(), arc_machine(), full_spec()] {
        assert_eq!(spec.validate(), [], "{}", spec.name);
    }
    let edges = MachineSpec {
        name: "n".repeat(MAX_NAME_LEN),
        update_domain: Some(0),
        fault_domain: Some(0),
        labels: (0..MAX_LABELS).map(|i| (format!("team.example/k-{i}"), "v".repeat(256))).collect(),
        ..azure_vm()
    };
    assert_eq!(edges.validate(), []);
    let top = MachineSpec { update_domain: Some(19), fault_domain: Some(2), ..azure_vm() };
    assert_eq!(top.validate(), []);
}

#[test]
fn each_invalid_field_is_reported_by_its_path() {
    let base = full_spec;
    let cases: Vec<(&str, MachineSpec, &str)> = vec![
        ("empty name", MachineSpec { name: String::new(), ..base() }, "name"),
        ("blank name", MachineSpec { name: "   ".to_owned(), ..base() }, "name"),
        ("too-long name", MachineSpec { name: "n".repeat(MAX_NAME_LEN + 1), ..base() }, "name"),
        ("padded name", MachineSpec { name: " web-01".to_owned(), ..base() }, "name"),
        ("control character in name", MachineSpec { name: "web\n01".to_owned(), ..base() }, "name"),
        ("display-name region", MachineSpec { region: "UK South".to_owned(), ..base() }, "region"),
        ("upper-case region", MachineSpec { region: "UKSouth".to_owned(), ..base() }, "region"),
        ("empty region", MachineSpec { region: String::new(), ..base() }, "region"),
        ("too-long region", MachineSpec { region: "a".repeat(65), ..base() }, "region"),
        (
            "blank zone",
            MachineSpec { availability_zone: Some(" ".to_owned()), ..base() },
            "availability_zone",
        ),
        ("long set", MachineSpec { availability_set: Some("s".repeat(129)), ..base() }, "availability_set"),
        ("update_domain 20", MachineSpec { update_domain: Some(20), ..base() }, "update_domain"),
        ("update_domain -1", MachineSpec { update_domain: Some(-1), ..base() }, "update_domain"),
        ("fault_domain 3", MachineSpec { fault_domain: Some(3), ..base() }, "fault_domain"),
        ("fault_domain -1", MachineSpec { fault_domain: Some(-1), ..base() }, "fault_domain"),
        (
            "blank scale set name",
            MachineSpec {
                scale_set: Some(ScaleSet {
                    name: String::new(),
                    orchestration_mode: OrchestrationMode::Flexible,
                }),
                ..base()
            },
            "scale_set.name",
        ),
        (
            "empty sku",
            MachineSpec { image: Some(Image { sku: String::new(), ..marketplace("x") }), ..base() },
            "image.sku",
        ),
        (
            "label key with ':'",
            MachineSpec { labels: BTreeMap::from([("team:owner".to_owned(), "ops".to_owned())]), ..base() },
            "labels.team:owner",
        ),
        (
            "empty label key",
            MachineSpec { labels: BTreeMap::from([(String::new(), "ops".to_owned())]), ..base() },
            "labels.",
        ),
        (
            "long label value",
            MachineSpec { labels: BTreeMap::from([("env".to_owned(), "v".repeat(257))]), ..base() },
            "labels.env",
        ),
        (
            "too many labels",
            MachineSpec {
                labels: (0..=MAX_LABELS).map(|i| (format!("k{i}"), String::new())).collect(),
                ..base()
            },
            "labels",
        ),
    ];
    for (what, spec, field) in cases {
        let errors = spec.validate();
        assert_eq!(fields(&errors), [field], "{what}: {errors:?}");
        assert!(errors.iter().all(|e| !e.message.is_empty()), "{what}");
    }
}

#[test]
fn every_invalid_field_is_reported_at_once() {
    let spec = MachineSpec {
        name: String::new(),
        region: "UK South".to_owned(),
        update_domain: Some(20),
        fault_domain: Some(3),
        labels: BTreeMap::from([("a:b".to_owned(), "c".to_owned())]),
        ..azure_vm()
    };
    assert_eq!(fields(&spec.validate()), ["name", "region", "update_domain", "fault_domain", "labels.a:b"]);
}

#[test]
fn name_length_is_counted_in_characters() {
    // The limit is documented in characters; a name in a non-Latin script must not hit it at half length.
    let at_limit = MachineSpec { name: "ü".repeat(MAX_NAME_LEN), ..azure_vm() };
    assert_eq!(at_limit.validate(), []);
    let over = MachineSpec { name: "ü".repeat(MAX_NAME_LEN + 1), ..azure_vm() };
    assert_eq!(fields(&over.validate()), ["name"]);
}

#[test]
fn validation_does_not_judge_eligibility() {
    // A machine that cannot run hotpatch is still a valid fleet member (it gets monthly CUs).
    let custom =
        MachineSpec { image: Some(Image { kind: ImageKind::Custom, ..marketplace("golden") }), ..azure_vm() };
    assert_eq!(custom.validate(), []);
    let old_arc =
        MachineSpec { os_build: Some("20348.1".parse().unwrap()), vbs_enabled: Some(false), ..arc_machine() };
    assert_eq!(old_arc.validate(), []);
}

proptest! {
    #[test]
    fn validate_never_panics_and_reports_known_fields(spec in arb_spec(), name in ".{0,300}", region in ".{0,80}") {
        let spec = MachineSpec { name, region, ..spec };
        for e in spec.validate() {
            let known = ["name", "region", "availability_zone", "availability_set", "update_domain", "fault_domain",
                "scale_set.name", "image.publisher", "image.offer", "image.sku", "labels"];
            prop_assert!(known.contains(&e.field.as_str()) || e.field.starts_with("labels."), "{}", e.field);
        }
    }
}

#[test]
fn a_machine_takes_hotpatches_when_on_and_eligible_and_on_arc_only_once_enrolled() {
    use hotpatch_domain::{takes_hotpatches, Enrollment, Platform};
    assert!(takes_hotpatches(true, true, Platform::AzureVm, None));
    assert!(!takes_hotpatches(false, true, Platform::AzureVm, None), "turned off");
    assert!(!takes_hotpatches(true, false, Platform::AzureVm, None), "not eligible");
    assert!(!takes_hotpatches(true, true, Platform::ArcConnected, Some(Enrollment::Pending)), "Arc: preview");
    assert!(takes_hotpatches(true, true, Platform::ArcConnected, Some(Enrollment::Enabled)));
}
