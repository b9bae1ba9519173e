//! What a machine has installed (its last assessment) and what was done to it (its jobs).
//!
//! The history lists every install, rollback and reboot of the period (whoever asked: "install
//! now", a rollback, a rollout) with its outcome; assessments fill the rest of the answer.

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::job::{InstalledUpdate, JobKind, JobResult, JobState};
use hotpatch_domain::payload::{InstallPayload, RollbackPayload};
use hotpatch_store::installs::{self, HistoryJob};
use hotpatch_store::{agents, machines};
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, OrNotFound};
use crate::App;

/// The most history entries one answer lists.
pub const MAX_HISTORY: i64 = 1_000;

/// The updates installed on a machine, as of its last assessment.
#[derive(Debug, Serialize, ToSchema)]
pub struct InstalledUpdates {
    /// Installed updates.
    pub items: Vec<InstalledUpdate>,
    /// When the machine was assessed (`null`: never; then `items` is empty).
    pub assessed_at: Option<DateTime<Utc>>,
    /// The OS build it reported then.
    #[schema(example = "20348.2227")]
    pub os_build: Option<String>,
}

/// One thing done to a machine: an assessment, install, rollback or reboot.
#[derive(Debug, Serialize, ToSchema)]
pub struct HistoryEntry {
    /// The job.
    pub job_id: Uuid,
    /// What it did.
    pub kind: JobKind,
    /// Its outcome: `succeeded`, `failed` (see `error`) or `canceled`; `queued` and `leased`
    /// while not done.
    pub state: JobState,
    /// Claims so far.
    pub attempt: i32,
    /// KBs it installed (for a rollback: the baseline it reinstalled).
    #[schema(value_type = Vec<String>)]
    pub installed: Vec<hotpatch_domain::Kb>,
    /// KBs a successful rollback uninstalled.
    #[schema(value_type = Vec<String>)]
    pub uninstalled: Vec<hotpatch_domain::Kb>,
    /// The machine rebooted.
    pub rebooted: bool,
    /// A reboot was still pending when it ended (`null`: not reported).
    pub reboot_pending: Option<bool>,
    /// Why it failed.
    pub error: Option<String>,
    /// The catalog release it installed (rollouts).
    pub release_id: Option<Uuid>,
    /// The operation that asked for it ("assess now", "install now", a rollback).
    pub operation_id: Option<Uuid>,
    /// The rollout it belongs to.
    pub rollout_id: Option<Uuid>,
    /// When it was asked for.
    pub created_at: DateTime<Utc>,
    /// When its agent took it (its last attempt; `null`: not yet).
    pub started_at: Option<DateTime<Utc>>,
    /// When it ended.
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<HistoryJob> for HistoryEntry {
    fn from(j: HistoryJob) -> Self {
        // Results and payloads are read leniently: an entry with an unreadable one still lists.
        let result: Option<JobResult> = j.result.and_then(|r| serde_json::from_value(r).ok());
        let release_id = match j.kind {
            JobKind::Install => {
                serde_json::from_value::<InstallPayload>(j.payload.clone()).ok().and_then(|p| p.release_id)
            }
            _ => None,
        };
        let uninstalled = match (j.kind, j.state) {
            (JobKind::Rollback, JobState::Succeeded) => serde_json::from_value::<RollbackPayload>(j.payload)
                .ok()
                .and_then(|p| p.uninstalls().map(|r| r.kb.clone()))
                .into_iter()
                .collect(),
            _ => vec![],
        };
        HistoryEntry {
            job_id: j.id,
            kind: j.kind,
            state: j.state,
            attempt: j.attempt,
            installed: result.as_ref().map(|r| r.installed.clone()).unwrap_or_default(),
            uninstalled,
            rebooted: result.as_ref().and_then(|r| r.rebooted).unwrap_or(false),
            reboot_pending: result.as_ref().and_then(|r| r.reboot_pending),
            error: j.error,
            release_id,
            operation_id: j.operation_id,
            rollout_id: j.rollout_id,
            created_at: j.created_at,
            started_at: j.started_at,
            finished_at: j.finished_at,
        }
    }
}

/// A machine's update history, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateHistory {
    /// Entries of the requested days, newest first: every install, rollback and reboot, and
    /// assessments up to 1,000 entries in all.
    pub items: Vec<HistoryEntry>,
}

/// Refuses a machine that does not exist.
async fn known(app: &App, id: Uuid) -> Result<(), AppError> {
    machines::get(&app.pool, id).await.or_not_found(|| format!("no machine with id {id}")).map(drop)
}

/// The updates installed on a machine: KB, title, classification, install date and installer,
/// from its last assessment (with the OS build it reported).
pub async fn installed_updates(app: &App, id: Uuid) -> Result<InstalledUpdates, AppError> {
    known(app, id).await?;
    let inventory = agents::inventory(&app.pool, id).await?;
    Ok(match inventory {
        Some(i) => InstalledUpdates {
            items: i.installed_updates,
            assessed_at: Some(i.assessed_at),
            os_build: i.os_build,
        },
        None => InstalledUpdates { items: vec![], assessed_at: None, os_build: None },
    })
}

/// Every install, rollback and reboot of the machine in the last `days`, and the assessments
/// of the period, newest first (at most [`MAX_HISTORY`] entries).
pub async fn update_history(app: &App, id: Uuid, days: i64) -> Result<UpdateHistory, AppError> {
    known(app, id).await?;
    let since = app.clock.now() - TimeDelta::days(days);
    let items = installs::history(&app.pool, id, since, MAX_HISTORY)
        .await?
        .into_iter()
        .map(HistoryEntry::from)
        .collect();
    Ok(UpdateHistory { items })
}
