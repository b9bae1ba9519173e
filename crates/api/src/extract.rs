//! Extractors, and helpers reading headers and query strings, whose rejections are our problem
//! documents instead of axum's plain text.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_TYPE;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::ApiError;

/// A JSON body. Rejections: 415 without a JSON content type, 413 over the route's size
/// limit, 400 for malformed JSON, 422 (with the field path) for JSON of the wrong shape.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = json_body(req, state).await?;
        parse_json(&bytes).map(ApiJson)
    }
}

/// The raw bytes of a JSON body, with the content-type and size checks of [`ApiJson`].
pub async fn json_body<S: Send + Sync>(req: Request, state: &S) -> Result<Bytes, ApiError> {
    let is_json = req
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<mime::Mime>().ok())
        .is_some_and(|m| {
            m.type_() == "application" && (m.subtype() == "json" || m.suffix().is_some_and(|s| s == "json"))
        });
    if !is_json {
        return Err(ApiError::UnsupportedMediaType(
            "the request body must be JSON with `Content-Type: application/json`".to_owned(),
        ));
    }
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge
        } else {
            ApiError::bad_param("body", rejection.body_text())
        }
    })
}

/// Deserializes JSON, naming the offending field on failure (see [`hotpatch_app::json`]).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    Ok(hotpatch_app::json::parse(bytes)?)
}

pub use hotpatch_app::json::field_error;

/// Path parameters; a malformed one (e.g. an id that is not a UUID) is a 400 problem.
#[derive(Debug, Clone)]
pub struct ApiPath<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(v)) => Ok(ApiPath(v)),
            Err(PathRejection::FailedToDeserializePathParams(e)) => {
                Err(ApiError::bad_param("path", format!("malformed path parameter: {}", e.body_text())))
            }
            Err(e) => Err(ApiError::internal(e.body_text())),
        }
    }
}

/// A JSON body that may be left out entirely, or be `null` (then `T::default()`); a body that
/// is present gets the same checks as [`ApiJson`].
#[derive(Debug, Clone)]
pub struct OptionalJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned + Default> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let declared_empty = req.headers().get(axum::http::header::CONTENT_LENGTH).is_some_and(|v| v == "0");
        if declared_empty || !req.headers().contains_key(CONTENT_TYPE) {
            let bytes = Bytes::from_request(req, state).await.map_err(|_| ApiError::PayloadTooLarge)?;
            if bytes.iter().all(u8::is_ascii_whitespace) {
                return Ok(OptionalJson(T::default()));
            }
            return Err(ApiError::UnsupportedMediaType(
                "the request body must be JSON with `Content-Type: application/json`".to_owned(),
            ));
        }
        let bytes = json_body(req, state).await?;
        // `null` is the absent body too: the document describes these bodies as nullable.
        if bytes.iter().all(u8::is_ascii_whitespace) || bytes.trim_ascii() == b"null" {
            return Ok(OptionalJson(T::default()));
        }
        parse_json(&bytes).map(OptionalJson)
    }
}

/// `{}`: the only body a request without options accepts (e.g. `POST /v1/machines/{id}/assess`);
/// with [`OptionalJson`], no body at all is accepted too.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmptyObject {}

/// The `Idempotency-Key` header, if any: 1–255 visible ASCII characters. What the key means (the
/// same key with the same request returns the same operation) is the service's rule
/// (`hotpatch_app::operations::idempotency`).
pub fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else { return Ok(None) };
    let key = v
        .to_str()
        .ok()
        .map(str::trim)
        .filter(|k| (1..=255).contains(&k.len()) && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| ApiError::bad_param("Idempotency-Key", "must be 1 to 255 visible ASCII characters"))?;
    Ok(Some(key.to_owned()))
}

/// `?wait=` of a long-poll, the query's only parameter: 0 to `max` whole seconds, default 0.
pub fn wait_param(raw: Option<&str>, max: u64) -> Result<Duration, ApiError> {
    let mut wait = 0;
    for (k, v) in form_urlencoded::parse(raw.unwrap_or_default().as_bytes()) {
        match k.as_ref() {
            "wait" => {
                wait = v.parse::<u64>().ok().filter(|w| *w <= max).ok_or_else(|| {
                    ApiError::bad_param("wait", format!("must be a whole number of seconds, 0 to {max}"))
                })?;
            }
            k => {
                return Err(ApiError::bad_param(
                    &k.escape_debug().to_string(),
                    "unknown query parameter (known: wait)",
                ))
            }
        }
    }
    Ok(Duration::from_secs(wait))
}
