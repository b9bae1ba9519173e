//! A maintenance configuration: its wire form ([`ConfigurationSpec`], strings as a client
//! sends them) and the typed value parsed from it once ([`MaintenanceConfiguration`]), which
//! serializes back to the same body and deserializes only through the same checks.

use std::borrow::Cow;
use std::fmt;

use chrono::NaiveTime;
use serde::{Deserialize, Serialize};
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use super::recurrence::{Recurrence, RecurrenceSpec};
use super::scope::Scope;
use super::window::{check_blackouts, check_duration, check_start_time, Blackout};
use crate::machine::Timezone;
use crate::payload::{IsoDuration, RebootSetting};
use crate::release::{Classification, Kb};
use crate::validation::{has_control, is_identifier, is_label_key, is_label_value, FieldError};

/// Longest configuration name, in characters.
pub const MAX_NAME_CHARS: usize = 128;

/// A maintenance configuration as sent (and shown).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationSpec {
    /// Unique name.
    pub name: String,
    /// Which local dates have a window.
    pub recurrence: RecurrenceSpec,
    /// Local start, `HH:MM`.
    pub start_time: String,
    /// ISO 8601 duration, 30 minutes to 24 hours (`PT4H`, `PT1H30M`).
    pub duration: String,
    /// IANA zone; `null` reads the schedule on each machine's own clock.
    #[serde(default)]
    pub timezone: Option<String>,
    /// Whether installs may reboot.
    #[serde(default)]
    #[schema(value_type = RebootDoc)]
    pub reboot: RebootSetting,
    /// Classifications to install (default critical and security).
    #[serde(default = "default_classifications")]
    pub classifications: Vec<String>,
    /// KBs to install in any case.
    #[serde(default)]
    pub kb_include: Vec<String>,
    /// KBs never to install.
    #[serde(default)]
    pub kb_exclude: Vec<String>,
    /// Periods without windows, `[{from, to}]` in UTC.
    #[serde(default)]
    pub blackouts: Vec<Blackout>,
    /// The machines it applies to.
    #[serde(default)]
    pub scope: Scope,
}

/// A classification's wire text (`update_rollup`).
fn wire_name(c: Classification) -> String {
    <&'static str>::from(c).to_owned()
}

fn default_classifications() -> Vec<String> {
    [Classification::Critical, Classification::Security].map(wire_name).to_vec()
}

/// Whether installs in a window may reboot.
// The OpenAPI name and words a configuration's `reboot` has always had; the values are
// `RebootSetting`'s (a test holds them equal). Never built: documentation only.
#[derive(ToSchema)]
#[schema(as = Reboot)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum RebootDoc {
    IfRequired,
    Never,
    Always,
}

/// A valid maintenance configuration, parsed once from its wire form.
///
/// It serializes to the body the API shows and stores (`start_time` as `HH:MM`, `duration` in
/// ISO 8601's canonical form, classifications and KBs as text), and deserializes from that body
/// through [`MaintenanceConfiguration::parse`]: a stored body that is no longer valid fails to
/// load, naming every bad field.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "ConfigurationSpec")]
pub struct MaintenanceConfiguration {
    name: String,
    recurrence: Recurrence,
    start_time: NaiveTime,
    duration: IsoDuration,
    timezone: Option<Timezone>,
    reboot: RebootSetting,
    classifications: Vec<Classification>,
    kb_include: Vec<Kb>,
    kb_exclude: Vec<Kb>,
    blackouts: Vec<Blackout>,
    scope: Scope,
}

/// Why a configuration is invalid: every bad field, with its dotted path, in the order the
/// fields are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidConfiguration(pub Vec<FieldError>);

impl std::error::Error for InvalidConfiguration {}

impl fmt::Display for InvalidConfiguration {
    /// `field: message; field: message`, the `detail` of the API's 422 problem.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", e.field, e.message)?;
        }
        Ok(())
    }
}

