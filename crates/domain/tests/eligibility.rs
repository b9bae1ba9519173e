//! The eligibility rules of DESIGN §1, one test per rule, plus properties over arbitrary machines.

#![allow(clippy::unwrap_used)]

mod support;

use hotpatch_domain::eligibility::{ARC_MIN_BUILD, OFFER, PUBLISHER};
use hotpatch_domain::{
    assess, supported_skus, Edition, Eligibility, HotpatchStatus, Image, ImageKind, MachineSpec,
    OrchestrationMode, OsVersion, Platform, ReasonCode, RegionCapabilities,
};
use proptest::prelude::*;
use support::*;

fn codes(e: &Eligibility) -> Vec<ReasonCode> {
    e.reasons.iter().map(|r| r.code).collect()
}

fn assess_seeded(spec: &MachineSpec) -> Eligibility {
    assess(spec, &seeded_regions())
}

/// Alternates the case of the letters of `s`, starting with upper case.
fn zigzag_case(s: &str) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if i % 2 == 0 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

// --- supported images -------------------------------------------------------------------------

#[test]
fn each_supported_azure_edition_sku_is_eligible_on_azure_vm() {
    let skus = all_supported_skus();
    assert_eq!(skus.len(), 8, "DESIGN §1 lists four SKUs per OS");
    for (os, sku) in skus {
        for image in [
            marketplace(sku),
            Image {
                publisher: PUBLISHER.to_ascii_lowercase(),
                offer: OFFER.to_ascii_uppercase(),
                sku: sku.to_ascii_uppercase(),
                kind: ImageKind::Marketplace,
            },
            Image {
                publisher: zigzag_case(PUBLISHER),
                offer: zigzag_case(OFFER),
                sku: zigzag_case(sku),
                kind: ImageKind::Marketplace,
            },
        ] {
            let spec = MachineSpec { os, image: Some(image.clone()), ..azure_vm() };
            let e = assess_seeded(&spec);
            assert!(e.eligible, "{os:?} {image:?}: {:?}", e.reasons);
            assert!(!e.preview, "hotpatch is generally available on Azure VMs");
        }
    }
}

#[test]
fn supported_images_are_eligible_on_azure_stack_hci_vms() {
    for (os, sku) in all_supported_skus() {
        let spec = MachineSpec { os, image: Some(marketplace(sku)), ..hci_vm() };
        let e = assess_seeded(&spec);
        assert!(e.eligible, "{os:?} {sku}: {:?}", e.reasons);
        assert!(!e.preview);
    }
}

// --- unsupported images -----------------------------------------------------------------------

#[test]
fn custom_images_are_not_supported() {
    for platform in [Platform::AzureVm, Platform::AzureStackHciVm] {
        // Even a custom image captured from a supported SKU keeps its name but is not a hotpatch image.
        let image =
            Image { kind: ImageKind::Custom, ..marketplace("2022-datacenter-azure-edition-hotpatch") };
        let e = assess_seeded(&MachineSpec { platform, image: Some(image), ..azure_vm() });
        assert!(!e.eligible);
        assert_eq!(codes(&e), [ReasonCode::UnsupportedImage], "{platform:?}");
        assert!(e.reasons[0].message.contains("custom images are not supported"), "{}", e.reasons[0].message);
    }
}

#[test]
fn container_images_are_not_supported() {
    for platform in [Platform::AzureVm, Platform::AzureStackHciVm] {
        let image = Image { kind: ImageKind::Container, ..marketplace("2022-datacenter-azure-edition-core") };
        let e = assess_seeded(&MachineSpec { platform, image: Some(image), ..azure_vm() });
        assert!(!e.eligible);
        assert_eq!(codes(&e), [ReasonCode::UnsupportedImage], "{platform:?}");
        assert!(
            e.reasons[0].message.contains("container base images are not supported"),
            "{}",
            e.reasons[0].message
        );
    }
}

#[test]
fn missing_image_is_not_supported() {
    for platform in [Platform::AzureVm, Platform::AzureStackHciVm] {
        let e = assess_seeded(&MachineSpec { platform, image: None, ..azure_vm() });
        assert!(!e.eligible);
        assert_eq!(codes(&e), [ReasonCode::UnsupportedImage], "{platform:?}");
        assert!(e.reasons[0].message.contains("no marketplace image"), "{}", e.reasons[0].message);
    }
}

