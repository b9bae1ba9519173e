//! The release catalog's types (DESIGN §1 "Cycle", §3 "Release"): baselines and hotpatches
//! by OS and month, the updates hotpatch does not cover, and their classifications.
//!
//! The publishing rules and the cycle engine that read these live in `hotpatch-scheduler`; what
//! an assessment's installed KBs say of a machine's place in the catalog is [`InstalledReleases`].

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Utc};
use serde::{Deserialize, Serialize};
use strum::{EnumString, IntoStaticStr};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::machine::{OsBuild, OsVersion};

mod installed;

pub use installed::InstalledReleases;

/// What a catalog release is.
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
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum ReleaseKind {
    /// A baseline: the month's cumulative update; requires a reboot.
    Baseline,
    /// A hotpatch on top of its cycle's baseline; no reboot.
    Hotpatch,
}

impl ReleaseKind {
    /// Whether installing a release of this kind requires a reboot.
    pub fn requires_reboot(self) -> bool {
        matches!(self, ReleaseKind::Baseline)
    }
}

/// A calendar month, written `YYYY-MM` on the wire. Ordered chronologically.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Month {
    /// Year, 2000–9999.
    year: i32,
    /// Month of the year, 1–12.
    month: u32,
}

impl Month {
    /// The month, when `year` is 2000–9999 and `month` 1–12.
    pub fn new(year: i32, month: u32) -> Option<Month> {
        ((2000..=9999).contains(&year) && (1..=12).contains(&month)).then_some(Month { year, month })
    }

    /// The month `now` falls in (UTC).
    pub fn of(now: DateTime<Utc>) -> Month {
        Month { year: now.year().clamp(2000, 9999), month: now.month() }
    }

    /// The year.
    pub fn year(self) -> i32 {
        self.year
    }

    /// The month of the year, 1–12.
    pub fn month(self) -> u32 {
        self.month
    }

    /// Months since January 2000 (a linear index, for arithmetic).
    pub fn index(self) -> i64 {
        i64::from(self.year - 2000) * 12 + i64::from(self.month) - 1
    }

    /// The month `n` months later (earlier when negative); `None` outside 2000–9999.
    pub fn plus(self, n: i64) -> Option<Month> {
        let i = self.index().checked_add(n)?;
        if i < 0 {
            return None;
        }
        let year = i32::try_from(2000 + i / 12).ok()?;
        Month::new(year, u32::try_from(i % 12).ok()? + 1)
    }

    /// Months from `earlier` to `self` (negative when `earlier` is later).
    pub fn since(self, earlier: Month) -> i64 {
        self.index() - earlier.index()
    }
}

impl FromStr for Month {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("'{s}' is not a month of the form YYYY-MM (2000-01 to 9999-12)");
        let (y, m) = s.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 || !(y.bytes().chain(m.bytes())).all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        Month::new(y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?).ok_or_else(bad)
    }
}

impl fmt::Display for Month {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year, self.month)
    }
}

serde_as_string!(Month);

/// A Knowledge Base article number naming an update, normalised to `KB` + digits (e.g. `KB5034439`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kb(String);

/// In the document: a string of the form `FromStr` reads (`KB`, `kb` or nothing, then 6–8 digits).
impl utoipa::PartialSchema for Kb {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^(KB|kb)?[0-9]{6,8}$"))
            .examples(["KB5034439"])
            .into()
    }
}

impl ToSchema for Kb {}

impl Kb {
    /// The normalised text, e.g. `KB5034439`.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Kb {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s.strip_prefix("KB").or_else(|| s.strip_prefix("kb")).unwrap_or(s);
        if (6..=8).contains(&digits.len()) && digits.bytes().all(|c| c.is_ascii_digit()) {
            Ok(Kb(format!("KB{digits}")))
        } else {
            Err(format!("'{}' is not a KB number such as KB5034439 (6 to 8 digits)", s.escape_debug()))
        }
    }
}

impl fmt::Display for Kb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

serde_as_string!(Kb);

/// A release as an operator publishes it (`POST /v1/releases`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReleaseSpec {
    /// The OS it is for.
    pub os: OsVersion,
    /// Baseline or hotpatch.
    pub kind: ReleaseKind,
    /// Whether it is a planned release (default `true`); only baselines can be unplanned.
    #[serde(default = "yes")]
    pub planned: bool,
    /// The month it belongs to, `YYYY-MM`.
    #[schema(value_type = String, example = "2025-01", pattern = "^[2-9][0-9]{3}-(0[1-9]|1[0-2])$")]
    pub month: Month,
    /// Its KB number, e.g. `KB5034439` (unique in the catalog).
    #[schema(value_type = String, example = "KB5034439", pattern = "^(KB|kb)?[0-9]{6,8}$")]
    pub kb: Kb,
    /// The OS build it brings, e.g. `20348.2227`.
    #[schema(value_type = String, example = "20348.2227", pattern = "^[0-9]{1,9}\\.[0-9]{1,9}$")]
    pub build: OsBuild,
    /// When Microsoft released it (RFC 3339).
    #[serde(deserialize_with = "crate::time::instant")]
    pub released_at: DateTime<Utc>,
}

fn yes() -> bool {
    true
}

