//! `/v1/releases` (the catalog of baselines and hotpatches, with the publishing rules) and
//! `/v1/updates` (the updates hotpatch does not cover).
//!
//! Publishing reads the catalog under a per-OS lock, checks the rules (pure, in the scheduler)
//! and inserts; a refused release is a 409 (it collides with the catalog) or a 422 (the rules
//! forbid it), whose `detail` names the rule.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_app::rollouts;
use hotpatch_domain::validation::has_control;
use hotpatch_domain::{Classification, FieldError, Month, OsVersion, ReleaseKind, ReleaseSpec, UpdateSpec};
use hotpatch_scheduler::cycle::{check_publish, PublishRuleViolation};
use hotpatch_store::releases::{self, ReleaseFilter, StoredRelease, StoredUpdate, UpdateFilter};
use hotpatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

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

pub use hotpatch_app::catalog::ReleaseRef;

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

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_release, list_releases))
        .routes(routes!(get_release))
        .routes(routes!(publish_update, list_updates))
}

/// A refused release as a problem: 409 when it collides with the catalog, 422 otherwise.
fn refused(v: PublishRuleViolation) -> ApiError {
    let field = match &v {
        PublishRuleViolation::KbTaken { .. } => "kb",
        PublishRuleViolation::UnplannedHotpatch => "planned",
        _ => "month",
    };
    if v.is_conflict() {
        ApiError::Conflict(v.to_string())
    } else {
        let detail = v.to_string();
        ApiError::Unprocessable { errors: vec![FieldError::new(field, detail.clone())], detail }
    }
}

/// The catalog's constraints, for a writer that raced past the rules' check (another OS's
/// publisher taking the same KB).
fn constraint_refused(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict { constraint, .. } if constraint.ends_with("_kb_key") => {
            ApiError::Conflict("rule 'kb unique': that KB is already in the catalog".to_owned())
        }
        StoreError::Conflict { constraint, .. } if constraint == "release_one_active_per_os_month" => {
            ApiError::Conflict(
                "rule 'one active release per os and month': that month already has a release".to_owned(),
            )
        }
        e => e.into(),
    }
}

/// Publish a release. Rules: planned baselines only in baseline months; hotpatches only in the
/// two months after a published baseline of the same OS; an unplanned baseline in a hotpatch
/// month supersedes that month's hotpatch (kept, marked `superseded_by`); one active release
/// per OS and month; KB unique. A violation's `detail` names the rule. Publishing a current
/// release starts its automatic rollout to `automatic_by_platform` machines
/// (`automatic_rollout_id`; `HOTPATCH_AUTOMATIC_ROLLOUTS=false` turns that off).
#[utoipa::path(post, path = "/v1/releases", tag = "releases", request_body = ReleaseSpec,
    responses(
        (status = 201, description = "Published", body = ReleaseView),
        (status = 409, description = "The KB or the month is taken (`conflict`)", body = Problem),
        (status = 422, description = "Invalid fields or a publishing rule forbids it (`validation_failed`)", body = Problem)),
    security(("bearer" = [])))]
async fn publish_release(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(spec): ApiJson<ReleaseSpec>,
) -> Result<Response, ApiError> {
    let mut tx = state.pool.begin().await?;
    releases::lock_catalog(&mut tx, spec.os).await?;
    let catalog = releases::catalog(&mut *tx).await?;
    let publication = check_publish(&catalog, &spec, &state.settings.calendar).map_err(refused)?;
    let r = releases::insert(&mut tx, &spec, publication.supersedes).await.map_err(constraint_refused)?;
    let rollout = rollouts::start_automatic(&state, &mut tx, &r.release, &catalog, state.clock.now()).await?;
    tx.commit().await?;
    tracing::info!(release_id = %r.release.id, kb = %r.release.spec.kb, month = %r.release.spec.month,
        kind = <&'static str>::from(r.release.spec.kind), supersedes = ?publication.supersedes, "release published");
    let location = format!("/v1/releases/{}", r.release.id);
    let view = ReleaseView { automatic_rollout_id: rollout, ..ReleaseView::from(r) };
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)).into_response())
}

fn parse_os(v: &str) -> Result<OsVersion, ApiError> {
    v.parse().map_err(|_| {
        ApiError::bad_param(
            "os",
            format!("'{}' is not one of windows_server_2022, windows_server_2025", v.escape_debug()),
        )
    })
}