#[test]
fn other_publisher_offer_or_sku_is_not_supported() {
    let good = "2022-datacenter-azure-edition-hotpatch";
    let cases = [
        ("MicrosoftWindowsDesktop", OFFER, good),
        ("Canonical", OFFER, good),
        (PUBLISHER, "WindowsServerSemiAnnual", good),
        (PUBLISHER, "windows-server", good),
        (PUBLISHER, OFFER, "2022-datacenter"),
        (PUBLISHER, OFFER, "2022-datacenter-azure-edition"),
        (PUBLISHER, OFFER, "2019-datacenter-core"),
        (PUBLISHER, OFFER, "2022-datacenter-azure-edition-hotpatch-smalldisk-g2"),
        (PUBLISHER, OFFER, " 2022-datacenter-azure-edition-hotpatch"),
        (PUBLISHER, OFFER, ""),
        ("", "", ""),
    ];
    for (publisher, offer, sku) in cases {
        let image = Image {
            publisher: publisher.into(),
            offer: offer.into(),
            sku: sku.into(),
            kind: ImageKind::Marketplace,
        };
        let e = assess_seeded(&MachineSpec { image: Some(image), ..azure_vm() });
        assert!(!e.eligible, "{publisher}/{offer}/{sku} must not be eligible");
        assert_eq!(codes(&e), [ReasonCode::UnsupportedImage], "{publisher}/{offer}/{sku}");
    }
}

#[test]
fn sku_of_the_other_os_is_not_supported() {
    for (os, sku) in all_supported_skus() {
        let other = match os {
            OsVersion::WindowsServer2022 => OsVersion::WindowsServer2025,
            OsVersion::WindowsServer2025 => OsVersion::WindowsServer2022,
        };
        // HCI, so that the 2025 region rule stays out of the picture.
        let e = assess_seeded(&MachineSpec { os: other, image: Some(marketplace(sku)), ..hci_vm() });
        assert_eq!(codes(&e), [ReasonCode::UnsupportedImage], "{sku} on {other:?}");
        let os_name: &str = os.into();
        assert!(e.reasons[0].message.contains(os_name), "names the image's own OS: {}", e.reasons[0].message);
    }
}

#[test]
fn unsupported_image_lists_the_supported_skus_of_that_os() {
    for os in [OsVersion::WindowsServer2022, OsVersion::WindowsServer2025] {
        let e = assess_seeded(&MachineSpec { os, image: Some(marketplace("2019-datacenter")), ..hci_vm() });
        let message = &e.reasons[0].message;
        for sku in supported_skus(os) {
            assert!(message.contains(sku), "{os:?}: {message} should list {sku}");
        }
        let (_, other_skus) = hotpatch_domain::SUPPORTED_IMAGES.iter().find(|(o, _)| *o != os).unwrap();
        for sku in *other_skus {
            assert!(!message.contains(sku), "{os:?}: {message} should not list the other OS's {sku}");
        }
    }
}

// --- Windows Server 2025 Azure Edition region availability ------------------------------------

#[test]
fn windows_server_2025_on_azure_vm_needs_a_region_with_azure_edition() {
    for region in SEEDED_WS2025_REGIONS {
        let e = assess_seeded(&MachineSpec { region: region.to_owned(), ..azure_vm_2025() });
        assert!(e.eligible, "{region}: {:?}", e.reasons);
    }

    let e = assess_seeded(&MachineSpec { region: "westeurope".to_owned(), ..azure_vm_2025() });
    assert!(!e.eligible);
    assert_eq!(codes(&e), [ReasonCode::RegionNotSupported]);
    let rejection = e.rejection().unwrap();
    assert_eq!(rejection.code, ReasonCode::RegionNotSupported);
    assert!(rejection.detail.contains("westeurope"), "names the machine's region: {}", rejection.detail);
    for region in SEEDED_WS2025_REGIONS {
        assert!(rejection.detail.contains(region), "names {region}: {}", rejection.detail);
    }

    // The list is data: a region added at run time counts at once.
    let regions = RegionCapabilities::new(["westeurope"]);
    assert!(assess(&MachineSpec { region: "westeurope".to_owned(), ..azure_vm_2025() }, &regions).eligible);

    // No region at all: still a clear message.
    let e = assess(&azure_vm_2025(), &RegionCapabilities::default());
    assert_eq!(codes(&e), [ReasonCode::RegionNotSupported]);
    assert!(e.reasons[0].message.contains("no region"), "{}", e.reasons[0].message);
}

