//! `/v1/releases` (the catalog of baselines and hotpatches, with the publishing rules) and
//! `/v1/updates` (the updates hotpatch does not cover): the HTTP side of
//! [`hotpatch_app::catalog`].
//!
//! A refused release is a 409 (it collides with the catalog) or a 422 (the rules forbid it),
//! whose `detail` names the rule.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::catalog::{self, ReleaseFilter, ReleaseView, UpdateFilter, UpdateView};
use hotpatch_domain::{Classification, Month, OsVersion, ReleaseKind, ReleaseSpec, UpdateSpec};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(publish_release, list_releases))
        .routes(routes!(get_release))
        .routes(routes!(publish_update, list_updates))
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
    let view = catalog::publish_release(&state, spec).await?;
    let location = format!("/v1/releases/{}", view.id);
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
        ("from" = Option<String>, Query, pattern = "^[2-9][0-9]{3}-(0[1-9]|1[0-2])$", description = "First month, YYYY-MM (2000-01 to 9999-12)"),
        ("to" = Option<String>, Query, pattern = "^[2-9][0-9]{3}-(0[1-9]|1[0-2])$", description = "Last month, YYYY-MM (2000-01 to 9999-12)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
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
    let views = catalog::list_releases(&state, &filter, paging.after, paging.limit + 1).await?;
    Ok(Json(page(views, paging.limit, |r| r.id, |r| r)))
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
    Ok(Json(catalog::get_release(&state, id).await?))
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
    let view = catalog::publish_update(&state, spec).await?;
    let location = format!("/v1/updates/{}", view.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(view)).into_response())
}

/// Updates hotpatch does not cover, a page at a time; filters `os` (also lists updates for
/// every OS) and `classification`.
#[utoipa::path(get, path = "/v1/updates", tag = "releases",
    params(
        ("os" = Option<OsVersion>, Query, description = "OS release"),
        ("classification" = Option<Classification>, Query, description = "Classification"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
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
    let views = catalog::list_updates(&state, &filter, paging.after, paging.limit + 1).await?;
    Ok(Json(page(views, paging.limit, |u| u.id, |u| u)))
}
