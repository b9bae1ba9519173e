//! `/v1/machines`: register (one or an import), list with filters, read, update, delete.
//!
//! Every write runs the eligibility rules against the current region data and stores
//! the verdict, so lists filter on it and reads never re-evaluate.

use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_domain::validation::{is_identifier, is_label_key, is_label_value};
use hotpatch_domain::{
    assess, Eligibility, Enrollment, HotpatchStatus, MachinePatch, MachineSpec, OsVersion, Platform,
    RegionCapabilities,
};
use hotpatch_store::machines::{self, Machine, MachineFilter, MachineWrite};
use hotpatch_store::regions;
use serde::Serialize;
use sha2::Digest as _;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{Operator, Reader};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::etag::{json_with_etag, not_modified, IfNoneMatch};
use crate::extract::{ApiJson, ApiPath};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// A registered machine.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineView {
    /// Identifier.
    pub id: Uuid,
    /// The registered fields.
    #[serde(flatten)]
    pub spec: MachineSpec,
    /// The eligibility rules' verdict.
    pub eligibility: Eligibility,
    /// Hotpatch status: enabled, disabled, not_eligible or needs_baseline.
    pub hotpatch_status: HotpatchStatus,
    /// Arc preview enrollment (Arc-connected machines only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enrollment: Option<Enrollment>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Machine> for MachineView {
    fn from(m: Machine) -> Self {
        MachineView {
            id: m.id,
            spec: m.spec,
            eligibility: m.eligibility,
            hotpatch_status: m.hotpatch_status,
            enrollment: m.enrollment,
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A machine of a list, with its patch status when `?include=patch_status` asked for it.
#[derive(Debug, Serialize, ToSchema)]
pub struct MachineListItem {
    /// The machine.
    #[serde(flatten)]
    pub machine: MachineView,
    /// Its patch status (as `GET /v1/machines/{id}/patch-status` answers), with `include=patch_status`.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<hotpatch_app::status::PatchStatusView>)]
    pub patch_status: Option<Box<serde_json::value::RawValue>>,
    /// The `ETag` that `GET /v1/machines/{id}/patch-status` gives the same answer, with
    /// `include=patch_status`: a portal lists once, then polls each machine with `If-None-Match`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub patch_status_etag: Option<String>,
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(create_machine, list_machines)).routes(routes!(
        get_machine,
        patch_machine,
        delete_machine
    ))
}

/// Everything derived from a spec at write time.
pub(crate) struct Derived {
    pub(crate) eligibility: Eligibility,
    status: HotpatchStatus,
    enrollment: Option<Enrollment>,
}

/// Validates a spec and derives its state; `previous` is the enrollment before a change.
pub(crate) fn derive(
    spec: &MachineSpec,
    caps: &RegionCapabilities,
    previous: Option<Enrollment>,
) -> Result<Derived, ApiError> {
    let errors = spec.validate();
    if !errors.is_empty() {
        let detail =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        return Err(ApiError::Unprocessable { detail, errors });
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

pub(crate) fn write<'a>(spec: &'a MachineSpec, d: &'a Derived) -> MachineWrite<'a> {
    MachineWrite { spec, eligibility: &d.eligibility, hotpatch_status: d.status, enrollment: d.enrollment }
}

fn created(m: Machine) -> Response {
    let location = format!("/v1/machines/{}", m.id);
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(MachineView::from(m))).into_response()
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
    let caps = regions::capabilities(&state.pool).await?;
    let derived = derive(&spec, &caps, None)?;
    let mut conn = state.pool.acquire().await?;
    let m = machines::insert(&mut conn, &write(&spec, &derived)).await?;
    tracing::info!(machine_id = %m.id, name = %m.spec.name, eligible = derived.eligibility.eligible, "machine registered");
    Ok(created(m))
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

/// List machines, filtered by `region`, `os`, `label=key:value` (repeatable; all must
/// match) and `hotpatch_status`, a page at a time; `include=patch_status` adds each machine's
/// patch status. The page carries a strong `ETag` of its content; `If-None-Match` with it
/// (or `*`; weak forms compare weakly) answers 304.
#[utoipa::path(get, path = "/v1/machines", tag = "machines",
    params(
        ("region" = Option<String>, Query, description = "Exact region"),
        ("os" = Option<OsVersion>, Query, description = "OS release"),
        ("label" = Option<String>, Query, description = "key:value, repeatable"),
        ("hotpatch_status" = Option<HotpatchStatus>, Query, description = "Hotpatch status"),
        ("include" = Option<String>, Query, description = "`patch_status`: each machine's patch status too"),
        ("limit" = Option<i64>, Query, description = "Page size, 1–1000, default 100"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page"),
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
    let paging =
        PageParams::from_query(raw.as_deref(), &["region", "os", "hotpatch_status", "label", "include"])?;
    let include = include_status(raw.as_deref())?;
    let rows = machines::list(&state.pool, &filter, paging.after, paging.limit + 1).await?;
    let mut answers = if include {
        let ids: Vec<Uuid> = rows.iter().take(paging.limit as usize).map(|m| m.id).collect();
        hotpatch_app::status::answers(&state, &ids).await?
    } else {
        Default::default()
    };
    let machines = page(rows, paging.limit, |m| m.id, MachineView::from);
    let page = Page {
        items: machines
            .items
            .into_iter()
            .map(|machine| {
                let (patch_status, patch_status_etag) = match answers.remove(&machine.id) {
                    Some(a) => (Some(raw_json(&a.body)?), Some(a.etag)),
                    None => (None, None),
                };
                Ok(MachineListItem { machine, patch_status, patch_status_etag })
            })
            .collect::<Result<_, ApiError>>()?,
        next_cursor: machines.next_cursor,
    };
    // The page's tag is a digest of its content: exact by construction, and a page is computed
    // in two queries whatever the answer.
    let body = serde_json::to_vec(&page).map_err(|e| ApiError::Internal(e.to_string()))?;
    let digest = sha2::Sha256::digest(&body);
    let etag = format!("\"{}\"", digest.iter().take(16).map(|b| format!("{b:02x}")).collect::<String>());
    if IfNoneMatch::of(&headers).matches(&etag) {
        return not_modified(&etag);
    }
    json_with_etag(&etag, body)
}

/// An answer's body, to embed as it is.
fn raw_json(body: &[u8]) -> Result<Box<serde_json::value::RawValue>, ApiError> {
    let text = std::str::from_utf8(body).map_err(|e| ApiError::Internal(e.to_string()))?;
    serde_json::value::RawValue::from_string(text.to_owned()).map_err(|e| ApiError::Internal(e.to_string()))
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
) -> Result<Json<MachineView>, ApiError> {
    let m = machines::get(&state.pool, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    Ok(Json(m.into()))
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
    let mut tx = state.pool.begin().await?;
    let current =
        machines::get_for_update(&mut tx, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    let spec = current.spec.clone().patched(patch);
    let caps = regions::capabilities(&mut *tx).await?;
    let derived = derive(&spec, &caps, current.enrollment)?;
    let m = machines::update(&mut tx, id, &write(&spec, &derived)).await?;
    tx.commit().await?;
    tracing::info!(machine_id = %id, status = <&'static str>::from(m.hotpatch_status), "machine updated");
    Ok(Json(m.into()))
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
    machines::delete(&state.pool, id).await.or_not_found(|| format!("no machine with id {id}"))?;
    tracing::info!(machine_id = %id, "machine deleted");
    Ok(StatusCode::NO_CONTENT)
}

/// Re-evaluates the machines whose eligibility depends on `region` after its data changed.
pub(crate) async fn reevaluate_region(tx: &mut sqlx::PgConnection, region: &str) -> Result<usize, ApiError> {
    let caps = regions::capabilities(&mut *tx).await?;
    let affected = machines::affected_by_region(tx, region).await?;
    for m in &affected {
        let eligibility = assess(&m.spec, &caps);
        // The operator changed region data, not the machine: keep the machine's switch
        // and let its status say it can no longer take hotpatches.
        let status = HotpatchStatus::from_flags(eligibility.eligible, m.spec.hotpatch_enabled);
        let w = MachineWrite {
            spec: &m.spec,
            eligibility: &eligibility,
            hotpatch_status: status,
            enrollment: m.enrollment,
        };
        // Unchanged verdicts need no write.
        if eligibility != m.eligibility {
            machines::update(tx, m.id, &w).await?;
        }
    }
    Ok(affected.len())
}