#[test]
fn region_rule_does_not_apply_to_hci_or_to_2022() {
    let nowhere = RegionCapabilities::default();
    let hci_2025 = MachineSpec {
        os: OsVersion::WindowsServer2025,
        image: Some(marketplace("2025-datacenter-azure-edition-core")),
        ..hci_vm()
    };
    assert!(assess(&hci_2025, &nowhere).eligible);
    let azure_2022 = MachineSpec { region: "westeurope".to_owned(), ..azure_vm() };
    assert!(assess(&azure_2022, &nowhere).eligible);
    // Nor to Arc, whose machines are not in Azure regions.
    assert!(assess(&arc_machine(), &nowhere).eligible);
}

// --- scale sets -------------------------------------------------------------------------------

#[test]
fn uniform_scale_set_is_not_supported() {
    for base in [azure_vm(), azure_vm_2025(), hci_vm()] {
        let e = assess_seeded(&MachineSpec { scale_set: scale_set(OrchestrationMode::Uniform), ..base });
        assert!(!e.eligible);
        assert_eq!(codes(&e), [ReasonCode::UniformScaleSetNotSupported]);
        assert!(e.reasons[0].message.contains("vmss-web"), "{}", e.reasons[0].message);
        assert!(e.reasons[0].message.contains("Flexible"), "says what would pass: {}", e.reasons[0].message);
    }
}

#[test]
fn flexible_scale_set_is_supported() {
    for base in [azure_vm(), azure_vm_2025(), hci_vm()] {
        let e = assess_seeded(&MachineSpec { scale_set: scale_set(OrchestrationMode::Flexible), ..base });
        assert!(e.eligible, "{:?}", e.reasons);
    }
}

// --- Azure Arc --------------------------------------------------------------------------------

#[test]
fn arc_needs_windows_server_2025_datacenter_or_standard() {
    let cases = [
        (OsVersion::WindowsServer2025, Some(Edition::Datacenter), true),
        (OsVersion::WindowsServer2025, Some(Edition::Standard), true),
        (OsVersion::WindowsServer2025, None, false),
        (OsVersion::WindowsServer2022, Some(Edition::Datacenter), false),
        (OsVersion::WindowsServer2022, Some(Edition::Standard), false),
        (OsVersion::WindowsServer2022, None, false),
    ];
    for (os, edition, eligible) in cases {
        let e = assess_seeded(&MachineSpec { os, edition, ..arc_machine() });
        assert_eq!(e.eligible, eligible, "{os:?} {edition:?}: {:?}", e.reasons);
        let expected: &[ReasonCode] = if eligible { &[] } else { &[ReasonCode::ArcEditionNotSupported] };
        assert_eq!(codes(&e), expected, "{os:?} {edition:?}");
    }
}

#[test]
fn arc_needs_build_26100_1742_or_later() {
    assert_eq!(ARC_MIN_BUILD.to_string(), "26100.1742");
    let cases = [
        ("20348.2700", false),
        ("26099.9999", false),
        ("26100.0", false),
        ("26100.174", false),
        ("26100.1741", false),
        ("26100.1742", true),
        ("26100.1743", true),
        ("26100.2000", true),
        ("26100.10000", true),
        ("26200.1", true),
    ];
    for (build, eligible) in cases {
        let e = assess_seeded(&MachineSpec { os_build: Some(build.parse().unwrap()), ..arc_machine() });
        assert_eq!(e.eligible, eligible, "{build}: {:?}", e.reasons);
        if !eligible {
            assert_eq!(codes(&e), [ReasonCode::ArcBuildNotSupported], "{build}");
            assert!(e.reasons[0].message.contains(build), "{}", e.reasons[0].message);
        }
    }
    // An unknown build is not assumed to be recent enough.
    let e = assess_seeded(&MachineSpec { os_build: None, ..arc_machine() });
    assert_eq!(codes(&e), [ReasonCode::ArcBuildNotSupported]);
}

#[test]
fn arc_needs_vbs() {
    for (vbs, eligible) in [(Some(true), true), (Some(false), false), (None, false)] {
        let e = assess_seeded(&MachineSpec { vbs_enabled: vbs, ..arc_machine() });
        assert_eq!(e.eligible, eligible, "{vbs:?}");
        let expected: &[ReasonCode] = if eligible { &[] } else { &[ReasonCode::VbsNotEnabled] };
        assert_eq!(codes(&e), expected, "{vbs:?}");
    }
}

