//! Rolling one machine back (DESIGN §1 "No automatic rollback"): uninstall its latest update,
//! install the last baseline, reboot. The plan comes from the machine's recorded state and the
//! catalog (`hotpatch_scheduler::cycle::rollback_plan`), spelled out in the job's payload.

use hotpatch_domain::job::JobKind;
use hotpatch_domain::operation::{Operation, OperationKind};
use hotpatch_domain::payload::{PlanRelease, RollbackPayload, RollbackStep};
use hotpatch_domain::Release;
use hotpatch_scheduler::cycle::{rollback_plan, MachineState, RollbackStep as PlanStep};
use hotpatch_store::machines::Machine;
use hotpatch_store::releases;
use serde::Serialize;
use sqlx::PgConnection;
use utoipa::ToSchema;
use uuid::Uuid;

use super::disruptive;
use super::idempotency::{Caller, Request};
use crate::error::AppError;
use crate::App;

/// A rollback's operation, with its plan.
#[derive(Debug, Serialize, ToSchema)]
pub struct RollbackOperation {
    /// The operation.
    #[serde(flatten)]
    pub operation: Operation,
    /// The steps the agent runs (uninstall the latest release, install the baseline, reboot)
    /// and the OS build after the reboot: the rollback job's payload.
    pub plan: RollbackPayload,
}

/// Rolls one machine back now: the operation, its plan and `warnings`. A 409 when the machine's
/// recorded state allows no rollback (nothing installed, the latest release unknown, no earlier
/// baseline) or it already has an install, rollback or reboot queued or running.
pub async fn rollback(app: &App, caller: &Caller, machine_id: Uuid) -> Result<RollbackOperation, AppError> {
    let path = format!("/v1/machines/{machine_id}/rollback");
    let body = serde_json::json!({ "machine_ids": [machine_id] });
    let request = Request { kind: OperationKind::Rollback, path: &path, body: &body, stored: &body };
    let started =
        disruptive::start(app, caller, (JobKind::Rollback, machine_id), request, async |tx, machine| {
            plan_rollback(tx, machine).await
        })
        .await?;
    if started.new {
        let operation_id = started.operation.id;
        tracing::info!(%operation_id, %machine_id, "rollback requested");
    }
    let mut operation = started.operation;
    operation.warnings = rollback_warnings(&started.payload);
    operation.warnings.extend(started.disconnected);
    Ok(RollbackOperation { operation, plan: started.payload })
}

/// The rollback plan of the machine's recorded state (its current baseline and latest installed
/// release), with the releases spelled out; a 409 when it cannot be rolled back.
async fn plan_rollback(tx: &mut PgConnection, machine: &Machine) -> Result<RollbackPayload, AppError> {
    let installed = releases::patch_state(&mut *tx, machine.id).await?;
    let catalog = releases::catalog_of(&mut *tx, machine.spec.os).await?;
    let machine_state = MachineState {
        hotpatch: machine.takes_hotpatches(),
        current_baseline: installed.current_baseline,
        latest_installed: installed.latest_installed,
        reboot_pending: installed.reboot_pending,
    };
    let steps = rollback_plan(&machine_state, &catalog).map_err(|refused| {
        AppError::Conflict(format!("machine {} cannot be rolled back: {refused}", machine.id))
    })?;
    let mut plan = RollbackPayload::default();
    for step in steps {
        plan.steps.push(match step {
            PlanStep::Uninstall { release_id } => {
                RollbackStep::Uninstall { release: plan_release(&catalog, release_id)? }
            }
            PlanStep::Install { release_id } => {
                RollbackStep::Install { release: plan_release(&catalog, release_id)? }
            }
            PlanStep::Reboot => RollbackStep::Reboot,
        });
    }
    plan.build = plan.installs().map(|b| b.build);
    Ok(plan)
}

/// The catalog release a plan step names.
fn plan_release(catalog: &[Release], id: Uuid) -> Result<PlanRelease, AppError> {
    catalog
        .iter()
        .find(|r| r.id == id)
        .map(PlanRelease::from)
        .ok_or_else(|| AppError::Internal(format!("rollback plan names release {id}, not in the catalog")))
}

/// What a rollback will do to the machine, in words.
pub fn rollback_warnings(plan: &RollbackPayload) -> Vec<String> {
    let describe = |r: &PlanRelease| {
        let kind: &'static str = r.kind.into();
        format!("{} ({} {kind})", r.kb, r.month)
    };
    let mut out = vec![
        "rollback does not follow availability-first rollout: this machine is rolled back at once, outside its \
         maintenance window"
            .to_owned(),
    ];
    let what = match (plan.uninstalls(), plan.installs()) {
        (Some(u), Some(b)) => {
            format!(": it uninstalls {}, installs the baseline {}", describe(u), describe(b))
        }
        _ => String::new(),
    };
    out.push(format!(
        "the machine reboots{what} and restarts into build {}",
        match plan.build {
            Some(b) => b.to_string(),
            None => "of its baseline".to_owned(),
        }
    ));
    if let Some(u) = plan.uninstalls() {
        out.push(format!(
            "{} will be offered again: automatic patching or a rollout reinstalls it in a later window unless \
             it is excluded (kb_exclude) or its rollout is paused",
            u.kb
        ));
    }
    out
}
