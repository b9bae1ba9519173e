//! A machine of the fleet: what an operator registered and what the service derived from it at
//! the last write, as the store keeps it and the services read it.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::eligibility::Eligibility;
use crate::machine::{takes_hotpatches, Enrollment, HotpatchStatus, MachineSpec};

/// A registered machine: the operator's spec, the eligibility verdict, the hotpatch status
/// lists filter on and the Arc enrollment.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    /// Identifier (uuid v7).
    pub id: Uuid,
    /// What the operator registered.
    pub spec: MachineSpec,
    /// The eligibility rules' verdict at the last write.
    pub eligibility: Eligibility,
    /// Hotpatch status as lists filter on it.
    pub hotpatch_status: HotpatchStatus,
    /// Arc preview enrollment (Arc machines only).
    pub enrollment: Option<Enrollment>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl Machine {
    /// Whether the machine takes hotpatches now (the rule is [`takes_hotpatches`]).
    pub fn takes_hotpatches(&self) -> bool {
        takes_hotpatches(
            self.spec.hotpatch_enabled,
            self.eligibility.eligible,
            self.spec.platform,
            self.enrollment,
        )
    }
}
