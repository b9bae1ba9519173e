//! Entity tags on the wire: `If-None-Match` read into a [`Conditional`], and the 304 and
//! tagged 200 answers.

use axum::body::Bytes;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use hotpatch_app::status::Conditional;

use crate::error::ApiError;

/// The value of an `at` parameter: an RFC 3339 instant.
pub fn parse_at(v: &str) -> Result<DateTime<Utc>, ApiError> {
    hotpatch_domain::time::parse_instant(v).ok_or_else(|| {
        ApiError::bad_param("at", format!("'{}' {}", v.escape_debug(), hotpatch_domain::time::EXPECTED))
    })
}

/// The entity tags of `If-None-Match`: `*`, or opaque tags (weak ones compared weakly, as
/// RFC 9110 has it for `If-None-Match`), quotes removed.
pub struct IfNoneMatch;

impl IfNoneMatch {
    /// The conditional of a request's headers.
    pub fn of(headers: &HeaderMap) -> Conditional {
        let mut any = false;
        let mut tags = vec![];
        for part in headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
        {
            let t = part.trim();
            if t == "*" {
                any = true;
            } else {
                let t = t.strip_prefix("W/").unwrap_or(t);
                if let Some(t) = t.strip_prefix('"').and_then(|t| t.strip_suffix('"')) {
                    tags.push(t.to_owned());
                }
            }
        }
        Conditional { any, tags }
    }
}

/// 304 with the matching tag.
pub fn not_modified(etag: &str) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(etag).map_err(ApiError::internal)?;
    Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, v)]).into_response())
}

/// 200 with a JSON body and its tag.
pub fn json_with_etag(etag: &str, body: impl Into<Bytes>) -> Result<Response, ApiError> {
    let v = HeaderValue::from_str(etag).map_err(ApiError::internal)?;
    Ok((
        StatusCode::OK,
        [(header::ETAG, v), (header::CONTENT_TYPE, HeaderValue::from_static("application/json"))],
        body.into(),
    )
        .into_response())
}
