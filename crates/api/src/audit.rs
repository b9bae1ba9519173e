//! The layer that writes the audit log: every write request (any method but GET, HEAD and
//! OPTIONS) to a `/v1` route, once answered, becomes one entry naming the token that made it,
//! the route, the path, what it created, the status and the request id.
//!
//! Who made it is learnt from the authentication itself: the layer puts an empty
//! [`AuditSlot`] into the request, and `auth::Principal` fills it when a token is verified, so
//! the layer never authenticates twice. Requests without a verified token (401) are not
//! recorded: there is no one to name, and an unauthenticated flood must not fill the table.
//! Agents' protocol (`/v1/agent/…`: claims, heartbeats, results) is not an operator's write and
//! is left out too. An entry that cannot be written is logged; the answer stands.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use hotpatch_app::audit::{self, Write};

use crate::auth::Principal;
use crate::AppState;

/// Where authentication leaves the principal of a request the audit layer watches.
#[derive(Debug, Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<Principal>>>);

impl AuditSlot {
    /// Records who is calling.
    pub fn set(&self, principal: Principal) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(principal);
    }

    fn get(&self) -> Option<Principal> {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Requests that are POSTs but write nothing: questions asked with a body.
const READS_BY_POST: [&str; 2] = ["/v1/rollouts/preview", "/v1/what-if"];

/// Whether a request is a write the audit log records.
fn audited(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && path.starts_with("/v1/")
        && !path.starts_with("/v1/agent/")
        && !READS_BY_POST.contains(&path)
}

/// Runs the request and, for a write made with a verified token, records it.
pub async fn record(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if !audited(req.method(), &path) {
        return next.run(req).await;
    }
    let method = req.method().clone();
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| path.clone(), |m| m.as_str().to_owned());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    let Some(principal) = slot.get() else { return response };
    let action = format!("{method} {route}");
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
    let role: &'static str = principal.role.into();
    let write = Write {
        token_id: principal.token_id,
        role,
        action: &action,
        target: &path,
        location,
        status: response.status().as_u16(),
        request_id: request_id.as_deref(),
    };
    if let Err(e) = audit::record(&state, &write).await {
        tracing::warn!(error = %e, %action, "audit entry not written");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_outside_the_agent_protocol_are_audited() {
        assert!(audited(&Method::POST, "/v1/machines"));
        assert!(audited(&Method::DELETE, "/v1/tokens/x"));
        assert!(audited(&Method::PUT, "/v1/admin/clock"));
        assert!(!audited(&Method::GET, "/v1/machines"));
        assert!(!audited(&Method::POST, "/v1/agent/jobs/claim"));
        assert!(!audited(&Method::POST, "/metrics"));
        assert!(!audited(&Method::POST, "/v1/what-if"), "it writes nothing");
        assert!(!audited(&Method::POST, "/v1/rollouts/preview"));
    }
}
