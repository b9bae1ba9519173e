//! The machine model: what an operator registers and what the service derives from it.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use chrono_tz::Tz;
use serde::{Deserialize, Deserializer, Serialize};
use strum::{EnumString, IntoStaticStr};

use crate::object_only::ObjectOnly;
use utoipa::ToSchema;

mod patch;

pub use patch::MachinePatch;

/// Where a machine runs; it decides which eligibility rules apply.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Platform {
    /// An Azure virtual machine.
    AzureVm,
    /// A VM created on Azure Stack HCI from a marketplace image.
    AzureStackHciVm,
    /// A machine outside Azure connected through Azure Arc.
    ArcConnected,
}

/// The Windows Server release a machine runs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    ToSchema,
    IntoStaticStr,
    EnumString,
)]
pub enum OsVersion {
    /// Windows Server 2022.
    #[serde(rename = "windows_server_2022")]
    #[strum(serialize = "windows_server_2022")]
    WindowsServer2022,
    /// Windows Server 2025.
    #[serde(rename = "windows_server_2025")]
    #[strum(serialize = "windows_server_2025")]
    WindowsServer2025,
}

/// Windows Server edition (relevant for Arc-connected machines).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Edition {
    /// Datacenter edition.
    Datacenter,
    /// Standard edition.
    Standard,
}

/// Where an image comes from. Only marketplace images can be hotpatch images.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
    IntoStaticStr,
    EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ImageKind {
    /// A marketplace image named by publisher, offer and SKU.
    #[default]
    Marketplace,
    /// A custom (captured or gallery) image.
    Custom,
    /// A container base image.
    Container,
}

/// The image a VM was created from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // for the schema: the wire shape refuses unknown fields
pub struct Image {
    /// Image publisher, e.g. `MicrosoftWindowsServer`.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub publisher: String,
    /// Image offer, e.g. `WindowsServer`.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub offer: String,
    /// Image SKU, e.g. `2022-datacenter-azure-edition-hotpatch`.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub sku: String,
    /// Marketplace (default), custom or container image.
    #[serde(default)]
    pub kind: ImageKind,
}

/// The wire shape of [`Image`], read only from a JSON object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "Image")]
struct ImageFields {
    publisher: String,
    offer: String,
    sku: String,
    #[serde(default)]
    kind: ImageKind,
}

impl<'de> Deserialize<'de> for Image {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = ImageFields::deserialize(ObjectOnly(d))?;
        Ok(Image { publisher: f.publisher, offer: f.offer, sku: f.sku, kind: f.kind })
    }
}

/// Orchestration mode of a virtual machine scale set.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum OrchestrationMode {
    /// Flexible orchestration: hotpatch images are allowed.
    Flexible,
    /// Uniform orchestration: hotpatch images are not allowed.
    Uniform,
}

/// The scale set a VM belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[serde(deny_unknown_fields)] // for the schema: the wire shape refuses unknown fields
pub struct ScaleSet {
    /// Scale set name.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub name: String,
    /// Its orchestration mode.
    pub orchestration_mode: OrchestrationMode,
}

/// The wire shape of [`ScaleSet`], read only from a JSON object.
#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename = "ScaleSet")]
struct ScaleSetFields {
    name: String,
    orchestration_mode: OrchestrationMode,
}

impl<'de> Deserialize<'de> for ScaleSet {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let f = ScaleSetFields::deserialize(ObjectOnly(d))?;
        Ok(ScaleSet { name: f.name, orchestration_mode: f.orchestration_mode })
    }
}

/// Who drives a machine's updates; only `automatic_by_platform` machines get automatic installs.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Default,
    Serialize,
    Deserialize,
    ToSchema,
    IntoStaticStr,
    EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum PatchOrchestration {
    /// Automatic VM guest patching (the default for supported images).
    #[default]
    AutomaticByPlatform,
    /// Azure Update Manager.
    UpdateManager,
    /// Group Policy.
    GroupPolicy,
    /// SCONFIG on the machine.
    Sconfig,
    /// A third-party tool.
    ThirdParty,
}

/// Hotpatch enrollment of an Arc-connected machine (preview, enabled per machine).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Enrollment {
    /// Hotpatch was never requested.
    NotEnrolled,
    /// Requested; waiting for the machine to confirm.
    Pending,
    /// Confirmed by the machine.
    Enabled,
    /// Turned off after it was enabled.
    Disabled,
    /// Turned off while still pending.
    Canceled,
}

impl Enrollment {
    /// The state after an operator asks for hotpatch on (`enable`) or off.
    ///
    /// Enrollment is a request to the machine, so turning it on only ever reaches
    /// `pending`; the machine's own confirmation moves it to `enabled` later.
    pub fn requested(self, enable: bool) -> Enrollment {
        match (self, enable) {
            (Enrollment::Pending | Enrollment::Enabled, true) => self,
            (_, true) => Enrollment::Pending,
            (Enrollment::Pending, false) => Enrollment::Canceled,
            (Enrollment::Enabled, false) => Enrollment::Disabled,
            (other, false) => other,
        }
    }
}

