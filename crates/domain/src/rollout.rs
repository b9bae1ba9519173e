//! Rollouts as values (DESIGN §1 "Orchestration"): where a rollout, each of its batches and each
//! of its machines' installs stands, how a machine installs what it gets ([`CycleKind`]), and
//! the options a rollout is planned and run with ([`RolloutOptions`]).
//!
//! The states are stored and sent as their snake_case names ([`RolloutState::as_str`]) and read
//! back with [`FromStr`]; a name that is none of them is an [`UnknownState`].

pub mod decisions;
mod options;
pub mod snapshot;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use options::{
    RolloutError, RolloutOptions, DEFAULT_FAILURE_THRESHOLD_PERCENT, DEFAULT_MAX_BATCH_PERCENT,
};

/// A stored name that names no variant of the type it was read as.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} {name:?}")]
pub struct UnknownState {
    /// What was read, e.g. `rollout state`.
    pub kind: &'static str,
    /// The name as found.
    pub name: String,
}

/// Declares an enum stored as snake_case text, with its text form both ways.
macro_rules! stored_enum {
    (
        $(#[$doc:meta])* $name:ident ($what:literal)
        { $($(#[$vdoc:meta])* $variant:ident = $text:literal),+ $(,)? }
    ) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The stored (and wire) name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl FromStr for $name {
            type Err = UnknownState;

            fn from_str(s: &str) -> Result<Self, UnknownState> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownState { kind: $what, name: other.to_owned() }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum! {
    /// Where a rollout is.
    RolloutState ("rollout state") {
        /// Batches open and machines install as their windows come.
        Running = "running",
        /// Stopped by an operator: no new installs start (jobs already queued run).
        Paused = "paused",
        /// Stopped because a batch's failure rate went over the threshold.
        Halted = "halted",
        /// Ended by an operator.
        Canceled = "canceled",
        /// Every batch succeeded.
        Succeeded = "succeeded",
    }
}

stored_enum! {
    /// Where a batch is.
    BatchState ("batch state") {
        /// Waiting for the batches before it.
        Pending = "pending",
        /// Its machines install as their windows come.
        Open = "open",
        /// Every machine installed and reported healthy (failures at or under the threshold).
        Succeeded = "succeeded",
        /// Its failure rate went over the threshold; resume reopens it.
        Halted = "halted",
        /// Its rollout was canceled.
        Canceled = "canceled",
    }
}

stored_enum! {
    /// Where one machine's install is.
    InstallState ("install state") {
        /// Waiting for its batch or its window.
        Pending = "pending",
        /// A job is enqueued (or running) for it.
        Queued = "queued",
        /// Its job succeeded.
        Succeeded = "succeeded",
        /// Its job failed.
        Failed = "failed",
        /// Its rollout was canceled before it installed.
        Canceled = "canceled",
    }
}

stored_enum! {
    /// What a machine gets in a month, and so how it installs a rollout's release.
    CycleKind ("install kind") {
        /// A hotpatch on top of the baseline: no reboot.
        Hotpatch = "hotpatch",
        /// A baseline (planned or unplanned): reboot.
        Baseline = "baseline",
        /// The monthly cumulative update of a machine without hotpatch: reboot.
        CumulativeUpdate = "cumulative_update",
    }
}

impl RolloutState {
    /// Whether the rollout is over: canceled or succeeded.
    pub fn is_final(self) -> bool {
        matches!(self, RolloutState::Canceled | RolloutState::Succeeded)
    }
}

impl BatchState {
    /// Whether the batch is over: succeeded or canceled (a halted batch reopens on resume).
    pub fn is_final(self) -> bool {
        matches!(self, BatchState::Succeeded | BatchState::Canceled)
    }
}

impl InstallState {
    /// Whether the install is over: succeeded, failed or canceled. (Resuming a halted rollout
    /// gives the failed machines of its halted batches another window.)
    pub fn is_final(self) -> bool {
        matches!(self, InstallState::Succeeded | InstallState::Failed | InstallState::Canceled)
    }
}

impl CycleKind {
    /// Whether installing it requires a reboot: baselines and cumulative updates.
    pub fn requires_reboot(self) -> bool {
        !matches!(self, CycleKind::Hotpatch)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn states_read_back_from_their_stored_names() {
        for s in [
            RolloutState::Running,
            RolloutState::Paused,
            RolloutState::Halted,
            RolloutState::Canceled,
            RolloutState::Succeeded,
        ] {
            assert_eq!(s.as_str().parse::<RolloutState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        for s in ["pending", "open", "succeeded", "halted", "canceled"] {
            assert_eq!(s.parse::<BatchState>().map(BatchState::as_str), Ok(s));
        }
        for s in ["pending", "queued", "succeeded", "failed", "canceled"] {
            assert_eq!(s.parse::<InstallState>().map(|i| i.to_string()), Ok(s.to_owned()));
        }
        for s in ["hotpatch", "baseline", "cumulative_update"] {
            let kind: CycleKind = s.parse().unwrap();
            assert_eq!(serde_json::from_value::<CycleKind>(s.into()).unwrap(), kind);
            assert_eq!(kind.as_str(), s);
        }
    }

    #[test]
    fn an_unknown_name_is_refused_with_what_it_was_read_as() {
        let err = "Running".parse::<RolloutState>().unwrap_err();
        assert_eq!(err, UnknownState { kind: "rollout state", name: "Running".into() });
        assert_eq!(err.to_string(), r#"unknown rollout state "Running""#);
        assert_eq!("reboot".parse::<CycleKind>().unwrap_err().kind, "install kind");
    }

    #[test]
    fn only_ended_states_are_final() {
        assert!(RolloutState::Succeeded.is_final() && RolloutState::Canceled.is_final());
        assert!(!RolloutState::Halted.is_final() && !RolloutState::Paused.is_final());
        assert!(!BatchState::Halted.is_final() && BatchState::Succeeded.is_final());
        assert!(InstallState::Failed.is_final() && !InstallState::Queued.is_final());
    }

    #[test]
    fn only_a_hotpatch_installs_without_a_reboot() {
        assert!(!CycleKind::Hotpatch.requires_reboot());
        assert!(CycleKind::Baseline.requires_reboot() && CycleKind::CumulativeUpdate.requires_reboot());
    }
}
