//! The baseline/hotpatch cycle (DESIGN §1 "Cycle").
//!
//! - [`calendar`]: which months are planned baselines per OS (data), and the twelve months of a
//!   year, published or projected;
//! - [`publish`]: the catalog's publishing rules as one check;
//! - [`status`]: where a machine stands at an instant and what it needs next;
//! - [`rollback`]: the steps of a rollback, as data.

pub mod calendar;
pub mod publish;
pub mod reboots;
pub mod rollback;
pub mod status;
pub mod whatif;

#[cfg(test)]
mod props;
#[cfg(test)]
mod tests;

pub use calendar::{calendar, project_year, CalendarMonth, CalendarRule, MonthStatus, ProjectedMonth};
pub use publish::{check_publish, Publication, PublishRuleViolation};
pub use reboots::{reboots_in_year, YearReboots};
pub use rollback::{rollback_plan, RollbackRefused, RollbackStep};
pub use status::{cycle_status, installed, rebooted, CycleKind, CycleStatus, MachineState, NextRelease};
pub use whatif::{compare, scenario_catalog, Comparison, Scenario, WhatIfError, HYPOTHETICAL_ID};
