//! The API's one error type and its single mapping onto `application/problem+json` (RFC 9457).
//!
//! Every error a client can see goes through `IntoResponse for ApiError`, so status
//! codes and the stable `code`s live in one place. A 5xx body says nothing internal;
//! its cause is logged inside the request's span.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotpatch_domain::{EligibilityRejection, FieldError, Reason};
use hotpatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON at all (400) or the request is malformed outside the body.
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// Offending fields, if known.
        errors: Vec<FieldError>,
    },
    /// Well-formed JSON whose content is invalid (422).
    #[error("{detail}")]
    Unprocessable {
        /// Summary.
        detail: String,
        /// Every offending field.
        errors: Vec<FieldError>,
    },
    /// An import with invalid items (422 `validation_failed`, or 409 `conflict` when
    /// every problem is a taken name).
    #[error("{detail}")]
    ImportRejected {
        /// Summary.
        detail: String,
        /// Every problem, by item index.
        errors: Vec<ItemError>,
        /// Whether every problem is a name conflict.
        conflict_only: bool,
    },
    /// No token, or a token that is unknown, wrong or expired (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The resource does not exist (404).
    #[error("{0}")]
    NotFound(String),
    /// The write conflicts with existing state (409).
    #[error("{0}")]
    Conflict(String),
    /// A heartbeat or result for a lease that no longer holds the job (409 `lease_lost`).
    #[error("{0}")]
    LeaseLost(String),
    /// An `Idempotency-Key` sent again with another request (422 `idempotency_key_reused`).
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Hotpatch was requested on a machine whose rules forbid it (400, code of the rule).
    #[error(transparent)]
    Ineligible(#[from] EligibilityRejection),
    /// The body exceeds the route's limit (413).
    #[error("the request body exceeds this endpoint's limit (1 MiB; 16 MiB for POST /v1/machines/import)")]
    PayloadTooLarge,
    /// The body is not declared as JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The path exists, the method does not (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// The database is unreachable (503).
    #[error("{0}")]
    Unavailable(String),
    /// Anything else (500); the cause is logged, never sent.
    #[error("internal error: {0}")]
    Internal(String),
}

/// One invalid item of a bulk request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ItemError {
    /// Index of the item in the request array.
    pub index: usize,
    /// Dotted path of the field within the item (empty for the item as a whole).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// A rule code when a specific rule failed (e.g. `unsupported_image`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

/// An RFC 9457 problem document with the service's extensions.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// URI naming the problem type (`urn:hotpatch:problem:<code>`).
    #[serde(rename = "type")]
    pub type_: String,
    /// Short summary of the problem type.
    pub title: String,
    /// HTTP status.
    pub status: u16,
    /// What happened in this occurrence.
    pub detail: String,
    /// Stable machine-readable code, e.g. `validation_failed`, `unsupported_image`.
    pub code: String,
    /// Field errors (validation) or item errors (imports).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub errors: Option<serde_json::Value>,
    /// Every failed eligibility rule, for eligibility problems.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reasons: Option<Vec<Reason>>,
}

impl ApiError {
    /// A 422 for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::Unprocessable {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// A 400 for one malformed parameter (path or query).
    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        ApiError::BadRequest {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// The status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "validation_failed"),
            ApiError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::ImportRejected { conflict_only: true, .. } => (StatusCode::CONFLICT, "conflict"),
            ApiError::ImportRejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            ApiError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            ApiError::LeaseLost(_) => (StatusCode::CONFLICT, "lease_lost"),
            ApiError::IdempotencyKeyReused(_) => (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused"),
            ApiError::Ineligible(r) => (StatusCode::BAD_REQUEST, r.code.into()),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            ApiError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => ApiError::NotFound("not found".to_owned()),
            StoreError::Conflict { constraint, detail } => {
                ApiError::Conflict(conflict_detail(&constraint, &detail))
            }
            // Class 22 is "data exception": a value PostgreSQL will not store (e.g. NUL in
            // text). Validation should catch these first; this keeps them 4xx if it does not.
            StoreError::Database(sqlx::Error::Database(db))
                if db.code().is_some_and(|c| c.starts_with("22")) =>
            {
                ApiError::BadRequest {
                    detail: format!("a value cannot be stored: {}", db.message()),
                    errors: vec![],
                }
            }
            // Class 40 is "transaction rollback" (deadlock, serialization failure): retrying works.
            StoreError::Database(sqlx::Error::Database(db))
                if db.code().is_some_and(|c| c.starts_with("40")) =>
            {
                ApiError::Unavailable(format!(
                    "the database rolled the request back ({}); retry",
                    db.message()
                ))
            }
            StoreError::Database(sqlx::Error::PoolTimedOut | sqlx::Error::Io(_)) => {
                ApiError::Unavailable("the database is unavailable; retry later".to_owned())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Names the missing resource in a store lookup's 404.
pub(crate) trait OrNotFound<T> {
    /// Turns `StoreError::NotFound` into a 404 whose detail is `what()`.
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T, ApiError>;
}

impl<T> OrNotFound<T> for Result<T, StoreError> {
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            StoreError::NotFound => ApiError::NotFound(what()),
            e => e.into(),
        })
    }
}

/// Says in a client's words which uniqueness rule a write broke.
fn conflict_detail(constraint: &str, detail: &str) -> String {
    match constraint {
        "machine_name_key" => {
            let name = detail.split_once("=(").and_then(|(_, r)| r.split_once(')')).map(|(n, _)| n);
            match name {
                Some(n) => format!("a machine named '{n}' already exists"),
                None => "a machine with that name already exists".to_owned(),
            }
        }
        "job_one_active_disruptive" => {
            "the machine already has an install, rollback or reboot queued or running; wait for it to finish"
                .to_owned()
        }
        _ => format!("conflicts with an existing resource ({constraint})"),
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        let detail = match &self {
            ApiError::Internal(cause) => {
                tracing::error!(%cause, "request failed");
                "the server failed to handle the request; it has been logged".to_owned()
            }
            ApiError::Unavailable(cause) => {
                tracing::warn!(%cause, "database unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let (errors, reasons) = match self {
            ApiError::BadRequest { errors, .. } | ApiError::Unprocessable { errors, .. }
                if !errors.is_empty() =>
            {
                (serde_json::to_value(errors).ok(), None)
            }
            ApiError::ImportRejected { errors, .. } => (serde_json::to_value(errors).ok(), None),
            ApiError::Ineligible(r) => (None, Some(r.reasons)),
            _ => (None, None),
        };
        let problem = Problem {
            type_: format!("urn:hotpatch:problem:{code}"),
            title: status.canonical_reason().unwrap_or("Error").to_owned(),
            status: status.as_u16(),
            detail,
            code: code.to_owned(),
            errors,
            reasons,
        };
        let mut response = (status, axum::Json(problem)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/problem+json"));
        if status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}
