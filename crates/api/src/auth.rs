//! Bearer-token authentication and the role extractors that *are* the access rules.
//!
//! A token is `hp_` + base64url(id ‖ secret): the id finds the row, the 256-bit secret
//! is checked against its stored SHA-256 in constant time. The bootstrap admin token
//! (`HOTPATCH_ADMIN_TOKEN`) is free-form, so it is hashed whole and compared the same way.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hotpatch_domain::Role;
use hotpatch_store::{tokens, PgPool};
use rand::RngCore as _;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use uuid::Uuid;

use crate::error::ApiError;
use crate::AppState;

const PREFIX: &str = "hp_";
const SECRET_LEN: usize = 32;
/// Shortest `HOTPATCH_ADMIN_TOKEN` accepted: 128 bits of hex, or more of anything else.
pub const MIN_BOOTSTRAP_LEN: usize = 32;

/// A freshly minted token: the id to store and the string to show once.
#[derive(Debug, Clone)]
pub struct Minted {
    /// Token id.
    pub id: Uuid,
    /// The full bearer token, shown to the client once.
    pub token: String,
    /// SHA-256 of the secret, the only thing stored.
    pub secret_hash: [u8; 32],
}

/// Mints a new token with a 256-bit random secret.
pub fn mint() -> Minted {
    let id = Uuid::now_v7();
    let mut secret = [0u8; SECRET_LEN];
    rand::rngs::OsRng.fill_bytes(&mut secret);
    let mut raw = Vec::with_capacity(16 + SECRET_LEN);
    raw.extend_from_slice(id.as_bytes());
    raw.extend_from_slice(&secret);
    Minted { id, token: format!("{PREFIX}{}", URL_SAFE_NO_PAD.encode(raw)), secret_hash: sha256(&secret) }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// Splits one of our tokens into id and secret; `None` for any other string.
fn parse(token: &str) -> Option<(Uuid, Vec<u8>)> {
    let raw = URL_SAFE_NO_PAD.decode(token.strip_prefix(PREFIX)?).ok()?;
    if raw.len() != 16 + SECRET_LEN {
        return None;
    }
    let id = Uuid::from_slice(&raw[..16]).ok()?;
    Some((id, raw[16..].to_vec()))
}

/// Why a bootstrap token cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    /// The configured token is too short to be a secret.
    #[error("HOTPATCH_ADMIN_TOKEN must be at least {MIN_BOOTSTRAP_LEN} characters (use e.g. `openssl rand -hex 32`)")]
    TooShort,
    /// The database refused.
    #[error(transparent)]
    Store(#[from] hotpatch_store::StoreError),
}

/// Makes sure an admin can log in: registers `env_token` (from `HOTPATCH_ADMIN_TOKEN`)
/// as the bootstrap admin token, or, when none is given and no admin token exists,
/// mints one and returns its secret (shown once: the caller writes it to a 0600 file).
pub async fn ensure_admin_token(
    pool: &PgPool,
    env_token: Option<&str>,
) -> Result<Option<String>, BootstrapError> {
    if let Some(t) = env_token {
        if t.len() < MIN_BOOTSTRAP_LEN {
            return Err(BootstrapError::TooShort);
        }
        tokens::upsert_bootstrap(pool, &sha256(t.as_bytes())).await?;
        return Ok(None);
    }
    if tokens::admin_exists(pool).await? {
        return Ok(None);
    }
    let m = mint();
    tokens::insert(
        pool,
        &tokens::NewToken {
            id: m.id,
            name: "generated admin",
            role: Role::Admin,
            secret_hash: &m.secret_hash,
            machine_id: None,
            expires_at: None,
        },
    )
    .await?;
    Ok(Some(m.token))
}

/// Who is calling: the token's id, role and (agents) machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Principal {
    /// Token id.
    pub token_id: Uuid,
    /// Role.
    pub role: Role,
    /// The machine an agent token is bound to.
    pub machine_id: Option<Uuid>,
}

