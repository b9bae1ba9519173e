//! What the machine use cases answer: a machine as clients see it, and a list item that may
//! carry the machine's patch status.

use chrono::{DateTime, Utc};
use hotpatch_domain::{Eligibility, Enrollment, HotpatchStatus, Machine, MachineSpec};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

/// A registered machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineView {
    /// Identifier.
    pub id: Uuid,
    /// The registered fields.
    #[serde(flatten)]
    pub spec: MachineSpec,
    /// The eligibility rules' verdict.
    pub eligibility: Eligibility,
    /// Hotpatch status: enabled, disabled, not_eligible or needs_baseline.
    pub hotpatch_status: HotpatchStatus,
    /// Arc preview enrollment (Arc-connected machines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<Enrollment>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Machine> for MachineView {
    fn from(m: Machine) -> Self {
        MachineView {
            id: m.id,
            spec: m.spec,
            eligibility: m.eligibility,
            hotpatch_status: m.hotpatch_status,
            enrollment: m.enrollment,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A machine of a list, with its patch status when `?include=patch_status` asked for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineListItem {
    /// The machine.
    #[serde(flatten)]
    pub machine: MachineView,
    /// Its patch status (as `GET /v1/machines/{id}/patch-status` answers), with `include=patch_status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::status::PatchStatusView>)]
    pub patch_status: Option<Box<serde_json::value::RawValue>>,
    /// The `ETag` that `GET /v1/machines/{id}/patch-status` gives the same answer, with
    /// `include=patch_status`: a portal lists once, then polls each machine with `If-None-Match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_status_etag: Option<String>,
}
