//! `/v1/machines`: register, list with filters, read, update, delete; the use cases are
//! `hotpatch_app::fleet`'s.
//!
//! Every write runs the eligibility rules against the current region data and stores
//! the verdict, so lists filter on it and reads never re-evaluate.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::fleet::{self, MachineFilter, MachineListItem, MachineView, NameMatch};
use hotpatch_domain::validation::{is_identifier, is_label_key, is_label_value};
use hotpatch_domain::{HotpatchStatus, MachinePatch, MachineSpec, OsVersion};
use sha2::Digest as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, Problem};
use crate::etag::{json_with_etag, not_modified, IfNoneMatch};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_machine, list_machines)).routes(routes!(
        get_machine,
        patch_machine,
        delete_machine
    ))
}

/// Register a machine; the answer carries its eligibility.
#[utoipa::path(post, path = "/v1/machines", tag = "machines", request_body = MachineSpec,
    responses(
        (status = 201, description = "Registered", body = MachineView),
        (status = 400, description = "Hotpatch requested where a rule forbids it (code names the rule)", body = Problem),
        (status = 409, description = "Name taken", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn create_machine(
    State(state): State<AppState>,
    _: Operator,
    ApiJson(spec): ApiJson<MachineSpec>,
) -> Result<Response, ApiError> {
    let machine = fleet::register(&state, spec).await?;
    let location = format!("/v1/machines/{}", machine.id);
    Ok((StatusCode::CREATED, [(header::LOCATION, location)], Json(machine)).into_response())
}

/// Reads the filters of `GET /v1/machines` (`PageParams` refuses unknown parameters).
fn list_filter(raw: Option<&str>) -> Result<MachineFilter, ApiError> {
    let mut filter = MachineFilter::default();
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "region" => {
                if !is_identifier(&v, 64) {
                    return Err(ApiError::bad_param(
                        "region",
                        "must be 1–64 lower-case letters, digits or dashes",
                    ));
                }
                filter.region = Some(v.into_owned())
            }
            "os" => {
                filter.os = Some(v.parse::<OsVersion>().map_err(|_| {
                    ApiError::bad_param(
                        "os",
                        format!("'{v}' is not one of windows_server_2022, windows_server_2025"),
                    )
                })?)
            }
            "hotpatch_status" => {
                filter.hotpatch_status = Some(v.parse::<HotpatchStatus>().map_err(|_| {
                    ApiError::bad_param(
                        "hotpatch_status",
                        format!("'{v}' is not one of enabled, disabled, not_eligible, needs_baseline"),
                    )
                })?)
            }
            "name" => {
                let name = match v.strip_suffix('*') {
                    Some(prefix) => NameMatch::Prefix(prefix.to_owned()),
                    None => NameMatch::Exact(v.clone().into_owned()),
                };
                filter.name = Some(name);
            }
            "label" => {
                let (key, value) = v
                    .split_once(':')
                    .filter(|(k, _)| !k.is_empty())
                    .filter(|(k, v)| is_label_key(k) && is_label_value(v))
                    .ok_or_else(|| {
                        ApiError::bad_param(
                            "label",
                            format!("'{}' is not of the form key:value", v.escape_debug()),
                        )
                    })?;
                filter.labels.insert(key.to_owned(), value.to_owned());
            }
            _ => {}
        }
    }
    Ok(filter)
}

/// Reads `?include=`: only `patch_status` is known.
fn include_status(raw: Option<&str>) -> Result<bool, ApiError> {
    let mut include = false;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        if k == "include" {
            for part in v.split(',') {
                match part {
                    "patch_status" => include = true,
                    other => {
                        return Err(ApiError::bad_param(
                            "include",
                            format!("'{}' is not one of patch_status", other.escape_debug()),
                        ))
                    }
                }
            }
        }
    }
    Ok(include)
}

/// List machines, filtered by `name` (exact; a trailing `*` matches names that begin with the
/// rest, e.g. `web-*`), `region`, `os`, `label=key:value` (repeatable; all must match) and
/// `hotpatch_status`, a page at a time; `include=patch_status` adds each machine's
/// patch status. The page carries a strong `ETag` of its content; `If-None-Match` with it
/// (or `*`; weak forms compare weakly) answers 304.
#[utoipa::path(get, path = "/v1/machines", tag = "machines",
    params(
        ("name" = Option<String>, Query, description = "Exact name; with a trailing `*`, names beginning with the rest (`web-*`)"),
        ("region" = Option<String>, Query, pattern = "^[a-z0-9][a-z0-9-]{0,63}$", description = "Exact region"),
        ("os" = Option<OsVersion>, Query, description = "OS release"),
        ("label" = Option<String>, Query, pattern = "^[A-Za-z0-9._/-]{1,63}:[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]{0,256}$", description = "key:value, repeatable"),
        ("hotpatch_status" = Option<HotpatchStatus>, Query, description = "Hotpatch status"),
        ("include" = Option<String>, Query, pattern = "^patch_status(,patch_status)*$", description = "`patch_status`: each machine's patch status too"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page"),
        ("If-None-Match" = Option<String>, Header, description = "ETag of an earlier page; `*` matches any")),
    responses((status = 200, description = "A page of machines", body = Page<MachineListItem>,
            headers(("ETag" = String, description = "Strong entity tag of the page"))),
        (status = 304, description = "Unchanged since the ETag given in If-None-Match"),
        (status = 400, description = "Bad filter or paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_machines(
    State(state): State<AppState>,
    _: Reader,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let filter = list_filter(raw.as_deref())?;
    let paging = PageParams::from_query(
        raw.as_deref(),
        &["name", "region", "os", "hotpatch_status", "label", "include"],
    )?;
    let include = include_status(raw.as_deref())?;
    let items = fleet::list(&state, &filter, paging.after, paging.limit, include).await?;
    let page = page(items, paging.limit, |m| m.machine.id, |m| m);
    // The page's tag is a digest of its content: exact by construction, and a page is computed
    // in two queries whatever the answer.
    let body = serde_json::to_vec(&page).map_err(ApiError::internal)?;
    let digest = sha2::Sha256::digest(&body);
    let etag = format!("\"{}\"", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    if IfNoneMatch::of(&headers).matches(&etag) {
        return not_modified(&etag);
    }
    json_with_etag(&etag, body)
}

/// One machine.
#[utoipa::path(get, path = "/v1/machines/{id}", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 200, description = "The machine", body = MachineView),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn get_machine(
    State(state): State<AppState>,
    _: Reader,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Response, ApiError> {
    let body = fleet::get_json(&state, id).await?;
    Ok(([(header::CONTENT_TYPE, HeaderValue::from_static("application/json"))], body).into_response())
}

/// Change some fields of a machine; the eligibility rules are checked again.
#[utoipa::path(patch, path = "/v1/machines/{id}", tag = "machines", request_body = MachinePatch,
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 200, description = "Updated", body = MachineView),
        (status = 400, description = "Hotpatch on where a rule forbids it", body = Problem),
        (status = 404, description = "No such machine", body = Problem),
        (status = 409, description = "Name taken", body = Problem),
        (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn patch_machine(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    ApiJson(patch): ApiJson<MachinePatch>,
) -> Result<Json<MachineView>, ApiError> {
    Ok(Json(fleet::update(&state, id, patch).await?))
}

/// Remove a machine from the fleet (its agent tokens stop working).
#[utoipa::path(delete, path = "/v1/machines/{id}", tag = "machines",
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 204, description = "Deleted"), (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn delete_machine(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    fleet::delete(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