impl FromRequestParts<AppState> for Principal {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(p) = parts.extensions.get::<Principal>() {
            return Ok(*p);
        }
        let header = parts.headers.get(AUTHORIZATION).ok_or_else(|| {
            ApiError::Unauthorized("missing `Authorization: Bearer <token>` header".to_owned())
        })?;
        let token = bearer(header).ok_or_else(|| {
            ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".to_owned())
        })?;
        // Boxed so the lookup's (large) future is freed once done, not kept for the whole request.
        let principal = Box::pin(authenticate(state, token)).await?;
        // The audit layer, when it watches this request, learns here who made it.
        if let Some(slot) = parts.extensions.get::<crate::audit::AuditSlot>() {
            slot.set(principal);
        }
        // Counted once per request, under the token's verified id; agents keep the protocol's pace.
        if principal.role != Role::Agent {
            state.limits.check_token(principal.token_id)?;
        }
        parts.extensions.insert(principal);
        Ok(principal)
    }
}

/// The token of an `Authorization: Bearer <token>` value; the scheme is case-insensitive
/// (RFC 9110 §11.1).
pub(crate) fn bearer(value: &axum::http::HeaderValue) -> Option<&str> {
    value
        .to_str()
        .ok()
        .and_then(|h| h.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, t)| t.trim())
        .filter(|t| !t.is_empty())
}

/// How long a verified token's credential is reused without asking the database. Revocations
/// reach every replica at once through NOTIFY (the cache is dropped on each); this bounds what a
/// notification lost while the LISTEN connection looked healthy could let through. Longer than an
/// agent's longest poll (a minute): a connected agent re-polls within it, so its credential stays
/// cached for as long as it is connected instead of being read from the database on most claims.
const CREDENTIAL_TTL: std::time::Duration = std::time::Duration::from_secs(120);
/// Entries kept at most; beyond that the cache is cleared (a fleet's agents refill it).
const CREDENTIAL_CACHE_MAX: usize = 100_000;

/// Credentials of recently verified tokens, by token id, with the wake-up generation they were
/// read under. Only used while this process receives token notifications.
#[derive(Debug, Default)]
pub struct CredentialCache {
    entries: std::sync::Mutex<std::collections::HashMap<Uuid, (tokens::Credential, u64, std::time::Instant)>>,
}

