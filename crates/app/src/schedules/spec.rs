//! A maintenance configuration as clients send and see it, and its checks.

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveTime, TimeDelta, Utc};
use hotpatch_domain::validation::{has_control, is_identifier, is_label_key, is_label_value};
use hotpatch_domain::{Classification, FieldError, Kb, Timezone};
use hotpatch_scheduler::windows::Tz;
use hotpatch_scheduler::windows::{Blackout, RecurrenceSpec, Schedule, ScheduleSpec};
use hotpatch_store::maintenance::Configuration;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;

/// Whether installs in a window may reboot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reboot {
    /// When an update needs it.
    #[default]
    IfRequired,
    /// Never (updates that need a reboot wait).
    Never,
    /// After every install.
    Always,
}

/// Which machines a configuration applies to: any listed id, any machine carrying every
/// listed label, any machine in a listed region. Matched when windows are planned, so a
/// machine added later is in scope too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// Machines named explicitly (strongest match).
    #[serde(default)]
    pub machine_ids: Vec<Uuid>,
    /// Labels a machine must all carry.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Regions (weakest match).
    #[serde(default)]
    pub regions: Vec<String>,
}

/// How often a schedule repeats.
#[derive(ToSchema)]
#[schema(as = Frequency)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum FrequencyDoc {
    Daily,
    Weekly,
    Monthly,
}

/// A day of the week.
#[derive(ToSchema)]
#[schema(as = Day)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
enum DayDoc {
    Monday,
    Tuesday,
    Wednesday,
    Thursday,
    Friday,
    Saturday,
    Sunday,
}

/// The n-th weekday of a month: `{week: 2, day: tuesday}` is the second Tuesday.
#[derive(ToSchema)]
#[schema(as = NthWeekday)]
#[allow(dead_code)]
struct NthWeekdayDoc {
    /// 1..4, or -1 for the last one of the month.
    week: i64,
    day: DayDoc,
}

/// Which local dates have a window. `interval` counts from a fixed origin (every 3 months is
/// January, April, July and October).
#[derive(ToSchema)]
#[schema(as = Recurrence)]
#[allow(dead_code)]
struct RecurrenceDoc {
    frequency: FrequencyDoc,
    /// Every how many days, weeks or months (default 1; at most 366, 52 or 12).
    interval: Option<i64>,
    /// Weekly only: at least one day.
    days_of_week: Option<Vec<DayDoc>>,
    /// Monthly only: 1..31, or -1 for the last day; a month without that day is skipped.
    day_of_month: Option<i64>,
    /// Monthly only, instead of `day_of_month`.
    nth_weekday: Option<NthWeekdayDoc>,
    /// Monthly only: -30..30 days added to the chosen day ("second Tuesday + 4 days").
    offset_days: Option<i64>,
}

/// A period without windows, `[from, to)` in UTC.
#[derive(ToSchema)]
#[schema(as = Blackout)]
#[allow(dead_code)]
struct BlackoutDoc {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
}

/// A maintenance configuration as sent (and shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfigurationSpec {
    /// Unique name.
    pub name: String,
    /// Which local dates have a window.
    #[schema(value_type = RecurrenceDoc)]
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
    pub reboot: Reboot,
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
    #[schema(value_type = Vec<BlackoutDoc>)]
    pub blackouts: Vec<Blackout>,
    /// The machines it applies to.
    #[serde(default)]
    pub scope: Scope,
}

fn default_classifications() -> Vec<String> {
    vec!["critical".to_owned(), "security".to_owned()]
}

/// A stored configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigurationView {
    /// Its id.
    pub id: Uuid,
    /// The configuration.
    #[serde(flatten)]
    pub spec: ConfigurationSpec,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// Create and update only: windows in the next 12 months that a DST change moves, skips
    /// or makes end at another wall-clock time, in the configuration's zone or, without
    /// one, in the zones of the machines in scope now.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub warnings: Option<Vec<String>>,
}

impl ConfigurationView {
    /// The view of a stored configuration (with the warnings of a write).
    pub fn from_stored(c: Configuration, warnings: Option<Vec<String>>) -> Result<Self, AppError> {
        let spec = serde_json::from_value(c.body)
            .map_err(|e| AppError::Internal(format!("stored maintenance configuration {}: {e}", c.id)))?;
        Ok(ConfigurationView { id: c.id, spec, created_at: c.created_at, updated_at: c.updated_at, warnings })
    }
}

/// `HH:MM`, 00:00–23:59.
fn parse_start_time(s: &str) -> Option<NaiveTime> {
    (s.len() == 5).then(|| NaiveTime::parse_from_str(s, "%H:%M").ok()).flatten()
}

