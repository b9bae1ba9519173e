//! The API's one error type and its single mapping onto `application/problem+json` (RFC 9457).
//!
//! Every error a client can see goes through `IntoResponse for ApiError`, so status
//! codes and the stable `code`s live in one place. A 5xx body says nothing internal;
//! its cause is logged inside the request's span.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotpatch_app::error::AppError;
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

pub use hotpatch_app::error::ItemError;

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

impl From<AppError> for ApiError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::BadRequest { detail, errors } => ApiError::BadRequest { detail, errors },
            AppError::Unprocessable { detail, errors } => ApiError::Unprocessable { detail, errors },
            AppError::ImportRejected { detail, errors, conflict_only } => {
                ApiError::ImportRejected { detail, errors, conflict_only }
            }
            AppError::NotFound(d) => ApiError::NotFound(d),
            AppError::Conflict(d) => ApiError::Conflict(d),
            AppError::LeaseLost(d) => ApiError::LeaseLost(d),
            AppError::IdempotencyKeyReused(d) => ApiError::IdempotencyKeyReused(d),
            AppError::Ineligible(r) => ApiError::Ineligible(r),
            AppError::Unavailable(d) => ApiError::Unavailable(d),
            AppError::Internal(d) => ApiError::Internal(d),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
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
