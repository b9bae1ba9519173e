//! Prometheus metrics at `/metrics`: request counts and latency per route template.
//!
//! Kept in-process and tiny on purpose: a fleet-sized deployment scrapes every replica,
//! and route templates (not raw paths), the standard methods (others are `_OTHER`) and status
//! codes keep the label set bounded.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE};
use axum::http::{HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Default)]
struct Series {
    count: u64,
    sum: f64,
    buckets: [u64; BUCKETS.len()],
}

/// Request metrics shared by every handler of one process.
#[derive(Clone, Default)]
pub struct Metrics {
    series: Arc<Mutex<BTreeMap<SeriesKey, Series>>>,
}

/// Method, route template, status.
type SeriesKey = (String, String, u16);

impl Metrics {
    fn observe(&self, method: &str, route: &str, status: u16, seconds: f64) {
        let Ok(mut series) = self.series.lock() else { return };
        let s = series.entry((method.to_owned(), route.to_owned(), status)).or_default();
        s.count += 1;
        s.sum += seconds;
        for (i, le) in BUCKETS.iter().enumerate() {
            if seconds <= *le {
                s.buckets[i] += 1;
            }
        }
    }

    /// The Prometheus text exposition of everything observed so far.
    pub fn render(&self) -> String {
        let mut out = String::new();
        out.push_str(
            "# HELP hotpatch_http_requests_total HTTP requests served, by route template and status.\n",
        );
        out.push_str("# TYPE hotpatch_http_requests_total counter\n");
        let Ok(series) = self.series.lock() else { return out };
        for ((method, route, status), s) in series.iter() {
            let _ = writeln!(
                out,
                "hotpatch_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {}",
                s.count
            );
        }
        out.push_str("# HELP hotpatch_http_request_duration_seconds Time to answer, by route template.\n");
        out.push_str("# TYPE hotpatch_http_request_duration_seconds histogram\n");
        for ((method, route, status), s) in series.iter() {
            let labels = format!("method=\"{method}\",route=\"{route}\",status=\"{status}\"");
            for (le, n) in BUCKETS.iter().zip(s.buckets) {
                let _ = writeln!(
                    out,
                    "hotpatch_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "hotpatch_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                s.count
            );
            let _ = writeln!(out, "hotpatch_http_request_duration_seconds_sum{{{labels}}} {}", s.sum);
            let _ = writeln!(out, "hotpatch_http_request_duration_seconds_count{{{labels}}} {}", s.count);
        }
        out
    }
}

/// Middleware recording every request.
pub(crate) async fn record(State(metrics): State<Metrics>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method()).to_owned();
    let route = req.extensions().get::<MatchedPath>().map_or("unmatched", |p| p.as_str()).to_owned();
    let res = next.run(req).await;
    metrics.observe(&method, &route, res.status().as_u16(), start.elapsed().as_secs_f64());
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
    let mut out = state.metrics.render();
    out.push_str(&process_metrics(state.wakeups.waiting()));
    out.push_str(&state.agent_batches.render());
    out.push_str(&state.duties.render());
    ([(CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

/// Whether the request carries `Bearer <expected>`, compared in constant time.
fn presents(headers: &HeaderMap, expected: &str) -> bool {
    use subtle::ConstantTimeEq as _;
    let given = headers.get(AUTHORIZATION).and_then(crate::auth::bearer).unwrap_or("");
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

/// Memory of this process (Linux `/proc/self/status`: VmRSS and its peak VmHWM) and the number of
/// keys with long-polls waiting, so load tests and dashboards read them from the service itself.
fn process_metrics(waiting: usize) -> String {
    let mut out = String::new();
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    };
    for (name, field, help) in [
        ("process_resident_memory_bytes", "VmRSS:", "Resident memory."),
        ("process_resident_memory_peak_bytes", "VmHWM:", "Peak resident memory since start."),
    ] {
        if let Some(v) = kib(field) {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {}", v * 1024);
        }
    }
    let _ = writeln!(
        out,
        "# HELP hotpatch_long_poll_keys Machines and operations with a long-poll waiting in this process.\n\
         # TYPE hotpatch_long_poll_keys gauge\nhotpatch_long_poll_keys {waiting}"
    );
    out
}
