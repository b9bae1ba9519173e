//! The console's writes in the audit log, as the API's are (`hotpatch_app::audit`): every post a
//! signed-in browser makes, once answered, is one entry naming the session's token, the route
//! (`POST /rollouts/{id}/{action}`), the path, where it led and the status; a successful
//! sign-in is one too. The form check of a maintenance configuration writes nothing and is left
//! out, and so are posts without a session (nobody to name). A post refused for its CSRF secret
//! is recorded (refused) under the session it rode on: someone's page tried.
//!
//! Who posted is learnt from the session itself: the layer puts an empty [`AuditSlot`] into the
//! request and the `SignedIn` extractor (or the sign-in) fills it, so nothing is looked up twice.

use std::sync::{Arc, Mutex, PoisonError};

use axum::extract::{MatchedPath, Request};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::Response;
use hotpatch_app::audit::{self, Write};
use hotpatch_app::App;
use hotpatch_domain::Role;
use uuid::Uuid;

/// Who made the write, and the application to record it in.
#[derive(Clone, Default)]
pub struct AuditSlot(Arc<Mutex<Option<(App, Uuid, Role)>>>);

impl AuditSlot {
    /// Records who is posting.
    pub fn set(&self, app: &App, token_id: Uuid, role: Role) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some((app.clone(), token_id, role));
    }

    fn take(&self) -> Option<(App, Uuid, Role)> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }
}

/// Paths whose posts change nothing.
const READ_ONLY: [&str; 1] = ["/maintenance/check"];

/// Runs the request and, for a post by a session, records it.
pub async fn record(mut req: Request, next: Next) -> Response {
    let path = req.uri().path().to_owned();
    if req.method() != Method::POST || READ_ONLY.contains(&path.as_str()) {
        return next.run(req).await;
    }
    let route = req.extensions().get::<MatchedPath>().map_or_else(|| path.clone(), |m| m.as_str().to_owned());
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let slot = AuditSlot::default();
    req.extensions_mut().insert(slot.clone());
    let response = next.run(req).await;
    let Some((app, token_id, role)) = slot.take() else { return response };
    let action = format!("POST {route}");
    let location = response.headers().get(header::LOCATION).and_then(|v| v.to_str().ok());
    let write = Write {
        token_id,
        role: role.into(),
        action: &action,
        target: &path,
        location,
        status: response.status().as_u16(),
        request_id: request_id.as_deref(),
    };
    if let Err(e) = audit::record(&app, &write).await {
        tracing::warn!(error = %e, %action, "audit entry not written");
    }
    response
}
