//! The updates hotpatch does not cover (non-security, .NET, drivers, firmware…): published for
//! update compliance, installed only on request.

use chrono::{DateTime, Utc};
use hotpatch_domain::validation::has_control;
use hotpatch_domain::{Classification, OsVersion, UpdateSpec};
use hotpatch_store::releases::{self, StoredUpdate, UpdateFilter};
use hotpatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::AppError;
use crate::App;

/// An update hotpatch does not cover.
#[derive(Debug, Serialize, ToSchema)]
pub struct UpdateView {
    /// Identifier.
    pub id: Uuid,
    /// KB number.
    #[schema(value_type = String, example = "KB5034685")]
    pub kb: String,
    /// Title.
    pub title: String,
    /// Classification.
    pub classification: Classification,
    /// The OS it is for; `null` for every OS.
    pub os: Option<OsVersion>,
    /// Whether installing it requires a reboot.
    pub requires_reboot: bool,
    /// Whether automatic patching installs it (critical and security only); the others are
    /// listed as available and installed on request.
    pub auto_installed: bool,
    /// When it was released.
    pub released_at: DateTime<Utc>,
    /// When it was published here.
    pub created_at: DateTime<Utc>,
}

impl From<StoredUpdate> for UpdateView {
    fn from(u: StoredUpdate) -> Self {
        UpdateView {
            id: u.id,
            kb: u.spec.kb.to_string(),
            title: u.spec.title,
            classification: u.spec.classification,
            os: u.spec.os,
            requires_reboot: u.spec.requires_reboot.unwrap_or(true),
            auto_installed: u.spec.classification.is_auto_installed(),
            released_at: u.spec.released_at,
            created_at: u.created_at,
        }
    }
}

/// Publishes an update; `requires_reboot` defaults from the classification. The title must be
/// 1–500 characters without control characters; a taken KB is a conflict.
pub async fn publish_update(app: &App, spec: UpdateSpec) -> Result<UpdateView, AppError> {
    let title = spec.title.trim();
    if title.is_empty() || title.chars().count() > 500 || has_control(&spec.title) {
        return Err(AppError::field("title", "must be 1–500 characters, without control characters"));
    }
    let u = releases::insert_update(&app.pool, &spec).await.map_err(|e| match e {
        StoreError::Conflict { .. } => {
            AppError::Conflict(format!("an update with {} is already published", spec.kb))
        }
        e => e.into(),
    })?;
    tracing::info!(update_id = %u.id, kb = %u.spec.kb, "update published");
    Ok(u.into())
}

/// Updates matching `filter` in publication order, after the update `after`, at most `limit`.
pub async fn list_updates(
    app: &App,
    filter: &UpdateFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<UpdateView>, AppError> {
    let rows = releases::list_updates(&app.pool, filter, after, limit).await?;
    Ok(rows.into_iter().map(UpdateView::from).collect())
}