/// Whether a machine takes hotpatches: hotpatch turned on, the machine eligible, and, on Azure
/// Arc (a preview there), its enrollment enabled.
pub fn takes_hotpatches(
    enabled: bool,
    eligible: bool,
    platform: Platform,
    enrollment: Option<Enrollment>,
) -> bool {
    enabled && eligible && (platform != Platform::ArcConnected || enrollment == Some(Enrollment::Enabled))
}

/// A machine's hotpatch status as portals and filters see it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema, IntoStaticStr, EnumString,
)]
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum HotpatchStatus {
    /// Eligible and turned on.
    Enabled,
    /// Eligible but turned off.
    Disabled,
    /// Not eligible: gets monthly cumulative updates with a reboot.
    NotEligible,
    /// On, but the machine must install the current baseline first.
    NeedsBaseline,
}

impl HotpatchStatus {
    /// The status that follows from eligibility and the operator's switch alone
    /// (the cycle engine refines `enabled` into `needs_baseline`).
    pub fn from_flags(eligible: bool, enabled: bool) -> HotpatchStatus {
        match (eligible, enabled) {
            (false, _) => HotpatchStatus::NotEligible,
            (true, true) => HotpatchStatus::Enabled,
            (true, false) => HotpatchStatus::Disabled,
        }
    }
}

/// An IANA time zone name, parsed on the way in so that every stored machine has a valid one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Timezone(pub Tz);

impl Timezone {
    /// The IANA name.
    pub fn name(&self) -> &'static str {
        self.0.name()
    }
}

impl FromStr for Timezone {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tz::from_str(s).map(Timezone).map_err(|_| {
            format!("'{s}' is not an IANA time zone name (e.g. Europe/Berlin, America/New_York, UTC)")
        })
    }
}

impl fmt::Display for Timezone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

serde_as_string!(Timezone);

/// A Windows build number such as `26100.1742` (build and revision), ordered numerically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OsBuild {
    /// The build, e.g. 26100.
    pub build: u32,
    /// The revision (update build revision), e.g. 1742.
    pub revision: u32,
}

impl FromStr for OsBuild {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not an OS build of the form <build>.<revision>, e.g. 26100.1742");
        let (b, r) = s.split_once('.').ok_or_else(bad)?;
        let digits = |p: &str| !p.is_empty() && p.bytes().all(|c| c.is_ascii_digit());
        if !digits(b) || !digits(r) {
            return Err(bad());
        }
        Ok(OsBuild { build: b.parse().map_err(|_| bad())?, revision: r.parse().map_err(|_| bad())? })
    }
}

impl fmt::Display for OsBuild {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.build, self.revision)
    }
}

serde_as_string!(OsBuild);

/// A machine as an operator registers it (`POST /v1/machines`, one item of an import).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MachineSpec {
    /// Unique name in the fleet (1–253 characters).
    #[schema(
        min_length = 1,
        max_length = 253,
        pattern = "^[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]([^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff])?$"
    )]
    pub name: String,
    /// Where the machine runs.
    pub platform: Platform,
    /// The Windows Server release.
    pub os: OsVersion,
    /// Marketplace image (Azure VMs and Azure Stack HCI VMs); absent for Arc.
    #[serde(default)]
    pub image: Option<Image>,
    /// Edition (Arc-connected machines).
    #[serde(default)]
    pub edition: Option<Edition>,
    /// OS build, e.g. `26100.1742`.
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "26100.1742", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub os_build: Option<OsBuild>,
    /// Whether Virtualization-Based Security is on (Arc-connected machines).
    #[serde(default)]
    pub vbs_enabled: Option<bool>,
    /// Region, e.g. `uksouth` (lower case letters, digits and dashes).
    #[schema(pattern = "^[a-z0-9][a-z0-9-]{0,63}$")]
    pub region: String,
    /// Availability zone within the region.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub availability_zone: Option<String>,
    /// Availability set name.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub availability_set: Option<String>,
    /// Update domain within the availability set (0–19).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 19)]
    pub update_domain: Option<i32>,
    /// Fault domain within the availability set (0–2).
    #[serde(default)]
    #[schema(minimum = 0, maximum = 2)]
    pub fault_domain: Option<i32>,
    /// Scale set membership.
    #[serde(default)]
    pub scale_set: Option<ScaleSet>,
    /// IANA time zone of the machine, e.g. `Europe/Berlin` (its off-peak hours are local).
    #[schema(value_type = String, example = "Europe/Berlin")]
    pub timezone: Timezone,
    /// Whether hotpatch is requested for this machine.
    #[serde(default)]
    pub hotpatch_enabled: bool,
    /// Who drives the machine's updates.
    #[serde(default)]
    pub patch_orchestration: PatchOrchestration,
    /// Free-form labels (`label=k:v` filters and selectors use them).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}
