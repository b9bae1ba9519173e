//! Hotpatch eligibility (DESIGN §1 "Eligibility"): which machines may run hotpatch, and why not.
//!
//! `assess` evaluates every rule and lists every one that fails, so an operator fixes
//! a machine in one round trip. Region availability is data passed in, not code.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use strum::IntoStaticStr;
use utoipa::ToSchema;

use crate::machine::{Edition, ImageKind, MachineSpec, OrchestrationMode, OsBuild, OsVersion, Platform};

/// Publisher of every hotpatch-capable image.
pub const PUBLISHER: &str = "MicrosoftWindowsServer";
/// Offer of every hotpatch-capable image.
pub const OFFER: &str = "WindowsServer";

/// The images hotpatch supports, per OS (compared case-insensitively).
pub const SUPPORTED_IMAGES: &[(OsVersion, &[&str])] = &[
    (
        OsVersion::WindowsServer2022,
        &[
            "2022-datacenter-azure-edition-core",
            "2022-datacenter-azure-edition-core-smalldisk",
            "2022-datacenter-azure-edition-hotpatch",
            "2022-datacenter-azure-edition-hotpatch-smalldisk",
        ],
    ),
    (
        OsVersion::WindowsServer2025,
        &[
            "2025-datacenter-azure-edition",
            "2025-datacenter-azure-edition-smalldisk",
            "2025-datacenter-azure-edition-core",
            "2025-datacenter-azure-edition-core-smalldisk",
        ],
    ),
];

/// The oldest OS build on which Arc-connected machines can take hotpatches.
pub const ARC_MIN_BUILD: OsBuild = OsBuild { build: 26100, revision: 1742 };

/// The supported SKUs of one OS.
pub fn supported_skus(os: OsVersion) -> &'static [&'static str] {
    SUPPORTED_IMAGES.iter().find(|(o, _)| *o == os).map(|(_, skus)| *skus).unwrap_or(&[])
}

/// Why a machine cannot run hotpatch. The wire names double as problem `code`s.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ToSchema, IntoStaticStr,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReasonCode {
    /// Not one of the supported marketplace images (custom, container or other SKUs).
    UnsupportedImage,
    /// Windows Server 2025 Azure Edition is not offered in the machine's region.
    RegionNotSupported,
    /// Uniform scale sets cannot use hotpatch images.
    UniformScaleSetNotSupported,
    /// Arc: only Windows Server 2025 Datacenter or Standard.
    ArcEditionNotSupported,
    /// Arc: the OS build is older than 26100.1742 or unknown.
    ArcBuildNotSupported,
    /// Arc: Virtualization-Based Security is off or unknown.
    VbsNotEnabled,
}

/// One failed rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Reason {
    /// Stable code of the rule.
    pub code: ReasonCode,
    /// What failed and what would pass.
    pub message: String,
}

/// Whether a machine can run hotpatch, and every reason it cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Eligibility {
    /// True when no rule fails.
    pub eligible: bool,
    /// Hotpatch is a preview on this platform (Arc) and must be enabled per machine.
    pub preview: bool,
    /// Every failed rule, in a stable order.
    pub reasons: Vec<Reason>,
}

/// The client error for turning hotpatch on where it cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct EligibilityRejection {
    /// The problem code: the first failed rule's.
    pub code: ReasonCode,
    /// Human-readable detail: the first failed rule's message.
    pub detail: String,
    /// Every failed rule.
    pub reasons: Vec<Reason>,
}

impl Eligibility {
    /// The error to return when hotpatch is requested on this machine; `None` when it may.
    pub fn rejection(&self) -> Option<EligibilityRejection> {
        let first = self.reasons.first()?;
        Some(EligibilityRejection {
            code: first.code,
            detail: first.message.clone(),
            reasons: self.reasons.clone(),
        })
    }
}

/// Region capabilities the rules need: the regions that offer Windows Server 2025 Azure Edition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionCapabilities {
    /// Regions (lower case) where Windows Server 2025 Azure Edition is available.
    pub ws2025_azure_edition: BTreeSet<String>,
}

impl RegionCapabilities {
    /// Capabilities from the names of the regions that offer Windows Server 2025 Azure Edition.
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(ws2025_regions: I) -> Self {
        RegionCapabilities { ws2025_azure_edition: ws2025_regions.into_iter().map(Into::into).collect() }
    }
}

