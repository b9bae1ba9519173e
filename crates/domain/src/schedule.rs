//! Maintenance schedules and configurations (DESIGN §3 "Maintenance configuration"): the wire
//! form a client sends, parsed once into types that cannot hold an invalid value, and the
//! precedence rule that says which configuration governs a machine.
//!
//! - [`RecurrenceSpec`] → [`Recurrence`]: which local dates have a window.
//! - [`ConfigurationSpec`] → [`MaintenanceConfiguration`]: the whole configuration, every
//!   field error reported at once; it serializes back to the body the API shows and stores,
//!   and deserializing that body parses it again, so a stored configuration loads as the
//!   typed value or fails loudly.
//! - [`Scope`], [`ScopeMatch`] and [`applicable_configuration`]: which configuration a machine
//!   follows (one naming it, then one matching its labels, then one listing its region; the
//!   oldest among equals).
//!
//! The window engine (`hotpatch-scheduler`) runs these values without further checks.

mod configuration;
mod recurrence;
mod scope;
mod window;

pub use configuration::{ConfigurationSpec, InvalidConfiguration, MaintenanceConfiguration, MAX_NAME_CHARS};
pub use recurrence::{
    Day, Frequency, MonthAnchor, NthWeekday, Recurrence, RecurrenceRule, RecurrenceSpec, MAX_INTERVAL,
    MAX_OFFSET_DAYS,
};
pub use scope::{applicable_configuration, Candidate, Scope, ScopeMatch};
pub use window::{
    check_blackouts, check_duration, check_start_time, Blackout, MAX_BLACKOUTS, MAX_DURATION, MIN_DURATION,
};
