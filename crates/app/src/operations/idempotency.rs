//! The `Idempotency-Key` rule of every request that starts an operation: the same key with the same
//! request returns the operation it made the first time; with another request it is refused
//! (422 `idempotency_key_reused`). Keys are scoped to the token that sent them.

use chrono::{DateTime, Utc};
use hotpatch_domain::operation::OperationKind;
use hotpatch_store::operations::{self, Created, NewOperation};
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::PgConnection;
use uuid::Uuid;

use crate::error::AppError;

/// Who starts an operation, and the key that makes a retry return the same operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The token that asks (its keys are its own).
    pub token_id: Uuid,
    /// The request's `Idempotency-Key`, already read as 1–255 visible ASCII characters.
    pub idempotency_key: Option<String>,
}

/// One request that starts an operation, as its key is checked and the operation stored.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// What the operation does.
    pub kind: OperationKind,
    /// The path it was sent to (part of what the key is checked against).
    pub path: &'a str,
    /// The body as parsed, defaults filled in (what the key is checked against).
    pub body: &'a Value,
    /// What the operation row keeps of the request.
    pub stored: &'a Value,
}

/// What starting an operation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Started {
    /// A new operation: the caller enqueues its jobs in the same transaction.
    New(Uuid),
    /// An earlier request with the same key and the same content made this one.
    Replayed(Uuid),
}

impl Started {
    /// The operation, new or replayed.
    pub fn id(self) -> Uuid {
        match self {
            Started::New(id) | Started::Replayed(id) => id,
        }
    }
}

/// What the key is checked against: the method, the path and the body as parsed (so key order and
/// whitespace do not make two identical requests differ; callers that fill in defaults first make
/// `{}` and the defaults spelled out one request).
pub fn request_hash(path: &str, body: &Value) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"POST ");
    h.update(path.as_bytes());
    h.update(b"\n");
    h.update(body.to_string().as_bytes());
    h.finalize().into()
}

/// Creates the operation in the caller's transaction, or finds the one an earlier request with
/// the same key made. The key used before for another request is
/// [`AppError::IdempotencyKeyReused`].
pub async fn start(
    tx: &mut PgConnection,
    caller: &Caller,
    request: Request<'_>,
    now: DateTime<Utc>,
) -> Result<Started, AppError> {
    let key = caller.idempotency_key.as_deref();
    let hash = request_hash(request.path, request.body);
    let created = operations::create(
        tx,
        &NewOperation {
            kind: request.kind,
            request: request.stored,
            created_by: Some(caller.token_id),
            idempotency: key.map(|k| (k, hash)),
            now,
        },
    )
    .await?;
    match created {
        Created::New(id) => Ok(Started::New(id)),
        Created::Replayed(id) => Ok(Started::Replayed(id)),
        Created::KeyReused(id) => Err(AppError::IdempotencyKeyReused(format!(
            "Idempotency-Key {:?} was used for another request (operation {id}); use a new key",
            key.unwrap_or_default()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hotpatch_domain::operation::Selector;
    use serde_json::json;

    #[test]
    fn the_same_selector_hashes_alike_whatever_its_key_order_and_spacing() {
        let hash = |text: &str| {
            let selector: Selector = serde_json::from_str(text).unwrap();
            request_hash("/v1/assessments", &serde_json::to_value(selector).unwrap())
        };
        assert_eq!(
            hash(r#"{"labels":{"a":"1"},"regions":["x"]}"#),
            hash(r#"{ "regions": ["x"], "labels": {"a": "1"} }"#)
        );
    }

    #[test]
    fn another_path_or_body_is_another_request() {
        let body = json!({ "machine_ids": [] });
        let hash = request_hash("/v1/assessments", &body);
        assert_ne!(hash, request_hash("/v1/other", &body));
        assert_ne!(hash, request_hash("/v1/assessments", &json!({})));
    }
}
