//! `/v1/calendar-feeds` (reader or above): make, list and revoke the read-only URLs through which
//! calendar apps, which cannot send a bearer token, read a machine's or a maintenance
//! configuration's windows (served at `/v1/feeds/{secret}.ics` by the windows module). The use
//! cases are [`hotpatch_app::schedules::feeds`]; each caller sees and revokes their own feeds,
//! an admin every one.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::schedules::feeds::{self, CreateFeed, CreatedFeed, FeedView};
use hotpatch_domain::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Principal, Reader};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_feed, list_feeds)).routes(routes!(delete_feed))
}

/// Whose feeds a caller may see and revoke: their own, or every one for an admin.
fn owner(p: &Principal) -> Option<Uuid> {
    (p.role != Role::Admin).then_some(p.token_id)
}

/// Makes a calendar feed of a machine or a maintenance configuration: 201 with its `url`
/// (`/v1/feeds/<secret>.ics`, shown once), which serves the calendar without a token until the
/// feed, or the token that made it, is revoked.
#[utoipa::path(post, path = "/v1/calendar-feeds", tag = "maintenance", request_body = CreateFeed,
    responses((status = 201, description = "Created; `url` is shown once", body = CreatedFeed),
        (status = 422, description = "Not exactly one of the two ids, or no such machine or configuration",
            body = Problem)),
    security(("bearer" = [])))]
async fn create_feed(
    State(state): State<AppState>,
    Reader(principal): Reader,
    ApiJson(req): ApiJson<CreateFeed>,
) -> Result<Response, ApiError> {
    let created = feeds::create(&state, principal.token_id, req).await?;
    let location = format!("/v1/calendar-feeds/{}", created.feed.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(created)).into_response())
}

/// The caller's calendar feeds (an admin's: every feed), without their URLs.
#[utoipa::path(get, path = "/v1/calendar-feeds", tag = "maintenance",
    params(("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of feeds", body = Page<FeedView>),
        (status = 400, description = "Bad paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_feeds(
    State(state): State<AppState>,
    Reader(principal): Reader,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<FeedView>>, ApiError> {
    let params = PageParams::from_query(raw.as_deref(), &[])?;
    let views = feeds::list(&state, owner(&principal), params.after, params.limit + 1).await?;
    Ok(Json(page(views, params.limit, |v| v.id, |v| v)))
}

/// Revokes a calendar feed: its URL answers 404 from now on. A feed someone else made is 404
/// too (an admin revokes any).
#[utoipa::path(delete, path = "/v1/calendar-feeds/{id}", tag = "maintenance",
    params(("id" = Uuid, Path, description = "Feed id")),
    responses((status = 204, description = "Revoked"),
        (status = 404, description = "No such feed of the caller's", body = Problem)),
    security(("bearer" = [])))]
async fn delete_feed(
    State(state): State<AppState>,
    Reader(principal): Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    feeds::revoke(&state, id, owner(&principal)).await?;
    Ok(StatusCode::NO_CONTENT)
}
