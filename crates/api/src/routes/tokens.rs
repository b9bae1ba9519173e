//! `/v1/tokens` (admin) and `/v1/machines/{id}/agent-token` (operator): tokens are shown once.
//!
//! The use cases are [`hotpatch_app::tokens`]; this module mints the secret in the bearer format
//! of [`crate::auth`] and puts a created token's credential into this replica's cache.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use hotpatch_app::tokens::{self, CreateAgentToken, CreateToken, CreatedToken, Issued, NewSecret, TokenView};
use hotpatch_domain::auth::TokenKind;
use hotpatch_domain::Role;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{mint, remember_created, Admin, Operator};
use crate::error::{ApiError, Problem};
use crate::extract::{ApiJson, ApiPath, OptionalJson};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(get_token, delete_token))
        .routes(routes!(create_agent_token))
}

/// A new secret in the bearer format of [`crate::auth`].
fn new_secret() -> NewSecret {
    let m = mint();
    NewSecret { id: m.id, token: m.token, secret_hash: m.secret_hash }
}

/// 201 with the token (also in `Location`); its credential is cached here, so its first use on
/// this replica (say an agent's first claim) reads no database.
fn created(state: &AppState, issued: Issued) -> Response {
    remember_created(state, issued.credential, issued.generation);
    let location = format!("/v1/tokens/{}", issued.created.id);
    (StatusCode::CREATED, [(header::LOCATION, location)], Json(issued.created)).into_response()
}

/// Create an API token for a person or a pipeline; the secret is in this answer only.
#[utoipa::path(post, path = "/v1/tokens", tag = "tokens", request_body = CreateToken,
    responses((status = 201, description = "Created; `token` is shown once", body = CreatedToken),
        (status = 422, description = "Invalid fields", body = Problem)),
    security(("bearer" = [])))]
async fn create_token(
    State(state): State<AppState>,
    _: Admin,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<Response, ApiError> {
    let issued = tokens::create(&state, req, new_secret()).await?;
    Ok(created(&state, issued))
}

/// Reads `?role=` and `?kind=` of `GET /v1/tokens`.
fn list_filter(raw: Option<&str>) -> Result<(Option<Role>, Option<TokenKind>), ApiError> {
    let (mut role, mut kind) = (None, None);
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "role" => {
                role = Some(v.parse::<Role>().map_err(|_| {
                    ApiError::bad_param(
                        "role",
                        format!("'{}' is not one of admin, operator, ci, reader, agent", v.escape_debug()),
                    )
                })?)
            }
            "kind" => {
                kind = Some(v.parse::<TokenKind>().map_err(|_| {
                    ApiError::bad_param(
                        "kind",
                        format!("'{}' is not one of api, agent, bootstrap", v.escape_debug()),
                    )
                })?)
            }
            _ => {}
        }
    }
    Ok((role, kind))
}

/// List tokens (without secrets), filtered by `role` and `kind` (`api`: made with
/// `POST /v1/tokens`; `agent`: bound to a machine; `bootstrap`: `HOTPATCH_ADMIN_TOKEN`).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    params(("role" = Option<Role>, Query, description = "Only tokens of this role"),
        ("kind" = Option<TokenKind>, Query, description = "Only tokens of this kind"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "Page size, 1–1000"),
        ("cursor" = Option<String>, Query, pattern = "^[A-Za-z0-9_-]{21}[AQgw]$", description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of tokens", body = Page<TokenView>),
        (status = 400, description = "Bad filter or paging value", body = Problem)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    _: Admin,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<TokenView>>, ApiError> {
    let (role, kind) = list_filter(raw.as_deref())?;
    let p = PageParams::from_query(raw.as_deref(), &["role", "kind"])?;
    let views = tokens::list(&state, role, kind, p.after, p.limit + 1).await?;
    Ok(Json(page(views, p.limit, |t| t.id, |t| t)))
}

/// One token (without its secret).
#[utoipa::path(get, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 200, description = "The token", body = TokenView),
        (status = 404, description = "No such token", body = Problem)),
    security(("bearer" = [])))]
async fn get_token(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<Json<TokenView>, ApiError> {
    Ok(Json(tokens::get(&state, id).await?))
}

/// Revoke a token: it stops working at once.
#[utoipa::path(delete, path = "/v1/tokens/{id}", tag = "tokens",
    params(("id" = Uuid, Path, description = "Token id")),
    responses((status = 204, description = "Revoked"), (status = 404, description = "No such token", body = Problem)),
    security(("bearer" = [])))]
async fn delete_token(
    State(state): State<AppState>,
    _: Admin,
    ApiPath(id): ApiPath<Uuid>,
) -> Result<StatusCode, ApiError> {
    tokens::revoke(&state, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issue the token a machine's agent uses; it can act for that machine only.
#[utoipa::path(post, path = "/v1/machines/{id}/agent-token", tag = "tokens", request_body(content = Option<CreateAgentToken>),
    params(("id" = Uuid, Path, description = "Machine id")),
    responses((status = 201, description = "Created; `token` is shown once", body = CreatedToken),
        (status = 404, description = "No such machine", body = Problem)),
    security(("bearer" = [])))]
async fn create_agent_token(
    State(state): State<AppState>,
    _: Operator,
    ApiPath(id): ApiPath<Uuid>,
    OptionalJson(req): OptionalJson<CreateAgentToken>,
) -> Result<Response, ApiError> {
    let issued = tokens::create_agent_token(&state, id, req, new_secret()).await?;
    Ok(created(&state, issued))
}
