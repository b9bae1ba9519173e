//! API tokens and agent tokens as use cases: create (the secret is shown once), list, read, revoke.
//!
//! The bearer format of a token and the check of a presented one are the API's (`auth`); here a
//! token is an id, a name, a role and the hash of its secret. Revoking one reaches every replica
//! through the token notifications, which bump the wake-ups' token generation.

use chrono::{DateTime, TimeDelta, Utc};
use hotpatch_domain::auth::TokenKind;
use hotpatch_domain::validation::has_control;
use hotpatch_domain::Role;
use hotpatch_store::tokens::{self, Credential, NewToken, Token, TokenFilter};
use hotpatch_store::{agents, machines};
use rand::Rng as _;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::error::{AppError, OrNotFound};
use crate::App;

/// The first periodic assessment of a newly enrolled machine comes within this many seconds.
pub const FIRST_ASSESSMENT_SPREAD_SECS: i64 = 300;

/// A token to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateToken {
    /// What the token is for (1–200 characters).
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub name: String,
    /// admin, operator, ci or reader (agent tokens come from `POST /v1/machines/{id}/agent-token`).
    pub role: Role,
    /// When it stops working; never when absent.
    #[serde(default, deserialize_with = "hotpatch_domain::time::optional_instant")]
    pub expires_at: Option<DateTime<Utc>>,
}

/// Options of an agent token.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAgentToken {
    /// Name; defaults to `agent <machine name>`.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*[^\\s\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff][^\\x00-\\x1f\\x7f-\\x9f\\u061c\\u200b-\\u200f\\u202a-\\u202e\\u2060-\\u2064\\u2066-\\u2069\\ufeff]*$"
    )]
    pub name: Option<String>,
    /// When it stops working; never when absent.
    #[serde(default, deserialize_with = "hotpatch_domain::time::optional_instant")]
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
    /// What it is for.
    pub kind: TokenKind,
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
        let kind = match (t.bootstrap, t.machine_id) {
            (true, _) => TokenKind::Bootstrap,
            (false, Some(_)) => TokenKind::Agent,
            (false, None) => TokenKind::Api,
        };
        TokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            kind,
            machine_id: t.machine_id,
            bootstrap: t.bootstrap,
            expires_at: t.expires_at,
            created_at: t.created_at,
        }
    }
}

/// A new token's secret, minted by the caller in its bearer format: the id to store, the string
/// shown once, and the hash, the only part kept.
#[derive(Debug, Clone)]
pub struct NewSecret {
    /// Token id.
    pub id: Uuid,
    /// The full bearer token, shown to the client once.
    pub token: String,
    /// SHA-256 of the secret.
    pub secret_hash: [u8; 32],
}

/// A created token, and what this replica's credential cache may keep of it.
#[derive(Debug)]
pub struct Issued {
    /// The answer to the client.
    pub created: CreatedToken,
    /// What authentication checks a presented token against.
    pub credential: Credential,
    /// The token generation read before the token was written: a revocation after that bumps
    /// it, so a cache entry stored under this one is void (see `Wakeups::token_generation`).
    pub generation: u64,
}

/// A token's name: 1–200 characters, without control characters.
fn check_name(name: &str) -> Result<(), AppError> {
    let n = name.chars().count();
    if name.trim().is_empty() || n > 200 || has_control(name) {
        return Err(AppError::field("name", "must be 1–200 characters, without control characters"));
    }
    Ok(())
}