/// The ISO 8601 durations a window can have: `PT` with hours, minutes and seconds
/// (`PT4H`, `PT1H30M`, `PT90M`), or `P1D`.
pub fn parse_duration(s: &str) -> Option<TimeDelta> {
    if s == "P1D" {
        return Some(TimeDelta::days(1));
    }
    let mut rest = s.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0i64;
    for (unit, seconds) in [('H', 3600), ('M', 60), ('S', 1)] {
        if let Some(i) = rest.find(unit) {
            let n = &rest[..i];
            if n.is_empty() || n.len() > 6 || !n.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            total += n.parse::<i64>().ok()? * seconds;
            rest = &rest[i + 1..];
        }
    }
    rest.is_empty().then(|| TimeDelta::seconds(total))
}

/// Configurations store KBs as given, so only the canonical form (`KB` + digits) is taken;
/// what a KB is stays defined once, in `Kb`.
fn is_kb(s: &str) -> bool {
    s.parse::<Kb>().is_ok_and(|kb| kb.to_string() == s)
}

/// A valid configuration: its schedule (read in UTC when it has no zone of its own, to be
/// put on each machine's clock) and its zone.
pub struct Checked {
    /// The schedule.
    pub schedule: Schedule,
    /// The configuration's own zone, if any.
    pub timezone: Option<Tz>,
}

/// Every field error of a configuration, with its path.
pub fn check(spec: &ConfigurationSpec) -> Result<Checked, AppError> {
    let mut errors = Vec::new();
    if spec.name.trim().is_empty() || spec.name.chars().count() > 128 || has_control(&spec.name) {
        errors.push(FieldError::new("name", "must be 1–128 characters, without control characters"));
    }
    let start_time = parse_start_time(&spec.start_time);
    if start_time.is_none() {
        errors.push(FieldError::new("start_time", "must be a local time HH:MM, e.g. 01:00"));
    }
    let duration = parse_duration(&spec.duration);
    if duration.is_none() {
        errors.push(FieldError::new("duration", "must be an ISO 8601 duration such as PT4H or PT1H30M"));
    }
    let timezone = match &spec.timezone {
        None => None,
        Some(name) => match name.parse::<Timezone>() {
            Ok(tz) => Some(tz.0),
            Err(e) => {
                errors.push(FieldError::new("timezone", format!("{e}, or null")));
                None
            }
        },
    };
    for (i, c) in spec.classifications.iter().enumerate() {
        if c.parse::<Classification>().is_err() {
            let names: Vec<&'static str> = Classification::ALL.iter().map(|c| c.into()).collect();
            errors.push(FieldError::new(
                format!("classifications[{i}]"),
                format!("must be one of {}", names.join(", ")),
            ));
        }
    }
    for (field, kbs) in [("kb_include", &spec.kb_include), ("kb_exclude", &spec.kb_exclude)] {
        for (i, kb) in kbs.iter().enumerate() {
            if !is_kb(kb) {
                errors.push(FieldError::new(
                    format!("{field}[{i}]"),
                    "must be KB and 6–8 digits, e.g. KB5034123",
                ));
            }
        }
    }
    for (i, r) in spec.scope.regions.iter().enumerate() {
        if !is_identifier(r, 64) {
            errors.push(FieldError::new(
                format!("scope.regions[{i}]"),
                "must be 1–64 lower-case letters, digits or dashes",
            ));
        }
    }
    for (k, v) in &spec.scope.labels {
        if !is_label_key(k) || !is_label_value(v) {
            errors.push(FieldError::new(format!("scope.labels.{k}"), "not a valid label key and value"));
        }
    }
    // The schedule's own checks run even when the times did not parse (with stand-ins,
    // whose errors are not repeated), so that one answer names every bad field.
    let schedule = match Schedule::new(ScheduleSpec {
        recurrence: spec.recurrence.clone(),
        start_time: start_time.unwrap_or(NaiveTime::MIN),
        duration: duration.unwrap_or(TimeDelta::hours(1)),
        timezone: timezone.unwrap_or(Tz::UTC),
        blackouts: spec.blackouts.clone(),
    }) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend(e.into_iter().filter(|e| match e.field.as_str() {
                "start_time" => start_time.is_some(),
                "duration" => duration.is_some(),
                _ => true,
            }));
            None
        }
    };
    match schedule {
        Some(schedule) if errors.is_empty() => Ok(Checked { schedule, timezone }),
        _ => {
            let detail =
                errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
            Err(AppError::Unprocessable { detail, errors })
        }
    }
}

/// A configuration from a JSON object (a stored body with a merge patch applied), with the
/// field errors a request body would get.
pub fn from_json_object(
    body: serde_json::Map<String, serde_json::Value>,
) -> Result<ConfigurationSpec, AppError> {
    let bytes = serde_json::to_vec(&body).map_err(AppError::internal)?;
    crate::json::parse(&bytes)
}
