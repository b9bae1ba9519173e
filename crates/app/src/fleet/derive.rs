//! What the service derives from a machine's spec at write time: the eligibility verdict
//! against the current region data, the hotpatch status and the Arc enrollment. It is stored
//! with the spec, so lists filter on it and reads never re-evaluate; a change of region data
//! re-derives it for the machines that depend on that region.

use hotpatch_domain::{
    assess, Eligibility, Enrollment, HotpatchStatus, MachineSpec, Platform, RegionCapabilities,
};
use hotpatch_store::machines::{self, MachineWrite};
use hotpatch_store::regions;
use sqlx::PgConnection;

use crate::error::AppError;

/// Everything derived from a spec at write time.
pub(crate) struct Derived {
    /// The eligibility rules' verdict.
    pub(crate) eligibility: Eligibility,
    /// The hotpatch status that follows from the verdict and the operator's switch.
    pub(crate) status: HotpatchStatus,
    /// The Arc enrollment after this write (Arc-connected machines only).
    pub(crate) enrollment: Option<Enrollment>,
}

/// Validates a spec and derives its state; `previous` is the enrollment before a change.
/// Invalid fields are [`AppError::Unprocessable`]; hotpatch requested where a rule forbids it
/// is [`AppError::Ineligible`].
pub(crate) fn derive(
    spec: &MachineSpec,
    caps: &RegionCapabilities,
    previous: Option<Enrollment>,
) -> Result<Derived, AppError> {
    let errors = spec.validate();
    if !errors.is_empty() {
        return Err(AppError::invalid(errors));
    }
    let eligibility = assess(spec, caps);
    if spec.hotpatch_enabled {
        if let Some(rejection) = eligibility.rejection() {
            return Err(rejection.into());
        }
    }
    let enrollment = (spec.platform == Platform::ArcConnected)
        .then(|| previous.unwrap_or(Enrollment::NotEnrolled).requested(spec.hotpatch_enabled));
    let status = HotpatchStatus::from_flags(eligibility.eligible, spec.hotpatch_enabled);
    Ok(Derived { eligibility, status, enrollment })
}

/// The row to write for a spec and what was derived from it.
pub(crate) fn write<'a>(spec: &'a MachineSpec, d: &'a Derived) -> MachineWrite<'a> {
    MachineWrite { spec, eligibility: &d.eligibility, hotpatch_status: d.status, enrollment: d.enrollment }
}

/// Re-evaluates the machines whose eligibility depends on `region` after its data changed, in
/// the caller's transaction; answers how many were evaluated.
pub(crate) async fn reevaluate_region(tx: &mut PgConnection, region: &str) -> Result<usize, AppError> {
    let caps = regions::capabilities(&mut *tx).await?;
    let affected = machines::affected_by_region(tx, region).await?;
    for m in &affected {
        let eligibility = assess(&m.spec, &caps);
        // Unchanged verdicts need no write.
        if eligibility == m.eligibility {
            continue;
        }
        // The operator changed region data, not the machine: keep the machine's switch
        // and let its status say it can no longer take hotpatches.
        let status = HotpatchStatus::from_flags(eligibility.eligible, m.spec.hotpatch_enabled);
        let w = MachineWrite {
            spec: &m.spec,
            eligibility: &eligibility,
            hotpatch_status: status,
            enrollment: m.enrollment,
        };
        machines::update(tx, m.id, &w).await?;
    }
    Ok(affected.len())
}
