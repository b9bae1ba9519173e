//! The application layer's one error type: what a use case can refuse or fail with, in words a
//! client can be shown. The API maps each variant onto its problem+json answer in one place
//! (`hotpatch_api::error`); background duties log them.

use hotpatch_domain::{EligibilityRejection, FieldError};
use hotpatch_store::StoreError;
use serde::Serialize;
use utoipa::ToSchema;

/// Why a use case failed.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is malformed outside its body's content (a parameter, a path).
    #[error("{detail}")]
    BadRequest {
        /// What is wrong.
        detail: String,
        /// Offending fields, if known.
        errors: Vec<FieldError>,
    },
    /// Well-formed input whose content is invalid.
    #[error("{detail}")]
    Unprocessable {
        /// Summary.
        detail: String,
        /// Every offending field.
        errors: Vec<FieldError>,
    },
    /// A bulk request with invalid items.
    #[error("{detail}")]
    ImportRejected {
        /// Summary.
        detail: String,
        /// Every problem, by item index.
        errors: Vec<ItemError>,
        /// Whether every problem is a name conflict.
        conflict_only: bool,
    },
    /// The resource does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The write conflicts with existing state.
    #[error("{0}")]
    Conflict(String),
    /// A heartbeat or result for a lease that no longer holds the job.
    #[error("{0}")]
    LeaseLost(String),
    /// An idempotency key sent again with another request.
    #[error("{0}")]
    IdempotencyKeyReused(String),
    /// Hotpatch was requested on a machine whose rules forbid it.
    #[error(transparent)]
    Ineligible(#[from] EligibilityRejection),
    /// The database is unreachable or rolled the work back; retrying works.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else; the cause is logged, never shown.
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

impl AppError {
    /// An invalid value of one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError::Unprocessable {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// One malformed parameter (path or query).
    pub fn bad_param(field: &str, message: impl Into<String>) -> Self {
        let message = message.into();
        AppError::BadRequest {
            detail: format!("{field}: {message}"),
            errors: vec![FieldError::new(field, message)],
        }
    }

    /// Every field error of a value, with a detail that lists them.
    pub fn invalid(errors: Vec<FieldError>) -> Self {
        let detail =
            errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect::<Vec<_>>().join("; ");
        AppError::Unprocessable { detail, errors }
    }

    /// A failure that is ours, not the caller's (logged, never shown).
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        AppError::Internal(cause.to_string())
    }
}

impl From<StoreError> for AppError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound => AppError::NotFound("not found".to_owned()),
            StoreError::Conflict { constraint, detail } => {
                AppError::Conflict(conflict_detail(&constraint, &detail))
            }
            // Class 22 is "data exception": a value PostgreSQL will not store (e.g. NUL in
            // text). Validation should catch these first; this keeps them 4xx if it does not.
            StoreError::Database(sqlx::Error::Database(db))
                if db.code().is_some_and(|c| c.starts_with("22")) =>
            {
                AppError::BadRequest {
                    detail: format!("a value cannot be stored: {}", db.message()),
                    errors: vec![],
                }
            }
            // Class 40 is "transaction rollback" (deadlock, serialization failure): retrying works.
            StoreError::Database(sqlx::Error::Database(db))
                if db.code().is_some_and(|c| c.starts_with("40")) =>
            {
                AppError::Unavailable(format!(
                    "the database rolled the request back ({}); retry",
                    db.message()
                ))
            }
            e if e.is_connection_failure() => {
                AppError::Unavailable("the database is unavailable; retry later".to_owned())
            }
            other => AppError::Internal(other.to_string()),
        }
    }
}

impl From<sqlx::Error> for AppError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::from(e).into()
    }
}

/// Names the missing resource in a store lookup's "not found".
pub trait OrNotFound<T> {
    /// Turns `StoreError::NotFound` into [`AppError::NotFound`] whose detail is `what()`.
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T, AppError>;
}

impl<T> OrNotFound<T> for Result<T, StoreError> {
    fn or_not_found(self, what: impl FnOnce() -> String) -> Result<T, AppError> {
        self.map_err(|e| match e {
            StoreError::NotFound => AppError::NotFound(what()),
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
