//! Types and rules of the hotpatch control plane.
//!
//! Everything here is pure: no I/O, no async, no clock. The store persists these
//! types, the API validates requests into them, and the scheduler plans with them.

/// Serializes each type as its `Display` text and deserializes it through `FromStr`, so
/// the wire form of these small value types is written once, in their `FromStr`/`Display`.
macro_rules! serde_as_string {
    ($($ty:ty),* $(,)?) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                s.parse().map_err(serde::de::Error::custom)
            }
        }
    )*};
}

pub mod auth;
pub mod cursor;
pub mod eligibility;
pub mod fleet;
pub mod job;
pub mod machine;
pub mod object_only;
pub mod operation;
pub mod payload;
pub mod release;
pub mod rollout;
pub mod schedule;
pub mod time;
pub mod validation;
pub mod webhook_health;
pub mod webhook_target;

pub use auth::Role;
pub use eligibility::{
    assess, supported_skus, Eligibility, EligibilityRejection, Reason, ReasonCode, RegionCapabilities,
    SUPPORTED_IMAGES,
};
pub use fleet::Machine;
pub use machine::{
    takes_hotpatches, Edition, Enrollment, HotpatchStatus, Image, ImageKind, MachinePatch, MachineSpec,
    OrchestrationMode, OsBuild, OsVersion, PatchOrchestration, Platform, ScaleSet, Timezone,
};
pub use object_only::ObjectOnly;
pub use release::{
    Classification, InstalledReleases, Kb, Month, Release, ReleaseKind, ReleaseSpec, UpdateSpec,
};
pub use validation::FieldError;
