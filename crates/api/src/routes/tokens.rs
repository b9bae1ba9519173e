//! `/v1/tokens` (admin) and `/v1/machines/{id}/agent-token` (operator): tokens are shown once.

use axum::extract::{RawQuery, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use chrono::{DateTime, Utc};
use hotpatch_domain::validation::has_control;
use hotpatch_domain::Role;
use hotpatch_store::tokens::{self, Credential, NewToken, Token};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use uuid::Uuid;

use crate::auth::{mint, Admin, Operator};
use crate::error::{ApiError, OrNotFound, Problem};
use crate::extract::{ApiJson, ApiPath, OptionalJson};
use crate::pagination::{page, Page, PageParams};
use crate::AppState;

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (1–200 characters).
    pub name: String,
    /// admin, operator, ci or reader (agent tokens come from `POST /v1/machines/{id}/agent-token`).
    pub role: Role,
    /// When it stops working; never when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Options of an agent token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentToken {
    /// Name; defaults to `agent <machine name>`.
    #[serde(default)]
    pub name: Option<String>,
    /// When it stops working; never when absent.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token as listed; never carries the secret.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenView {
    /// Identifier.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Bound machine (agent tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<Uuid>,
    /// Whether this is the `HOTPATCH_ADMIN_TOKEN` bootstrap token.
    pub bootstrap: bool,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

/// A created token: `token` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedToken {
    /// Identifier.
    pub id: Uuid,
    /// Name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// Bound machine (agent tokens).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<Uuid>,
    /// The bearer token. Store it now: only its hash is kept.
    pub token: String,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
    /// Creation time.
    pub created_at: DateTime<Utc>,
}

impl From<Token> for TokenView {
    fn from(t: Token) -> Self {
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            machine_id: t.machine_id,
            bootstrap: t.bootstrap,
            expires_at: t.expires_at,
            created_at: t.created_at,
        }
    }
}

/// The routes of this module.
pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create_token, list_tokens))
        .routes(routes!(get_token, delete_token))
        .routes(routes!(create_agent_token))
}

fn check_name(name: &str) -> Result<(), ApiError> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > 200 || has_control(name) {
        return Err(ApiError::field("name", "must be 1–200 characters, without control characters"));
    }
    Ok(())
}

fn check_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), ApiError> {
    if expires_at.is_some_and(|t| t <= now) {
        return Err(ApiError::field("expires_at", "must be in the future"));
    }
    Ok(())
}

async fn issue(
    state: &AppState,
    name: &str,
    role: Role,
    machine_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
) -> Result<Response, ApiError> {
    let m = mint();
    let generation = state.wakeups.token_generation();
    let t = tokens::insert(
        &state.pool,
        &NewToken { id: m.id, name, role, secret_hash: &m.secret_hash, machine_id, expires_at },
    )
    .await?;
    let credential = Credential {
        id: t.id,
        role,
        secret_hash: m.secret_hash.to_vec(),
        machine_id,
        expires_at: t.expires_at,
    };
    crate::auth::remember_created(state, credential, generation);
    tracing::info!(token_id = %t.id, role = <&'static str>::from(role), "token created");
    let body = CreatedToken {
        id: t.id,
        name: t.name,
        role: t.role,
        machine_id: t.machine_id,
        token: m.token,
        expires_at: t.expires_at,
        created_at: t.created_at,
    };
    Ok((StatusCode::CREATED, [(header::LOCATION, format!("/v1/tokens/{}", t.id))], Json(body))
        .into_response())
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
    check_name(&req.name)?;
    check_expiry(req.expires_at, state.clock.now())?;
    if req.role == Role::Agent {
        return Err(ApiError::field(
            "role",
            "agent tokens are bound to a machine: use POST /v1/machines/{id}/agent-token",
        ));
    }
    issue(&state, &req.name, req.role, None, req.expires_at).await
}

/// List tokens (without secrets).
#[utoipa::path(get, path = "/v1/tokens", tag = "tokens",
    params(("limit" = Option<i64>, Query, description = "Page size, 1–1000"),
        ("cursor" = Option<String>, Query, description = "next_cursor of the previous page")),
    responses((status = 200, description = "A page of tokens", body = Page<TokenView>)),
    security(("bearer" = [])))]
async fn list_tokens(
    State(state): State<AppState>,
    _: Admin,
    RawQuery(raw): RawQuery,
) -> Result<Json<Page<TokenView>>, ApiError> {
    let p = PageParams::from_query(raw.as_deref(), &[])?;
    let rows = tokens::list(&state.pool, p.after, p.limit + 1).await?;
    Ok(Json(page(rows, p.limit, |t| t.id, TokenView::from)))
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
    let t = tokens::get(&state.pool, id).await.or_not_found(|| format!("no token with id {id}"))?;
    Ok(Json(t.into()))
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
    tokens::delete(&state.pool, id).await.or_not_found(|| format!("no token with id {id}"))?;
    tracing::info!(token_id = %id, "token revoked");
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
    let machine = hotpatch_store::machines::get(&state.pool, id)
        .await
        .or_not_found(|| format!("no machine with id {id}"))?;
    let name = req.name.unwrap_or_else(|| format!("agent {}", machine.spec.name));
    check_name(&name)?;
    check_expiry(req.expires_at, state.clock.now())?;
    // The machine now has an agent: its periodic assessment starts, the first one soon (spread
    // over five minutes so a fleet enrolled at once is not assessed at once).
    let first =
        state.clock.now() + chrono::TimeDelta::seconds(rand::Rng::gen_range(&mut rand::thread_rng(), 0..300));
    hotpatch_store::agents::ensure(&state.pool, id, first).await?;
    issue(&state, &name, Role::Agent, Some(id), req.expires_at).await
}