impl CredentialCache {
    fn lock(
        &self,
    ) -> std::sync::MutexGuard<
        '_,
        std::collections::HashMap<Uuid, (tokens::Credential, u64, std::time::Instant)>,
    > {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn get(&self, id: Uuid, generation: u64) -> Option<tokens::Credential> {
        let entries = self.lock();
        let (credential, g, at) = entries.get(&id)?;
        (*g == generation && at.elapsed() < CREDENTIAL_TTL).then(|| credential.clone())
    }

    fn put(&self, key: Uuid, credential: tokens::Credential, generation: u64) {
        let mut entries = self.lock();
        if entries.len() >= CREDENTIAL_CACHE_MAX {
            entries.clear();
        }
        entries.insert(key, (credential, generation, std::time::Instant::now()));
    }
}

/// A token this replica just created: its credential goes into the cache at once, so its first
/// use here (say an agent's first claim) reads no database. `generation` must have been read
/// before the token was written: a revocation after that bumps it and voids the entry.
pub(crate) fn remember_created(state: &AppState, credential: tokens::Credential, generation: u64) {
    if state.wakeups.is_listening() {
        state.credentials.put(credential.id, credential, generation);
    }
}

/// The cache key of the bootstrap admin token (`HOTPATCH_ADMIN_TOKEN`), which is not an `hp_`
/// token and so carries no id of its own; no minted token has the nil id.
const BOOTSTRAP_KEY: Uuid = Uuid::nil();

/// The credential of token `id` (`None`: the bootstrap admin token): from the cache while
/// notifications flow, else the database.
async fn credential(state: &AppState, id: Option<Uuid>) -> Result<Option<tokens::Credential>, ApiError> {
    let listening = state.wakeups.is_listening();
    // Read the generation before the database: a revocation committed after this read bumps it,
    // so the entry stored below is never used under a newer generation.
    let generation = state.wakeups.token_generation();
    let key = id.unwrap_or(BOOTSTRAP_KEY);
    if listening {
        if let Some(c) = state.credentials.get(key, generation) {
            return Ok(Some(c));
        }
    }
    let found = match id {
        Some(id) => tokens::credential(&state.pool, id).await?,
        None => tokens::bootstrap_credential(&state.pool).await?,
    };
    if let (true, Some(c)) = (listening, &found) {
        state.credentials.put(key, c.clone(), generation);
    }
    Ok(found)
}

pub(crate) async fn authenticate(state: &AppState, token: &str) -> Result<Principal, ApiError> {
    let invalid = || ApiError::Unauthorized("the token is not valid".to_owned());
    let (credential, secret_hash) = match parse(token) {
        Some((id, secret)) => (credential(state, Some(id)).await?, sha256(&secret)),
        None => (credential(state, None).await?, sha256(token.as_bytes())),
    };
    let credential = credential.ok_or_else(invalid)?;
    if !bool::from(credential.secret_hash.as_slice().ct_eq(&secret_hash)) {
        return Err(invalid());
    }
    if credential.expires_at.is_some_and(|t| t <= state.clock.now()) {
        return Err(ApiError::Unauthorized("the token has expired".to_owned()));
    }
    Ok(Principal { token_id: credential.id, role: credential.role, machine_id: credential.machine_id })
}

macro_rules! role_extractor {
    ($(#[$doc:meta] $name:ident => $role:expr;)*) => {$(
        #[$doc]
        #[derive(Debug, Clone, Copy)]
        pub struct $name(pub Principal);

        impl FromRequestParts<AppState> for $name {
            type Rejection = ApiError;

            async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
                let p = Principal::from_request_parts(parts, state).await?;
                if p.role.allows($role) {
                    Ok($name(p))
                } else {
                    let have: &'static str = p.role.into();
                    let need: &'static str = ($role).into();
                    Err(ApiError::Forbidden(format!("this needs the {need} role; the token has {have}")))
                }
            }
        }
    )*};
}

role_extractor! {
    /// A caller with the `admin` role.
    Admin => Role::Admin;
    /// A caller with the `operator` role or above.
    Operator => Role::Operator;
    /// A caller with the `ci` role or above.
    Ci => Role::Ci;
    /// Any human caller (`reader` or above).
    Reader => Role::Reader;
}

/// An agent, bound to one machine: handlers take the machine id from here, never from the
/// request, so an agent cannot name another machine.
#[derive(Debug, Clone, Copy)]
pub struct Agent {
    /// The token's id.
    pub token_id: Uuid,
    /// The machine the token is bound to.
    pub machine_id: Uuid,
}

impl FromRequestParts<AppState> for Agent {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let p = Principal::from_request_parts(parts, state).await?;
        match (p.role, p.machine_id) {
            (Role::Agent, Some(machine_id)) => {
                // Every authenticated request of an agent is a sign of life (written in batches).
                state.presence.saw(machine_id, state.clock.now());
                Ok(Agent { token_id: p.token_id, machine_id })
            }
            _ => Err(ApiError::Forbidden("this endpoint is for agent tokens only".to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_parse_back_to_their_id_and_secret_hash() {
        let m = mint();
        let (id, secret) = parse(&m.token).unwrap();
        assert_eq!(id, m.id);
        assert_eq!(sha256(&secret), m.secret_hash);
    }

    #[test]
    fn minted_tokens_are_distinct_and_carry_256_bit_secrets() {
        let a = mint();
        let b = mint();
        assert_ne!(a.token, b.token);
        assert_eq!(parse(&a.token).unwrap().1.len() * 8, 256);
    }

    #[test]
    fn foreign_strings_are_not_parsed_as_tokens() {
        for s in ["", "hp_", "hp_abc", "Bearer x", "hp_!!!!", &format!("xx_{}", &mint().token[3..])] {
            assert!(parse(s).is_none(), "{s}");
        }
    }
}
