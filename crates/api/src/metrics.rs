//! `/metrics`: the Prometheus text of this process's [`hotpatch_app::telemetry`], and the
//! middleware that counts requests and their latency per route template.
//!
//! Route templates (not raw paths), the standard methods (others are `_OTHER`) and status codes
//! keep the label set bounded: a fleet-sized deployment scrapes every replica.

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Middleware recording every request.
pub(crate) async fn record(State(state): State<crate::AppState>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method());
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let res = next.run(req).await;
    let status = res.status().as_u16().to_string();
    let seconds = start.elapsed().as_secs_f64();
    state.telemetry.record(|| {
        let labels = [("method", method.to_owned()), ("route", route), ("status", status)];
        metrics::counter!("hotpatch_http_requests_total", &labels).increment(1);
        metrics::histogram!("hotpatch_http_request_duration_seconds", &labels).record(seconds);
    });
    res
}

/// The method as a label: the standard ones by name, every other one `_OTHER`, so clients
/// sending made-up methods cannot add series (each would be kept for the process's lifetime).
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "_OTHER",
    }
}

/// `GET /metrics`; with a metrics token configured, only for `Authorization: Bearer <token>`.
pub(crate) async fn serve(State(state): State<crate::AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = &state.metrics_token {
        if !presents(&headers, expected) {
            return crate::error::ApiError::Unauthorized("/metrics needs the metrics token".to_owned())
                .into_response();
        }
    }
    let out = hotpatch_app::telemetry::render(&state).await;
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Whether the request carries `Bearer <expected>`, compared in constant time.
fn presents(headers: &HeaderMap, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let given = headers.get(AUTHORIZATION).and_then(crate::auth::bearer).unwrap_or("");
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}