#[test]
fn arc_eligibility_is_a_preview() {
    let e = assess_seeded(&arc_machine());
    assert!(e.eligible && e.preview);
    // Still a preview when not eligible: the flag describes the platform, not the outcome.
    let e = assess_seeded(&MachineSpec { vbs_enabled: Some(false), ..arc_machine() });
    assert!(!e.eligible && e.preview);
    for spec in [azure_vm(), azure_vm_2025(), hci_vm()] {
        assert!(!assess_seeded(&spec).preview, "{:?}", spec.platform);
    }
}

// --- the result as a whole --------------------------------------------------------------------

#[test]
fn every_failing_rule_is_listed_not_just_the_first() {
    let azure = MachineSpec {
        image: Some(Image { kind: ImageKind::Custom, ..marketplace("my-golden-image") }),
        region: "westeurope".to_owned(),
        scale_set: scale_set(OrchestrationMode::Uniform),
        ..azure_vm_2025()
    };
    let e = assess_seeded(&azure);
    assert!(!e.eligible);
    assert_eq!(
        codes(&e),
        [
            ReasonCode::UnsupportedImage,
            ReasonCode::RegionNotSupported,
            ReasonCode::UniformScaleSetNotSupported
        ]
    );

    let arc = MachineSpec {
        os: OsVersion::WindowsServer2022,
        edition: None,
        os_build: Some("20348.2700".parse().unwrap()),
        vbs_enabled: None,
        scale_set: scale_set(OrchestrationMode::Uniform),
        ..arc_machine()
    };
    let e = assess_seeded(&arc);
    assert_eq!(
        codes(&e),
        [
            ReasonCode::ArcEditionNotSupported,
            ReasonCode::ArcBuildNotSupported,
            ReasonCode::VbsNotEnabled,
            ReasonCode::UniformScaleSetNotSupported,
        ]
    );
    assert!(e.reasons.iter().all(|r| !r.message.is_empty()));
}

#[test]
fn rejection_carries_the_first_reasons_code() {
    let spec = MachineSpec {
        image: Some(marketplace("2019-datacenter")),
        region: "westeurope".to_owned(),
        ..azure_vm_2025()
    };
    let e = assess_seeded(&spec);
    let rejection = e.rejection().unwrap();
    assert_eq!(rejection.code, e.reasons[0].code);
    assert_eq!(rejection.code, ReasonCode::UnsupportedImage);
    assert_eq!(rejection.detail, e.reasons[0].message);
    assert_eq!(rejection.reasons, e.reasons);
    assert_eq!(rejection.to_string(), rejection.detail);
}

#[test]
fn reason_codes_are_the_problem_codes_of_the_api() {
    let cases = [
        (ReasonCode::UnsupportedImage, "unsupported_image"),
        (ReasonCode::RegionNotSupported, "region_not_supported"),
        (ReasonCode::UniformScaleSetNotSupported, "uniform_scale_set_not_supported"),
        (ReasonCode::ArcEditionNotSupported, "arc_edition_not_supported"),
        (ReasonCode::ArcBuildNotSupported, "arc_build_not_supported"),
        (ReasonCode::VbsNotEnabled, "vbs_not_enabled"),
    ];
    for (code, wire) in cases {
        let s: &'static str = code.into();
        assert_eq!(s, wire);
        assert_eq!(serde_json::to_value(code).unwrap(), wire);
    }
}

#[test]
fn eligible_machine_has_no_rejection() {
    for spec in [azure_vm(), azure_vm_2025(), hci_vm(), arc_machine()] {
        let e = assess_seeded(&spec);
        assert!(e.eligible, "{:?}: {:?}", spec.platform, e.reasons);
        assert!(e.reasons.is_empty());
        assert_eq!(e.rejection(), None);
    }
}

#[test]
fn eligibility_serializes_as_the_api_shape() {
    let e = assess_seeded(&MachineSpec { vbs_enabled: Some(false), ..arc_machine() });
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(json["eligible"], false);
    assert_eq!(json["preview"], true);
    assert_eq!(json["reasons"][0]["code"], "vbs_not_enabled");
    assert!(json["reasons"][0]["message"].is_string());
}