/// Evaluates every eligibility rule for a machine.
pub fn assess(spec: &MachineSpec, regions: &RegionCapabilities) -> Eligibility {
    let mut reasons = Vec::new();
    let mut fail = |code, message: String| reasons.push(Reason { code, message });

    match spec.platform {
        Platform::AzureVm | Platform::AzureStackHciVm => {
            if let Some(message) = image_problem(spec) {
                fail(ReasonCode::UnsupportedImage, message);
            }
            if spec.platform == Platform::AzureVm
                && spec.os == OsVersion::WindowsServer2025
                && !regions.ws2025_azure_edition.contains(&spec.region)
            {
                fail(ReasonCode::RegionNotSupported, region_message(&spec.region, regions));
            }
        }
        Platform::ArcConnected => {
            let edition_ok = matches!(spec.edition, Some(Edition::Datacenter | Edition::Standard));
            if spec.os != OsVersion::WindowsServer2025 || !edition_ok {
                fail(
                    ReasonCode::ArcEditionNotSupported,
                    "hotpatch on Azure Arc-connected machines needs Windows Server 2025 Datacenter or Standard \
                     (os windows_server_2025, edition datacenter or standard)"
                        .to_owned(),
                );
            }
            match spec.os_build {
                Some(b) if b >= ARC_MIN_BUILD => {}
                Some(b) => fail(
                    ReasonCode::ArcBuildNotSupported,
                    format!("OS build {b} is older than {ARC_MIN_BUILD}, the first build that takes hotpatches on Arc"),
                ),
                None => fail(
                    ReasonCode::ArcBuildNotSupported,
                    format!("os_build is unknown; hotpatch on Arc needs build {ARC_MIN_BUILD} or later"),
                ),
            }
            if spec.vbs_enabled != Some(true) {
                fail(
                    ReasonCode::VbsNotEnabled,
                    "hotpatch on Arc needs Virtualization-Based Security on (vbs_enabled: true)".to_owned(),
                );
            }
        }
    }
    if let Some(ss) = &spec.scale_set {
        if ss.orchestration_mode == OrchestrationMode::Uniform {
            fail(
                ReasonCode::UniformScaleSetNotSupported,
                format!(
                    "scale set '{}' uses Uniform orchestration, which cannot use hotpatch images; use Flexible orchestration",
                    ss.name
                ),
            );
        }
    }
    Eligibility { eligible: reasons.is_empty(), preview: spec.platform == Platform::ArcConnected, reasons }
}

/// Why the machine's image is not a supported hotpatch image, if it is not.
fn image_problem(spec: &MachineSpec) -> Option<String> {
    let skus = supported_skus(spec.os);
    let os: &'static str = spec.os.into();
    let supported =
        format!("supported SKUs for {os} (publisher {PUBLISHER}, offer {OFFER}): {}", skus.join(", "));
    let Some(image) = &spec.image else {
        return Some(format!("no marketplace image given; custom images are not supported; {supported}"));
    };
    let what = match image.kind {
        ImageKind::Custom => Some("custom images are not supported".to_owned()),
        ImageKind::Container => Some("container base images are not supported".to_owned()),
        ImageKind::Marketplace => {
            let is = |a: &str, b: &str| a.eq_ignore_ascii_case(b);
            if !is(&image.publisher, PUBLISHER) || !is(&image.offer, OFFER) {
                Some(format!("image {}/{}/{} is not supported", image.publisher, image.offer, image.sku))
            } else if skus.iter().any(|s| is(s, &image.sku)) {
                None
            } else if let Some((other, _)) =
                SUPPORTED_IMAGES.iter().find(|(_, s)| s.iter().any(|s| is(s, &image.sku)))
            {
                let other: &'static str = (*other).into();
                Some(format!("SKU {} is a {other} image but os is {os}", image.sku))
            } else {
                Some(format!("SKU {} is not a hotpatch image", image.sku))
            }
        }
    }?;
    Some(format!("{what}; {supported}"))
}

fn region_message(region: &str, regions: &RegionCapabilities) -> String {
    let mut m = format!("Windows Server 2025 Azure Edition is not available in region '{region}'");
    if regions.ws2025_azure_edition.is_empty() {
        m.push_str("; no region has it yet");
    } else {
        let names: Vec<&str> = regions.ws2025_azure_edition.iter().map(String::as_str).collect();
        let _ = write!(m, "; regions that have it: {}", names.join(", "));
    }
    m
}