impl MaintenanceConfiguration {
    /// Parses a configuration as sent; every invalid field is reported at once.
    ///
    /// The schedule's own checks (recurrence, start, length, blackouts) run even when the
    /// start time or the duration does not parse, so that one answer names every bad field;
    /// a field that does not parse is reported once, as unparsable.
    pub fn parse(spec: ConfigurationSpec) -> Result<MaintenanceConfiguration, Vec<FieldError>> {
        let mut errors = Vec::new();
        check_name(&spec.name, &mut errors);
        let start_time = parse_start_time(&spec.start_time, &mut errors);
        let duration = parse_duration(&spec.duration, &mut errors);
        let timezone = parse_timezone(spec.timezone.as_deref(), &mut errors);
        let classifications = parse_classifications(&spec.classifications, &mut errors);
        let kb_include = parse_kbs("kb_include", &spec.kb_include, &mut errors);
        let kb_exclude = parse_kbs("kb_exclude", &spec.kb_exclude, &mut errors);
        check_scope(&spec.scope, &mut errors);
        let recurrence = Recurrence::parse(spec.recurrence).map_err(|e| errors.extend(e)).ok();
        errors.extend(start_time.and_then(|t| check_start_time(t).err()));
        errors.extend(duration.and_then(|d| check_duration(d.as_delta()).err()));
        errors.extend(check_blackouts(&spec.blackouts));
        match (recurrence, start_time, duration, timezone) {
            (Some(recurrence), Some(start_time), Some(duration), Ok(timezone)) if errors.is_empty() => {
                Ok(MaintenanceConfiguration {
                    name: spec.name,
                    recurrence,
                    start_time,
                    duration,
                    timezone,
                    reboot: spec.reboot,
                    classifications,
                    kb_include,
                    kb_exclude,
                    blackouts: spec.blackouts,
                    scope: spec.scope,
                })
            }
            _ => Err(errors),
        }
    }

    /// The wire form: what the API shows and stores.
    pub fn to_spec(&self) -> ConfigurationSpec {
        let text = |kbs: &[Kb]| kbs.iter().map(Kb::to_string).collect();
        ConfigurationSpec {
            name: self.name.clone(),
            recurrence: self.recurrence.spec().clone(),
            start_time: self.start_time.format("%H:%M").to_string(),
            duration: self.duration.to_string(),
            timezone: self.timezone.map(|tz| tz.name().to_owned()),
            reboot: self.reboot,
            classifications: self.classifications.iter().copied().map(wire_name).collect(),
            kb_include: text(&self.kb_include),
            kb_exclude: text(&self.kb_exclude),
            blackouts: self.blackouts.clone(),
            scope: self.scope.clone(),
        }
    }

    /// Its unique name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Which local dates have a window.
    pub fn recurrence(&self) -> &Recurrence {
        &self.recurrence
    }

    /// The local start of every window, whole minutes.
    pub fn start_time(&self) -> NaiveTime {
        self.start_time
    }

    /// The elapsed length of every window, 30 minutes to 24 hours.
    pub fn duration(&self) -> IsoDuration {
        self.duration
    }

    /// Its own zone; `None`: each machine reads the schedule on its own clock.
    pub fn timezone(&self) -> Option<Timezone> {
        self.timezone
    }

    /// Whether installs in its windows may reboot.
    pub fn reboot(&self) -> RebootSetting {
        self.reboot
    }

    /// The classifications its windows install.
    pub fn classifications(&self) -> &[Classification] {
        &self.classifications
    }

    /// KBs installed in any case.
    pub fn kb_include(&self) -> &[Kb] {
        &self.kb_include
    }

    /// KBs never installed.
    pub fn kb_exclude(&self) -> &[Kb] {
        &self.kb_exclude
    }

    /// Periods without windows, as sent (valid, not merged).
    pub fn blackouts(&self) -> &[Blackout] {
        &self.blackouts
    }

    /// The machines it applies to.
    pub fn scope(&self) -> &Scope {
        &self.scope
    }
}

impl TryFrom<ConfigurationSpec> for MaintenanceConfiguration {
    type Error = InvalidConfiguration;

    fn try_from(spec: ConfigurationSpec) -> Result<Self, Self::Error> {
        MaintenanceConfiguration::parse(spec).map_err(InvalidConfiguration)
    }
}

impl From<&MaintenanceConfiguration> for ConfigurationSpec {
    fn from(c: &MaintenanceConfiguration) -> Self {
        c.to_spec()
    }
}

