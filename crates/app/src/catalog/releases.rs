//! Releases: publishing under the catalog's rules, and reading the catalog.
//!
//! Publishing reads the catalog under a per-OS lock, checks the rules (pure, in the scheduler)
//! and inserts; a refused release is a conflict (it collides with the catalog) or invalid (the
//! rules forbid it), and the detail names the rule. Publishing a current release starts its
//! automatic rollout in the same transaction ([`crate::rollouts::start_automatic`]).

use chrono::{DateTime, Utc};
use hotpatch_domain::{FieldError, ReleaseSpec};
use hotpatch_scheduler::cycle::{check_publish, PublishRuleViolation};
use hotpatch_store::releases::{self, ReleaseFilter, StoredRelease};
use hotpatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, OrNotFound};
use crate::{rollouts, App};

/// A release in the catalog.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReleaseView {
    /// Identifier.
    pub id: Uuid,
    /// What was published.
    #[serde(flatten)]
    pub spec: ReleaseSpec,
    /// The unplanned baseline that replaced this hotpatch; it then no longer applies.
    pub superseded_by: Option<Uuid>,
    /// Whether installing it requires a reboot (baselines).
    pub reboot_required: bool,
    /// When it was published here.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The rollout its publication started (only in the answer to `POST /v1/releases`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatic_rollout_id: Option<Uuid>,
}

impl From<StoredRelease> for ReleaseView {
    fn from(s: StoredRelease) -> Self {
        ReleaseView {
            id: s.release.id,
            reboot_required: s.release.spec.kind.requires_reboot(),
            spec: s.release.spec,
            superseded_by: s.release.superseded_by,
            created_at: s.created_at,
            updated_at: s.updated_at,
            automatic_rollout_id: None,
        }
    }
}

/// A refused release: a conflict when it collides with the catalog, invalid otherwise.
pub(crate) fn refused(v: PublishRuleViolation) -> AppError {
    let field = match &v {
        PublishRuleViolation::KbTaken { .. } => "kb",
        PublishRuleViolation::UnplannedHotpatch => "planned",
        _ => "month",
    };
    if v.is_conflict() {
        AppError::Conflict(v.to_string())
    } else {
        let detail = v.to_string();
        AppError::Unprocessable { errors: vec![FieldError::new(field, detail.clone())], detail }
    }
}

/// The catalog's constraints, for a writer that raced past the rules' check (another OS's
/// publisher taking the same KB).
fn constraint_refused(e: StoreError) -> AppError {
    match e {
        StoreError::Conflict { constraint, .. } if constraint.ends_with("_kb_key") => {
            AppError::Conflict("rule 'kb unique': that KB is already in the catalog".to_owned())
        }
        StoreError::Conflict { constraint, .. } if constraint == "release_one_active_per_os_month" => {
            AppError::Conflict(
                "rule 'one active release per os and month': that month already has a release".to_owned(),
            )
        }
        e => e.into(),
    }
}

/// Publishes a release under the catalog's rules (planned baselines only in baseline months;
/// hotpatches only in the two months after a baseline of the same OS; an unplanned baseline in
/// a hotpatch month supersedes that month's hotpatch; one active release per OS and month; KB
/// unique). A current release starts its automatic rollout in the same transaction: the view
/// carries its id in `automatic_rollout_id`.
pub async fn publish_release(app: &App, spec: ReleaseSpec) -> Result<ReleaseView, AppError> {
    let mut tx = app.pool.begin().await?;
    releases::lock_catalog(&mut tx, spec.os).await?;
    let catalog = releases::catalog(&mut *tx).await?;
    let publication = check_publish(&catalog, &spec, &app.settings.calendar).map_err(refused)?;
    let r = releases::insert(&mut tx, &spec, publication.supersedes).await.map_err(constraint_refused)?;
    let rollout = rollouts::start_automatic(app, &mut tx, &r.release, &catalog, app.clock.now()).await?;
    tx.commit().await?;
    if rollout.is_some() {
        // An automatic rollout takes the whole fleet: as large as rollouts get.
        rollouts::refresh_statistics(app).await;
    }
    tracing::info!(release_id = %r.release.id, kb = %r.release.spec.kb, month = %r.release.spec.month,
        kind = <&'static str>::from(r.release.spec.kind), supersedes = ?publication.supersedes, "release published");
    Ok(ReleaseView { automatic_rollout_id: rollout, ..ReleaseView::from(r) })
}

/// Releases matching `filter` in publication order, after the release `after`, at most `limit`.
pub async fn list_releases(
    app: &App,
    filter: &ReleaseFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<ReleaseView>, AppError> {
    let rows = releases::list(&app.pool, filter, after, limit).await?;
    Ok(rows.into_iter().map(ReleaseView::from).collect())
}

/// One release.
pub async fn get_release(app: &App, id: Uuid) -> Result<ReleaseView, AppError> {
    let r = releases::get(&app.pool, id).await.or_not_found(|| format!("no release with id {id}"))?;
    Ok(r.into())
}