/// An expiry, if any, must be in the future.
fn check_expiry(expires_at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Result<(), AppError> {
    if expires_at.is_some_and(|t| t <= now) {
        return Err(AppError::field("expires_at", "must be in the future"));
    }
    Ok(())
}

fn not_found(id: Uuid) -> String {
    format!("no token with id {id}")
}

/// Stores a token and says what to show and to cache.
async fn issue(
    app: &App,
    (name, role): (&str, Role),
    machine_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
    secret: NewSecret,
) -> Result<Issued, AppError> {
    let generation = app.wakeups.token_generation();
    let new =
        NewToken { id: secret.id, name, role, secret_hash: &secret.secret_hash, machine_id, expires_at };
    let t = tokens::insert(&app.pool, &new).await?;
    let credential = Credential {
        id: t.id,
        role,
        secret_hash: secret.secret_hash.to_vec(),
        machine_id,
        expires_at: t.expires_at,
    };
    tracing::info!(token_id = %t.id, role = <&'static str>::from(role), "token created");
    let created = CreatedToken {
        id: t.id,
        name: t.name,
        role: t.role,
        machine_id: t.machine_id,
        token: secret.token,
        expires_at: t.expires_at,
        created_at: t.created_at,
    };
    Ok(Issued { created, credential, generation })
}

/// Creates an API token for a person or a pipeline (any role but agent).
pub async fn create(app: &App, req: CreateToken, secret: NewSecret) -> Result<Issued, AppError> {
    check_name(&req.name)?;
    check_expiry(req.expires_at, app.clock.now())?;
    if req.role == Role::Agent {
        return Err(AppError::field(
            "role",
            "agent tokens are bound to a machine: use POST /v1/machines/{id}/agent-token",
        ));
    }
    issue(app, (&req.name, req.role), None, req.expires_at, secret).await
}

/// Issues the token a machine's agent uses (it acts for that machine only), and starts the
/// machine's periodic assessments.
pub async fn create_agent_token(
    app: &App,
    machine_id: Uuid,
    req: CreateAgentToken,
    secret: NewSecret,
) -> Result<Issued, AppError> {
    let machine = machines::get(&app.pool, machine_id)
        .await
        .or_not_found(|| format!("no machine with id {machine_id}"))?;
    let name = req.name.unwrap_or_else(|| format!("agent {}", machine.spec.name));
    check_name(&name)?;
    check_expiry(req.expires_at, app.clock.now())?;
    // The machine now has an agent: its periodic assessment starts, the first one soon (spread
    // so a fleet enrolled at once is not assessed at once).
    let spread = rand::thread_rng().gen_range(0..FIRST_ASSESSMENT_SPREAD_SECS);
    agents::ensure(&app.pool, machine_id, app.clock.now() + TimeDelta::seconds(spread)).await?;
    issue(app, (&name, Role::Agent), Some(machine_id), req.expires_at, secret).await
}

/// Tokens of `role` and `kind` (when given) in id order after `after`, at most `limit` (without
/// secrets).
pub async fn list(
    app: &App,
    role: Option<Role>,
    kind: Option<TokenKind>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<TokenView>, AppError> {
    let filter = TokenFilter {
        role,
        bound_to_machine: kind.map(|k| k == TokenKind::Agent),
        bootstrap: kind.map(|k| k == TokenKind::Bootstrap),
    };
    Ok(tokens::list(&app.pool, &filter, after, limit).await?.into_iter().map(TokenView::from).collect())
}

/// One token (without its secret).
pub async fn get(app: &App, id: Uuid) -> Result<TokenView, AppError> {
    Ok(tokens::get(&app.pool, id).await.or_not_found(|| not_found(id))?.into())
}

/// Revokes a token: it stops working at once, on every replica.
pub async fn revoke(app: &App, id: Uuid) -> Result<(), AppError> {
    tokens::delete(&app.pool, id).await.or_not_found(|| not_found(id))?;
    // Before the 204: no request this replica answers after it may still pass on a cached
    // credential (other replicas drop theirs on the notification, milliseconds later).
    app.wakeups.bump_token_generation();
    tracing::info!(token_id = %id, "token revoked");
    Ok(())
}

/// Longest wait between checks of a streaming token (expiry, notifications missed unseen).
const RECHECK: std::time::Duration = std::time::Duration::from_secs(60);

/// Returns once token `id` no longer lets its holder in (revoked or expired), so a long-lived
/// answer such as the change feed's stream ends with it. It reads the token again on every
/// token change anywhere (notifications), at its expiry, and at least every minute.
pub async fn no_longer_valid(app: &App, id: Uuid) {
    loop {
        let changed = app.wakeups.tokens_changed();
        tokio::pin!(changed);
        // Registered before the read: a revocation between the read and the wait still wakes us.
        changed.as_mut().enable();
        let now = app.clock.now();
        let wait = match tokens::credential(&app.pool, id).await {
            Ok(None) => return,
            Ok(Some(c)) => match c.expires_at {
                Some(t) if t <= now => return,
                Some(t) => (t - now).to_std().unwrap_or_default().min(RECHECK),
                None => RECHECK,
            },
            // The database is away: the stream goes on until the token can be read again.
            Err(e) => {
                tracing::warn!(token_id = %id, error = %e, "cannot re-check a streaming token");
                RECHECK
            }
        };
        tokio::select! {
            () = &mut changed => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}