impl Serialize for MaintenanceConfiguration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_spec().serialize(s)
    }
}

/// Documented as its wire form, under the wire form's name, so that a request or a view can
/// carry the typed value and the OpenAPI document stays the same.
impl PartialSchema for MaintenanceConfiguration {
    fn schema() -> RefOr<Schema> {
        ConfigurationSpec::schema()
    }
}

impl ToSchema for MaintenanceConfiguration {
    fn name() -> Cow<'static, str> {
        <ConfigurationSpec as ToSchema>::name()
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        <ConfigurationSpec as ToSchema>::schemas(schemas);
    }
}

fn check_name(name: &str, errors: &mut Vec<FieldError>) {
    if name.trim().is_empty() || name.chars().count() > MAX_NAME_CHARS || has_control(name) {
        errors.push(FieldError::new(
            "name",
            format!("must be 1–{MAX_NAME_CHARS} characters, without control characters"),
        ));
    }
}

/// `HH:MM`, 00:00–23:59.
fn parse_start_time(s: &str, errors: &mut Vec<FieldError>) -> Option<NaiveTime> {
    let t = (s.len() == 5).then(|| NaiveTime::parse_from_str(s, "%H:%M").ok()).flatten();
    if t.is_none() {
        errors.push(FieldError::new("start_time", "must be a local time HH:MM, e.g. 01:00"));
    }
    t
}

fn parse_duration(s: &str, errors: &mut Vec<FieldError>) -> Option<IsoDuration> {
    let d = s.parse::<IsoDuration>().ok();
    if d.is_none() {
        errors.push(FieldError::new("duration", "must be an ISO 8601 duration such as PT4H or PT1H30M"));
    }
    d
}

/// `Err(())`: a name that is not a zone (reported); `Ok(None)`: no zone of its own.
fn parse_timezone(name: Option<&str>, errors: &mut Vec<FieldError>) -> Result<Option<Timezone>, ()> {
    name.map(str::parse::<Timezone>)
        .transpose()
        .map_err(|e| errors.push(FieldError::new("timezone", format!("{e}, or null"))))
}

fn parse_classifications(names: &[String], errors: &mut Vec<FieldError>) -> Vec<Classification> {
    let mut out = Vec::with_capacity(names.len());
    for (i, c) in names.iter().enumerate() {
        match c.parse::<Classification>() {
            Ok(c) => out.push(c),
            Err(_) => {
                let known: Vec<&'static str> = Classification::ALL.iter().map(|c| c.into()).collect();
                errors.push(FieldError::new(
                    format!("classifications[{i}]"),
                    format!("must be one of {}", known.join(", ")),
                ));
            }
        }
    }
    out
}

/// KBs in canonical form only (`KB` + 6–8 digits), so that the stored text is the text sent;
/// what a KB is stays defined once, in [`Kb`].
fn parse_kbs(field: &str, texts: &[String], errors: &mut Vec<FieldError>) -> Vec<Kb> {
    let mut out = Vec::with_capacity(texts.len());
    for (i, text) in texts.iter().enumerate() {
        match text.parse::<Kb>() {
            Ok(kb) if kb.as_str() == text => out.push(kb),
            _ => errors
                .push(FieldError::new(format!("{field}[{i}]"), "must be KB and 6–8 digits, e.g. KB5034123")),
        }
    }
    out
}

fn check_scope(scope: &Scope, errors: &mut Vec<FieldError>) {
    for (i, r) in scope.regions.iter().enumerate() {
        if !is_identifier(r, 64) {
            errors.push(FieldError::new(
                format!("scope.regions[{i}]"),
                "must be 1–64 lower-case letters, digits or dashes",
            ));
        }
    }
    for (k, v) in &scope.labels {
        if !is_label_key(k) || !is_label_value(v) {
            errors.push(FieldError::new(format!("scope.labels.{k}"), "not a valid label key and value"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_documented_reboot_values_are_the_reboot_settings() {
        let values = |s: RefOr<Schema>| serde_json::to_value(s).unwrap()["enum"].clone();
        assert_eq!(values(RebootDoc::schema()), values(RebootSetting::schema()));
        assert_eq!(values(RebootDoc::schema()).as_array().map(Vec::len), Some(3));
    }
}
