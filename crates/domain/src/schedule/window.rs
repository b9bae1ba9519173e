//! What every window of a schedule shares: its local start, its length and the blackouts
//! that remove some, with the checks a schedule's values must pass.

use chrono::{DateTime, NaiveTime, TimeDelta, Timelike, Utc};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::validation::FieldError;

/// Shortest window a schedule may have.
pub const MIN_DURATION: TimeDelta = TimeDelta::minutes(30);
/// Longest window a schedule may have.
pub const MAX_DURATION: TimeDelta = TimeDelta::hours(24);
/// Most blackouts one schedule may carry.
pub const MAX_BLACKOUTS: usize = 100;

/// A period without windows, `[from, to)` in UTC.
// `from` is its first instant, `to` the first instant after it. (Doc comments are the OpenAPI
// descriptions, and the document has none for the two fields.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(missing_docs)]
pub struct Blackout {
    #[serde(deserialize_with = "crate::time::instant")]
    pub from: DateTime<Utc>,
    #[serde(deserialize_with = "crate::time::instant")]
    pub to: DateTime<Utc>,
}

/// A window starts on whole minutes (`HH:MM`).
pub fn check_start_time(start_time: NaiveTime) -> Result<(), FieldError> {
    if start_time.second() != 0 || start_time.nanosecond() != 0 {
        return Err(FieldError::new("start_time", "must be whole minutes (HH:MM)"));
    }
    Ok(())
}

/// A window lasts 30 minutes to 24 hours, in whole seconds.
pub fn check_duration(duration: TimeDelta) -> Result<(), FieldError> {
    if duration < MIN_DURATION || duration > MAX_DURATION {
        Err(FieldError::new("duration", "must be between 30 minutes (PT30M) and 24 hours (PT24H)"))
    } else if duration.subsec_nanos() != 0 {
        Err(FieldError::new("duration", "must be whole seconds"))
    } else {
        Ok(())
    }
}

/// At most [`MAX_BLACKOUTS`], each ending after it starts.
pub fn check_blackouts(blackouts: &[Blackout]) -> Vec<FieldError> {
    let mut errors = Vec::new();
    if blackouts.len() > MAX_BLACKOUTS {
        errors.push(FieldError::new("blackouts", format!("at most {MAX_BLACKOUTS} blackouts")));
    }
    for (i, b) in blackouts.iter().enumerate() {
        if b.from >= b.to {
            errors.push(FieldError::new(format!("blackouts[{i}].to"), "must be after `from`"));
        }
    }
    errors
}
