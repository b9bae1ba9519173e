//! The console's one error type, rendered as a small HTML page (never problem+json: a person
//! reads it) with a status that says what happened.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use hotpatch_app::AppError;
use maud::html;

/// Why a console request failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No live session: the browser is sent to the sign-in page.
    #[error("sign in first")]
    SignIn,
    /// The session's role may not do this, or the form is forged (CSRF).
    #[error("{0}")]
    Forbidden(String),
    /// The request cannot be read (a bad path or form).
    #[error("{0}")]
    BadRequest(String),
    /// The session's token holds as many open streams as the service allows.
    #[error("{0}")]
    TooMany(String),
    /// What the use case refused or failed with.
    #[error(transparent)]
    App(#[from] AppError),
}

impl ConsoleError {
    /// The status and the words a person is shown.
    pub fn status_and_message(&self) -> (StatusCode, String) {
        match self {
            ConsoleError::SignIn => (StatusCode::UNAUTHORIZED, self.to_string()),
            ConsoleError::Forbidden(m) => (StatusCode::FORBIDDEN, m.clone()),
            ConsoleError::BadRequest(m) => (StatusCode::BAD_REQUEST, m.clone()),
            ConsoleError::TooMany(m) => (StatusCode::TOO_MANY_REQUESTS, m.clone()),
            ConsoleError::App(e) => app_status(e),
        }
    }
}

/// How a use case's error reads in the console; the API maps the same variants to problem+json.
pub fn app_status(e: &AppError) -> (StatusCode, String) {
    match e {
        AppError::BadRequest { detail, errors } | AppError::Unprocessable { detail, errors } => {
            let fields: Vec<String> = errors.iter().map(|f| format!("{}: {}", f.field, f.message)).collect();
            let message =
                if fields.is_empty() { detail.clone() } else { format!("{detail} ({})", fields.join("; ")) };
            (StatusCode::UNPROCESSABLE_ENTITY, message)
        }
        AppError::ImportRejected { detail, .. } => (StatusCode::UNPROCESSABLE_ENTITY, detail.clone()),
        AppError::Ineligible(r) => (StatusCode::UNPROCESSABLE_ENTITY, r.to_string()),
        AppError::NotFound(m) => (StatusCode::NOT_FOUND, m.clone()),
        AppError::Conflict(m) | AppError::LeaseLost(m) | AppError::IdempotencyKeyReused(m) => {
            (StatusCode::CONFLICT, m.clone())
        }
        AppError::Unavailable(_) => {
            (StatusCode::SERVICE_UNAVAILABLE, "the database is unavailable; try again shortly".to_owned())
        }
        AppError::Internal(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "something went wrong on the server".to_owned())
        }
    }
}

impl IntoResponse for ConsoleError {
    fn into_response(self) -> Response {
        if let ConsoleError::SignIn = self {
            let mut r = Redirect::to("/signin").into_response();
            // htmx follows this header instead of swapping the sign-in page into a fragment.
            r.headers_mut().insert("hx-redirect", HeaderValue::from_static("/signin"));
            return r;
        }
        let (status, message) = self.status_and_message();
        if status.is_server_error() {
            tracing::error!(error = %self, "console request failed");
        }
        let body = html! {
            (maud::DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (status.canonical_reason().unwrap_or("Error")) " · hotpatch" }
                    link rel="stylesheet" href="/console/assets/console.css";
                }
                body {
                    main id="main" {
                        h1 { (status.as_u16()) " " (status.canonical_reason().unwrap_or("Error")) }
                        p.error role="alert" { (message) }
                        p { a href="/" { "Back to the fleet" } }
                    }
                }
            }
        };
        let mut r = (status, body).into_response();
        r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        r
    }
}