fn release_filter(raw: Option<&str>) -> Result<ReleaseFilter, ApiError> {
    let mut filter = ReleaseFilter::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "os" => filter.os = Some(parse_os(&v)?),
            "kind" => {
                filter.kind = Some(v.parse().map_err(|_| {
                    ApiError::bad_param(
                        "kind",
                        format!("'{}' is not one of baseline, hotpatch", v.escape_debug()),
                    )
                })?)
            }
            "from" | "to" => {
                let month: Month =
                    v.parse().map_err(|e: String| ApiError::bad_param(&k, e.escape_debug().to_string()))?;
                if k == "from" {
                    filter.from_month = Some(month.to_string());
                } else {
                    filter.to_month = Some(month.to_string());
                }
            }
            _ => {}
        }
    }
    Ok(filter)
}

/// The catalog, a page at a time in publication order; filters `os`, `kind`, and months
/// `from`/`to` (`YYYY-MM`, inclusive). Superseded hotpatches stay listed with `superseded_by`.
#[utoipa::path(get, path = "/v1/releases", tag = "releases",
    params(
        ("os" = Option<OsVersion>, Query, description = "OS release"),
        ("kind" = Option<ReleaseKind>, Query, description = "baseline or hotpatch"),
        ("from" = Option<String>, Query, description = "First month, YYYY-MM"),
        ("to" = Option<String>, Query, description = "Last month, YYYY-MM"),
        ("limit" = Option<i64>, Query, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of releases", body = Page<ReleaseView>),
        (status = 400, description = "Bad filter or paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_releases(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<ReleaseView>>, ApiError> {
    let filter = release_filter(raw.as_deref())?;
    let paging = PageParams::from_query(raw.as_deref(), &["os", "kind", "from", "to"])?;
    let rows = releases::list(&state.pool, &filter, paging.after, paging.limit + 1).await?;
    Ok(Json(page(rows, paging.limit, |r| r.release.id, ReleaseView::from)))
}

/// One release.
#[utoipa::path(get, path = "/v1/releases/{id}", tag = "releases",
    params(("id" = Uuid, Path, description = "Release id")),
    responses((status = 200, description = "The release", body = ReleaseView),
        (status = 404, description = "No such release", body = Problem)),
    security(("bearer" = [])))]
async fn get_release(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<ReleaseView>, ApiError> {
    let r = releases::get(&state.pool, id).await.or_not_found(|| format!("no release with id {id}"))?;
    Ok(Json(r.into()))
}

/// Publish an update hotpatch does not cover (non-security, .NET, drivers, firmware…).
/// `requires_reboot` defaults from the classification (all but `definition`).
#[utoipa::path(post, path = "/v1/updates", tag = "releases", request_body = UpdateSpec,
    responses(
        (status = 201, description = "Published", body = UpdateView),
        (status = 409, description = "The KB is taken", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn publish_update(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(spec): ApiJson<UpdateSpec>,
) -> Result<Response, ApiError> {
    let title = spec.title.trim();
    if title.is_empty() || title.chars().count() > 500 || has_control(&spec.title) {
        return Err(ApiError::field("title", "must be 1–500 characters, without control characters"));
    }
    let u = releases::insert_update(&state.pool, &spec).await.map_err(|e| match e {
        StoreError::Conflict { .. } => {
            ApiError::Conflict(format!("an update with {} is already published", spec.kb))
        }
        e => e.into(),
    })?;
    tracing::info!(update_id = %u.id, kb = %u.spec.kb, "update published");
    let location = format!("/v1/updates/{}", u.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(UpdateView::from(u))).into_response())
}

/// Updates hotpatch does not cover, a page at a time; filters `os` (also lists updates for
/// every OS) and `classification`.
#[utoipa::path(get, path = "/v1/updates", tag = "releases",
    params(
        ("os" = Option<OsVersion>, Query, description = "OS release"),
        ("classification" = Option<Classification>, Query, description = "Classification"),
        ("limit" = Option<i64>, Query, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of updates", body = Page<UpdateView>),
        (status = 400, description = "Bad filter or paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_updates(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<UpdateView>>, ApiError> {
    let mut filter = UpdateFilter::default();
    for (k, v) in form_urlencoded::parse(raw.as_deref().unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "os" => filter.os = Some(parse_os(&v)?),
            "classification" => {
                filter.classification = Some(v.parse().map_err(|_| {
                    ApiError::bad_param(
                        "classification",
                        format!("'{}' is not a classification", v.escape_debug()),
                    )
                })?)
            }
            _ => {}
        }
    }
    let paging = PageParams::from_query(raw.as_deref(), &["os", "classification"])?;
    let rows = releases::list_updates(&state.pool, &filter, paging.after, paging.limit + 1).await?;
    Ok(Json(page(rows, paging.limit, |u| u.id, UpdateView::from)))
}