/// A release in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// Identifier.
    pub id: Uuid,
    /// What was published.
    pub spec: ReleaseSpec,
    /// The unplanned baseline that replaced this hotpatch, if any (it then no longer applies).
    pub superseded_by: Option<Uuid>,
}

impl Release {
    /// Whether the release still applies (it was not superseded).
    pub fn is_active(&self) -> bool {
        self.superseded_by.is_none()
    }

    /// Whether it is out at `now`.
    pub fn is_out(&self, now: DateTime<Utc>) -> bool {
        self.spec.released_at <= now
    }
}

/// Update classifications (DESIGN §1).
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
#[serde(rename_all = "snake_case")]
#[strum(serialize_all = "snake_case")]
pub enum Classification {
    /// Critical fixes (auto-installed).
    Critical,
    /// Security fixes (auto-installed; hotpatch has content parity with them).
    Security,
    /// Update rollups.
    UpdateRollup,
    /// Feature packs.
    FeaturePack,
    /// Service packs.
    ServicePack,
    /// Definition updates (e.g. Defender signatures).
    Definition,
    /// Tools.
    Tools,
    /// Non-security Windows updates.
    Updates,
    /// .NET updates.
    Dotnet,
    /// Drivers.
    Driver,
    /// Firmware.
    Firmware,
}

impl Classification {
    /// Every classification, in wire order.
    pub const ALL: [Classification; 11] = [
        Classification::Critical,
        Classification::Security,
        Classification::UpdateRollup,
        Classification::FeaturePack,
        Classification::ServicePack,
        Classification::Definition,
        Classification::Tools,
        Classification::Updates,
        Classification::Dotnet,
        Classification::Driver,
        Classification::Firmware,
    ];

    /// Whether automatic patching installs it (critical and security); the rest is only
    /// listed as available (update compliance) and installed on request.
    pub fn is_auto_installed(self) -> bool {
        matches!(self, Classification::Critical | Classification::Security)
    }

    /// Whether an update of this classification usually needs a reboot (the default when a
    /// publisher does not say): everything but definition updates.
    pub fn default_requires_reboot(self) -> bool {
        !matches!(self, Classification::Definition)
    }
}

/// An update hotpatch does not cover (non-security, .NET, drivers, firmware…), as published
/// (`POST /v1/updates`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateSpec {
    /// Its KB number (unique among updates).
    #[schema(value_type = String, example = "KB5034685", pattern = "^(KB|kb)?[0-9]{6,8}$")]
    pub kb: Kb,
    /// Title, 1–500 characters.
    #[schema(
        min_length = 1,
        max_length = 500,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub title: String,
    /// Classification.
    pub classification: Classification,
    /// The OS it is for; absent for updates of any OS (e.g. a driver).
    #[serde(default)]
    pub os: Option<OsVersion>,
    /// Whether installing it requires a reboot; defaults from the classification (all but
    /// `definition`).
    #[serde(default)]
    pub requires_reboot: Option<bool>,
    /// When it was released (RFC 3339).
    #[serde(deserialize_with = "crate::time::instant")]
    pub released_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_read_and_write_as_yyyy_mm() {
        let m: Month = "2025-01".parse().unwrap();
        assert_eq!((m.year(), m.month()), (2025, 1));
        assert_eq!(m.to_string(), "2025-01");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"2025-01\"");
        for bad in ["2025-1", "2025-13", "2025-00", "25-01", "2025/01", "1999-12", "2025-01-01", "+025-01"] {
            assert!(bad.parse::<Month>().is_err(), "{bad}");
        }
    }

    #[test]
    fn month_arithmetic_crosses_years() {
        let dec: Month = "2024-12".parse().unwrap();
        assert_eq!(dec.plus(1).unwrap().to_string(), "2025-01");
        assert_eq!(dec.plus(-12).unwrap().to_string(), "2023-12");
        assert_eq!(dec.plus(2).unwrap().since(dec), 2);
        assert!(Month::new(2000, 1).unwrap().plus(-1).is_none());
    }

    #[test]
    fn kb_numbers_are_normalised_with_the_kb_prefix() {
        assert_eq!("5034439".parse::<Kb>().unwrap().as_str(), "KB5034439");
        assert_eq!("kb5034439".parse::<Kb>().unwrap().as_str(), "KB5034439");
        for bad in ["KB", "KB12", "KBabc123", "KB 5034439", "KB123456789"] {
            assert!(bad.parse::<Kb>().is_err(), "{bad}");
        }
    }

    #[test]
    fn only_critical_and_security_updates_are_auto_installed() {
        let auto: Vec<_> = Classification::ALL.into_iter().filter(|c| c.is_auto_installed()).collect();
        assert_eq!(auto, [Classification::Critical, Classification::Security]);
    }

    #[test]
    fn a_release_spec_defaults_to_planned() {
        let spec: ReleaseSpec = serde_json::from_value(serde_json::json!({
            "os": "windows_server_2022", "kind": "baseline", "month": "2025-01", "kb": "KB5034439",
            "build": "20348.2227", "released_at": "2025-01-14T18:00:00Z"
        }))
        .unwrap();
        assert!(spec.planned);
    }
}
