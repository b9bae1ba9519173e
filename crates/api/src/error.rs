//! The API's one error type and its single mapping onto `application/problem+json` (RFC 9457).
//!
//! Every error a client can see goes through `IntoResponse for ApiError`, so status
//! codes and the stable `code`s live in one place. A 5xx body says nothing internal;
//! its cause is logged inside the request's span.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hotpatch_app::error::AppError;
use hotpatch_domain::Reason;
use hotpatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a request failed: a refusal of the application layer, or one only HTTP knows (no or a
/// wrong token, a body too large or not JSON, a method the path does not have).
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// What a use case refused or failed with (its status and code: [`ApiError::status_and_code`]).
    #[error(transparent)]
    App(#[from] AppError),
    /// No token, or a token that is unknown, wrong or expired (401).
    #[error("{0}")]
    Unauthorized(String),
    /// A valid token whose role may not do this (403).
    #[error("{0}")]
    Forbidden(String),
    /// The body exceeds the route's limit (413).
    #[error("the request body exceeds this endpoint's limit (1 MiB; 16 MiB for POST /v1/machines/import)")]
    PayloadTooLarge,
    /// The body is not declared as JSON (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The path exists, the method does not (405).
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Too many requests, or too many held open, by this client (429, with `Retry-After`).
    #[error("{detail}")]
    RateLimited {
        /// Which limit.
        detail: String,
        /// When to try again.
        retry_after: std::time::Duration,
    },
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

/// `Retry-After` of a 503 `unavailable`, in seconds.
pub const RETRY_UNAVAILABLE_SECS: &str = "2";

impl ApiError {
    /// A 400 for one malformed parameter (path or query).
    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        AppError::bad_param(field, message).into()
    }

    /// A 404 with this detail.
    pub fn not_found(detail: impl Into<String>) -> Self {
        AppError::NotFound(detail.into()).into()
    }

    /// A 500 whose cause is logged, never sent.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::internal(cause).into()
    }

    /// The status and stable code of this error.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            ApiError::App(e) => match e {
                AppError::BadRequest { .. } => (StatusCode::BAD_REQUEST, "validation_failed"),
                AppError::Unprocessable { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
                AppError::ImportRejected { conflict_only: true, .. } => (StatusCode::CONFLICT, "conflict"),
                AppError::ImportRejected { .. } => (StatusCode::UNPROCESSABLE_ENTITY, "validation_failed"),
                AppError::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
                AppError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
                AppError::LeaseLost(_) => (StatusCode::CONFLICT, "lease_lost"),
                AppError::IdempotencyKeyReused(_) => {
                    (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
                }
                AppError::Ineligible(r) => (StatusCode::BAD_REQUEST, r.code.into()),
                AppError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
                AppError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
            },
            ApiError::Unauthorized(_) => (StatusCode::UNAUTHORIZED, "unauthorized"),
            ApiError::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            ApiError::PayloadTooLarge => (StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large"),
            ApiError::UnsupportedMediaType(_) => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type")
            }
            ApiError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            ApiError::RateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
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
            ApiError::App(AppError::Internal(cause)) => {
                tracing::error!(%cause, "request failed");
                "the server failed to handle the request; it has been logged".to_owned()
            }
            ApiError::App(AppError::Unavailable(cause)) => {
                tracing::warn!(%cause, "database unavailable");
                self.to_string()
            }
            _ => self.to_string(),
        };
        let retry_after = match &self {
            ApiError::RateLimited { retry_after, .. } => {
                Some(retry_after.as_secs_f64().ceil().max(1.0) as u64)
            }
            _ => None,
        };
        let (errors, reasons) =
            match self {
                ApiError::App(
                    AppError::BadRequest { errors, .. } | AppError::Unprocessable { errors, .. },
                ) if !errors.is_empty() => (serde_json::to_value(errors).ok(), None),
                ApiError::App(AppError::ImportRejected { errors, .. }) => {
                    (serde_json::to_value(errors).ok(), None)
                }
                ApiError::App(AppError::Ineligible(r)) => (None, Some(r.reasons)),
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
        if let Some(secs) = retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            // A restart of PostgreSQL or of this replica takes seconds: clients retry soon.
            headers.insert(header::RETRY_AFTER, HeaderValue::from_static(RETRY_UNAVAILABLE_SECS));
        }
        response
    }
}
