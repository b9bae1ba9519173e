//! Builders shared by the domain test files: a valid machine for each platform,
//! the seeded region capabilities, and proptest strategies for arbitrary specs.

// Each test file uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;

use hotpatch_domain::eligibility::{OFFER, PUBLISHER};
use hotpatch_domain::{
    Edition, Image, ImageKind, MachineSpec, OrchestrationMode, OsBuild, OsVersion, PatchOrchestration,
    Platform, RegionCapabilities, ScaleSet, SUPPORTED_IMAGES,
};
use proptest::prelude::*;

/// The regions the service seeds as offering Windows Server 2025 Azure Edition.
pub const SEEDED_WS2025_REGIONS: [&str; 3] = ["uksouth", "eastasia", "westcentralus"];

/// Region capabilities as seeded.
pub fn seeded_regions() -> RegionCapabilities {
    RegionCapabilities::new(SEEDED_WS2025_REGIONS)
}

/// A marketplace image from the supported publisher and offer.
pub fn marketplace(sku: &str) -> Image {
    Image {
        publisher: PUBLISHER.to_owned(),
        offer: OFFER.to_owned(),
        sku: sku.to_owned(),
        kind: ImageKind::Marketplace,
    }
}

/// An eligible Azure VM: Windows Server 2022 hotpatch image, in a seeded region.
pub fn azure_vm() -> MachineSpec {
    MachineSpec {
        name: "web-01".to_owned(),
        platform: Platform::AzureVm,
        os: OsVersion::WindowsServer2022,
        image: Some(marketplace("2022-datacenter-azure-edition-hotpatch")),
        edition: None,
        os_build: None,
        vbs_enabled: None,
        region: "uksouth".to_owned(),
        availability_zone: None,
        availability_set: None,
        update_domain: None,
        fault_domain: None,
        scale_set: None,
        timezone: "Europe/London".parse().unwrap(),
        hotpatch_enabled: true,
        patch_orchestration: PatchOrchestration::AutomaticByPlatform,
        labels: BTreeMap::new(),
    }
}

/// An eligible Azure VM running Windows Server 2025 in a region that offers its Azure Edition.
pub fn azure_vm_2025() -> MachineSpec {
    MachineSpec {
        os: OsVersion::WindowsServer2025,
        image: Some(marketplace("2025-datacenter-azure-edition")),
        ..azure_vm()
    }
}

/// An eligible Azure Stack HCI VM.
pub fn hci_vm() -> MachineSpec {
    MachineSpec {
        name: "hci-01".to_owned(),
        platform: Platform::AzureStackHciVm,
        region: "onprem-hq".to_owned(),
        ..azure_vm()
    }
}

/// An eligible Azure Arc-connected machine.
pub fn arc_machine() -> MachineSpec {
    MachineSpec {
        name: "arc-01".to_owned(),
        platform: Platform::ArcConnected,
        os: OsVersion::WindowsServer2025,
        image: None,
        edition: Some(Edition::Datacenter),
        os_build: Some("26100.1742".parse().unwrap()),
        vbs_enabled: Some(true),
        region: "westeurope".to_owned(),
        patch_orchestration: PatchOrchestration::ThirdParty,
        ..azure_vm()
    }
}

/// A scale set with the given orchestration mode.
pub fn scale_set(mode: OrchestrationMode) -> Option<ScaleSet> {
    Some(ScaleSet { name: "vmss-web".to_owned(), orchestration_mode: mode })
}

/// Every supported SKU with its OS.
pub fn all_supported_skus() -> Vec<(OsVersion, &'static str)> {
    SUPPORTED_IMAGES.iter().flat_map(|(os, skus)| skus.iter().map(move |s| (*os, *s))).collect()
}

/// Any platform.
pub fn arb_platform() -> impl Strategy<Value = Platform> {
    prop_oneof![Just(Platform::AzureVm), Just(Platform::AzureStackHciVm), Just(Platform::ArcConnected)]
}

/// Any OS.
pub fn arb_os() -> impl Strategy<Value = OsVersion> {
    prop_oneof![Just(OsVersion::WindowsServer2022), Just(OsVersion::WindowsServer2025)]
}

/// An image that is often, but not always, a supported one.
pub fn arb_image() -> impl Strategy<Value = Image> {
    let skus: Vec<String> = all_supported_skus().into_iter().map(|(_, s)| s.to_owned()).collect();
    let sku = prop_oneof![
        3 => proptest::sample::select(skus),
        1 => Just("2019-datacenter".to_owned()),
        1 => "[a-z0-9-]{1,40}",
    ];
    let publisher = prop_oneof![3 => Just(PUBLISHER.to_owned()), 1 => "[A-Za-z]{1,24}"];
    let offer = prop_oneof![3 => Just(OFFER.to_owned()), 1 => "[A-Za-z]{1,24}"];
    let kind = prop_oneof![
        4 => Just(ImageKind::Marketplace),
        1 => Just(ImageKind::Custom),
        1 => Just(ImageKind::Container),
    ];
    (publisher, offer, sku, kind).prop_map(|(publisher, offer, sku, kind)| Image {
        publisher,
        offer,
        sku,
        kind,
    })
}

/// Any machine spec, biased towards the values the rules look at.
pub fn arb_spec() -> impl Strategy<Value = MachineSpec> {
    let edition = proptest::option::of(prop_oneof![Just(Edition::Datacenter), Just(Edition::Standard)]);
    let build = proptest::option::of(
        (prop_oneof![Just(26100u32), 20348u32..26300], 0u32..3000)
            .prop_map(|(build, revision)| OsBuild { build, revision }),
    );
    let region = prop_oneof![
        proptest::sample::select(SEEDED_WS2025_REGIONS.to_vec()).prop_map(str::to_owned),
        "[a-z]{1,12}",
    ];
    let scale_set = proptest::option::of(
        prop_oneof![Just(OrchestrationMode::Flexible), Just(OrchestrationMode::Uniform)]
            .prop_map(|orchestration_mode| ScaleSet { name: "vmss".to_owned(), orchestration_mode }),
    );
    (
        arb_platform(),
        arb_os(),
        proptest::option::of(arb_image()),
        edition,
        build,
        proptest::option::of(any::<bool>()),
        region,
        scale_set,
        any::<bool>(),
    )
        .prop_map(
            |(platform, os, image, edition, os_build, vbs_enabled, region, scale_set, hotpatch_enabled)| {
                MachineSpec {
                    platform,
                    os,
                    image,
                    edition,
                    os_build,
                    vbs_enabled,
                    region,
                    scale_set,
                    hotpatch_enabled,
                    ..azure_vm()
                }
            },
        )
}