// --- hotpatch status --------------------------------------------------------------------------

#[test]
fn hotpatch_off_on_any_image_is_accepted_as_disabled_or_not_eligible() {
    let unsupported = [
        None,
        Some(Image { kind: ImageKind::Custom, ..marketplace("golden") }),
        Some(Image { kind: ImageKind::Container, ..marketplace("ltsc2022") }),
        Some(marketplace("2019-datacenter")),
        Some(Image { publisher: "Canonical".into(), ..marketplace("22_04-lts") }),
    ];
    for image in unsupported {
        let spec = MachineSpec { image: image.clone(), hotpatch_enabled: false, ..azure_vm() };
        let e = assess_seeded(&spec);
        assert!(!e.eligible);
        // Such a machine stays in the fleet on monthly cumulative updates.
        assert_eq!(
            HotpatchStatus::from_flags(e.eligible, spec.hotpatch_enabled),
            HotpatchStatus::NotEligible,
            "{image:?}"
        );
    }
    for (os, sku) in all_supported_skus() {
        let spec = MachineSpec { os, image: Some(marketplace(sku)), hotpatch_enabled: false, ..hci_vm() };
        let e = assess_seeded(&spec);
        assert_eq!(
            HotpatchStatus::from_flags(e.eligible, spec.hotpatch_enabled),
            HotpatchStatus::Disabled,
            "{sku}"
        );
    }
}

#[test]
fn hotpatch_status_follows_eligibility_then_the_switch() {
    let cases = [
        (true, true, HotpatchStatus::Enabled),
        (true, false, HotpatchStatus::Disabled),
        (false, true, HotpatchStatus::NotEligible),
        (false, false, HotpatchStatus::NotEligible),
    ];
    for (eligible, enabled, status) in cases {
        assert_eq!(
            HotpatchStatus::from_flags(eligible, enabled),
            status,
            "eligible {eligible}, enabled {enabled}"
        );
    }
}

// --- properties -------------------------------------------------------------------------------

/// Changes the case of the letters of `s` where the bits of `mask` say so.
fn recase(s: &str, mask: u64) -> String {
    s.chars()
        .enumerate()
        .map(|(i, c)| if mask >> (i % 64) & 1 == 1 { c.to_ascii_uppercase() } else { c.to_ascii_lowercase() })
        .collect()
}

proptest! {
    #[test]
    fn eligible_iff_no_reasons(spec in arb_spec()) {
        let e = assess_seeded(&spec);
        prop_assert_eq!(e.eligible, e.reasons.is_empty());
        prop_assert_eq!(e.rejection().is_none(), e.eligible);
        prop_assert_eq!(e.preview, spec.platform == Platform::ArcConnected);
    }

    #[test]
    fn changing_case_of_image_fields_never_changes_eligibility(spec in arb_spec(), masks in any::<[u64; 3]>()) {
        let mut recased = spec.clone();
        if let Some(image) = &mut recased.image {
            image.publisher = recase(&image.publisher, masks[0]);
            image.offer = recase(&image.offer, masks[1]);
            image.sku = recase(&image.sku, masks[2]);
        }
        let (a, b) = (assess_seeded(&spec), assess_seeded(&recased));
        prop_assert_eq!(a.eligible, b.eligible);
        prop_assert_eq!(codes(&a), codes(&b));
    }

    #[test]
    fn assess_is_deterministic(spec in arb_spec()) {
        prop_assert_eq!(assess_seeded(&spec), assess_seeded(&spec.clone()));
    }

    #[test]
    fn each_rule_is_reported_at_most_once(spec in arb_spec()) {
        let mut seen = codes(&assess_seeded(&spec));
        let n = seen.len();
        seen.sort();
        seen.dedup();
        prop_assert_eq!(seen.len(), n);
    }

    #[test]
    fn fields_a_platform_does_not_use_never_change_its_eligibility(spec in arb_spec(), other in arb_spec()) {
        // Arc ignores the image and the region; Azure and HCI ignore edition, build and VBS.
        let mut changed = spec.clone();
        if spec.platform == Platform::ArcConnected {
            changed.image = other.image;
            changed.region = other.region;
        } else {
            changed.edition = other.edition;
            changed.os_build = other.os_build;
            changed.vbs_enabled = other.vbs_enabled;
        }
        prop_assert_eq!(assess_seeded(&spec), assess_seeded(&changed));
    }
}
