//! Automatic rollouts (DESIGN §1): publishing a current release starts its rollout to every
//! `automatic_by_platform` machine, in the publishing transaction, so a published release never
//! misses its rollout.
//!
//! Only "nothing to roll out" (no machine at all, or none that installs the release) starts
//! nothing. Any other failure, e.g. a stored maintenance configuration that no longer loads,
//! fails the publication: an error is logged here, counted with the request's 5xx, and the
//! release is not published, rather than published without the rollout its machines need.

use chrono::{DateTime, Utc};
use hotpatch_domain::operation::Selector;
use hotpatch_domain::rollout::RolloutOptions;
use hotpatch_domain::Release;
use hotpatch_store::rollouts::{self, Transition};
use sqlx::PgConnection;
use uuid::Uuid;

use super::plan::{deadline, plan_selected};
use super::start::write;
use crate::error::AppError;
use crate::App;

/// Whether publishing `release` starts its automatic rollout: automatic rollouts are on, and
/// the release is current: the newest of its OS (`catalog` is the catalog before it) and
/// within its 30-day deadline (importing an old catalog starts nothing).
fn is_current(app: &App, release: &Release, catalog: &[Release], now: DateTime<Utc>) -> bool {
    let newer = catalog.iter().any(|r| r.spec.os == release.spec.os && r.spec.month > release.spec.month);
    app.settings.automatic_rollouts && !newer && deadline(release) > now
}

/// Starts the automatic rollout of the just published `release` (in the caller's
/// transaction `conn`); its id, or `None` when the release is not current or no machine
/// installs it. The OS's unfinished automatic rollouts of older releases are canceled first:
/// the planner gives their machines what they still need of the new one (a machine on an old
/// baseline gets the baseline first).
pub async fn start_automatic(
    app: &App,
    conn: &mut PgConnection,
    release: &Release,
    catalog: &[Release],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, AppError> {
    if !is_current(app, release, catalog, now) {
        return Ok(None);
    }
    for old in rollouts::automatic_in_flight(&mut *conn, release.spec.os, release.id).await? {
        if let Transition::Done(c) = rollouts::cancel(&mut *conn, old, now).await? {
            tracing::info!(rollout_id = %old, release_id = %release.id, jobs_canceled = c.jobs_canceled,
                "automatic rollout replaced by the newer release's");
        }
    }
    let selector = Selector::default();
    let options =
        RolloutOptions { max_batch_percent: app.settings.automatic_max_batch_percent, ..Default::default() };
    let planned = match plan_selected(app, &mut *conn, release.id, &selector, options, now).await {
        Ok(Some(planned)) => planned,
        Ok(None) => {
            tracing::info!(release_id = %release.id, "no machine in the fleet: no automatic rollout");
            return Ok(None);
        }
        Err(e) => {
            tracing::error!(release_id = %release.id, error = %e,
                    "the automatic rollout could not be planned; the release is not published");
            return Err(e);
        }
    };
    if planned.installs_nothing() {
        tracing::info!(release_id = %release.id, selected = planned.selected,
            "no machine installs the release automatically");
        return Ok(None);
    }
    let selector = serde_json::to_value(&selector).map_err(AppError::internal)?;
    let id = Uuid::now_v7();
    let view = write(conn, id, &planned, &selector, None, now).await?;
    tracing::info!(rollout_id = %id, release_id = %release.id, machines = view.rollout.machine_count,
        "automatic rollout started");
    Ok(Some(id))
}
