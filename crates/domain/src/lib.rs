//! Types and rules of the hotpatch control plane.
//!
//! Everything here is pure: no I/O, no async, no clock. The store persists these
//! types, the API validates requests into them, and the scheduler plans with them.

pub mod auth;
pub mod eligibility;
pub mod machine;
pub mod object_only;
pub mod release;
pub mod validation;

pub use auth::Role;
pub use eligibility::{
    assess, supported_skus, Eligibility, EligibilityRejection, Reason, ReasonCode, RegionCapabilities,
    SUPPORTED_IMAGES,
};
pub use machine::{
    Edition, Enrollment, HotpatchStatus, Image, ImageKind, MachinePatch, MachineSpec, OrchestrationMode,
    OsBuild, OsVersion, PatchOrchestration, Platform, ScaleSet, Timezone,
};
pub use object_only::ObjectOnly;
pub use release::{Classification, Kb, Month, Release, ReleaseKind, ReleaseSpec, UpdateSpec};
pub use validation::FieldError;
