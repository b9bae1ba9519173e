//! API tokens: only hashes are stored; the secret is shown once by the API.

use chrono::{DateTime, Utc};
use hotpatch_domain::Role;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::error::StoreError;

/// A token as listed (never with its secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    /// Identifier; also the public part of the token string.
    pub id: Uuid,
    /// Operator-chosen name.
    pub name: String,
    /// Role.
    pub role: Role,
    /// The machine an agent token is bound to.
    pub machine_id: Option<Uuid>,
    /// Whether this is the token configured by `HOTPATCH_ADMIN_TOKEN`.
    pub bootstrap: bool,
    /// When it stops working, if ever.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// What authentication needs to check a presented token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credential {
    /// Token id.
    pub id: Uuid,
    /// Role.
    pub role: Role,
    /// SHA-256 of the secret.
    pub secret_hash: Vec<u8>,
    /// Bound machine (agents).
    pub machine_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// Identifier.
    pub id: Uuid,
    /// Name.
    pub name: &'a str,
    /// Role.
    pub role: Role,
    /// SHA-256 of the secret.
    pub secret_hash: &'a [u8],
    /// Bound machine (agents only).
    pub machine_id: Option<Uuid>,
    /// Expiry.
    pub expires_at: Option<DateTime<Utc>>,
}

struct TokenRow {
    id: Uuid,
    name: String,
    role: String,
    machine_id: Option<Uuid>,
    bootstrap: bool,
    expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
}

struct CredentialRow {
    id: Uuid,
    role: String,
    secret_hash: Vec<u8>,
    machine_id: Option<Uuid>,
    expires_at: Option<DateTime<Utc>>,
}

impl TryFrom<CredentialRow> for Credential {
    type Error = StoreError;
    fn try_from(r: CredentialRow) -> Result<Self, StoreError> {
        Ok(Credential {
            id: r.id,
            role: role(&r.role)?,
            secret_hash: r.secret_hash,
            machine_id: r.machine_id,
            expires_at: r.expires_at,
        })
    }
}

fn role(v: &str) -> Result<Role, StoreError> {
    v.parse().map_err(|_| StoreError::Decode(format!("api_token.role holds unknown value '{v}'")))
}

impl TryFrom<TokenRow> for Token {
    type Error = StoreError;
    fn try_from(r: TokenRow) -> Result<Self, StoreError> {
        Ok(Token {
            id: r.id,
            name: r.name,
            role: role(&r.role)?,
            machine_id: r.machine_id,
            bootstrap: r.bootstrap,
            expires_at: r.expires_at,
            created_at: r.created_at,
        })
    }
}

/// Creates a token. An agent token for a machine that does not exist is `NotFound`.
pub async fn insert(db: impl PgExecutor<'_>, t: &NewToken<'_>) -> Result<Token, StoreError> {
    let role: &'static str = t.role.into();
    let row = sqlx::query_as!(
        TokenRow,
        "insert into api_token (id, name, role, secret_hash, machine_id, expires_at)
         values ($1, $2, $3, $4, $5, $6)
         returning id, name, role, machine_id, bootstrap, expires_at, created_at",
        t.id,
        t.name,
        role,
        t.secret_hash,
        t.machine_id,
        t.expires_at,
    )
    .fetch_one(db)
    .await
    .map_err(|e| match &e {
        sqlx::Error::Database(d) if d.is_foreign_key_violation() => StoreError::NotFound,
        _ => StoreError::from(e),
    })?;
    row.try_into()
}

/// The credential of token `id`, if it exists.
pub async fn credential(db: impl PgExecutor<'_>, id: Uuid) -> Result<Option<Credential>, StoreError> {
    let row = sqlx::query_as!(
        CredentialRow,
        "select id, role, secret_hash, machine_id, expires_at from api_token where id = $1",
        id
    )
    .fetch_optional(db)
    .await?;
    row.map(Credential::try_from).transpose()
}

/// The credential of the bootstrap admin token, if one is configured.
pub async fn bootstrap_credential(db: impl PgExecutor<'_>) -> Result<Option<Credential>, StoreError> {
    let row = sqlx::query_as!(
        CredentialRow,
        "select id, role, secret_hash, machine_id, expires_at from api_token where bootstrap"
    )
    .fetch_optional(db)
    .await?;
    row.map(Credential::try_from).transpose()
}

/// Makes `secret_hash` the bootstrap admin token's hash, creating the token if needed.
pub async fn upsert_bootstrap(db: impl PgExecutor<'_>, secret_hash: &[u8]) -> Result<(), StoreError> {
    sqlx::query!(
        "insert into api_token (id, name, role, secret_hash, bootstrap)
         values ($1, 'bootstrap admin (HOTPATCH_ADMIN_TOKEN)', 'admin', $2, true)
         on conflict (bootstrap) where bootstrap
         do update set secret_hash = excluded.secret_hash, role = 'admin', updated_at = now()",
        Uuid::now_v7(),
        secret_hash,
    )
    .execute(db)
    .await?;
    Ok(())
}

/// Whether any admin token that has not expired exists.
pub async fn admin_exists(db: impl PgExecutor<'_>) -> Result<bool, StoreError> {
    let exists = sqlx::query_scalar!(
        r#"select exists(select 1 from api_token
            where role = 'admin' and (expires_at is null or expires_at > now())) as "exists!""#
    )
    .fetch_one(db)
    .await?;
    Ok(exists)
}

/// A page of tokens in id order.
pub async fn list(
    db: impl PgExecutor<'_>,
    filter: &TokenFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Token>, StoreError> {
    let role: Option<&'static str> = filter.role.map(Into::into);
    let rows = sqlx::query_as!(
        TokenRow,
        "select id, name, role, machine_id, bootstrap, expires_at, created_at from api_token
         where ($1::uuid is null or id > $1)
           and ($2::text is null or role = $2)
           and ($3::bool is null or (machine_id is not null) = $3)
           and ($4::bool is null or bootstrap = $4)
         order by id limit $5",
        after,
        role,
        filter.bound_to_machine,
        filter.bootstrap,
        limit
    )
    .fetch_all(db)
    .await?;
    rows.into_iter().map(Token::try_from).collect()
}

/// Which tokens a list holds; every given part must match.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TokenFilter {
    /// Of this role.
    pub role: Option<Role>,
    /// Bound to a machine (agent tokens) or not.
    pub bound_to_machine: Option<bool>,
    /// The `HOTPATCH_ADMIN_TOKEN` bootstrap token or not.
    pub bootstrap: Option<bool>,
}

/// Deletes (revokes) a token.
pub async fn delete(db: impl PgExecutor<'_>, id: Uuid) -> Result<(), StoreError> {
    let done = sqlx::query!("delete from api_token where id = $1", id).execute(db).await?;
    if done.rows_affected() == 0 {
        return Err(StoreError::NotFound);
    }
    Ok(())
}

/// One token.
pub async fn get(db: impl PgExecutor<'_>, id: Uuid) -> Result<Token, StoreError> {
    let row = sqlx::query_as!(
        TokenRow,
        "select id, name, role, machine_id, bootstrap, expires_at, created_at from api_token where id = $1",
        id
    )
    .fetch_optional(db)
    .await?
    .ok_or(StoreError::NotFound)?;
    row.try_into()
}
