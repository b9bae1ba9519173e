//! The layer that drops kept patch status answers and machine reads a write through this
//! replica may have changed, before the response leaves (see `hotpatch_app::status::cache`).

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;
use hotpatch_app::status::cache::Caches;
use hotpatch_app::wakeups::StatusSink as _;
use uuid::Uuid;

/// What a write request may change of kept answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Touches {
    Nothing,
    Machine(Uuid),
    Everything,
}

/// Which answers a request may change, from its method and path. Agents' writes are dropped
/// by their handlers (the machine is the token's); what cannot change any status (tokens,
/// webhooks, new machines, queued jobs, the clock) drops nothing; anything else not tied to one
/// machine drops everything (releases, maintenance configurations, rollouts: rare writes).
fn touches(method: &Method, path: &str) -> Touches {
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return Touches::Nothing;
    }
    let mut parts = path.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("v1"), Some("machines"), Some(id)) => match id.parse() {
            Ok(id) => Touches::Machine(id),
            // `import`, or a machine that cannot exist.
            Err(_) => Touches::Nothing,
        },
        (
            Some("v1"),
            Some("machines" | "agent" | "tokens" | "webhooks" | "assessments" | "admin" | "events"),
            _,
        ) => Touches::Nothing,
        _ => Touches::Everything,
    }
}

/// Layer: after a write through this replica, drops the answers it may have changed, before the
/// response leaves. The notification of the same change comes later and finds nothing to drop;
/// a fill that read before the change is refused (its ticket is older).
pub async fn forget_written(State(kept): State<Arc<Caches>>, request: Request, next: Next) -> Response {
    let touched = touches(request.method(), request.uri().path());
    let response = next.run(request).await;
    match touched {
        Touches::Nothing => {}
        Touches::Machine(id) => kept.changed(&[id]),
        Touches::Everything => kept.changed_all(),
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_drop_what_they_touch() {
        let id = Uuid::now_v7();
        let cases = [
            (Method::GET, "/v1/releases".to_owned(), Touches::Nothing),
            (Method::PATCH, format!("/v1/machines/{id}"), Touches::Machine(id)),
            (Method::PUT, format!("/v1/machines/{id}/installed-state"), Touches::Machine(id)),
            (Method::POST, "/v1/machines/import".to_owned(), Touches::Nothing),
            (Method::POST, "/v1/machines".to_owned(), Touches::Nothing),
            (Method::POST, "/v1/agent/inventory".to_owned(), Touches::Nothing),
            (Method::POST, "/v1/tokens".to_owned(), Touches::Nothing),
            (Method::POST, "/v1/releases".to_owned(), Touches::Everything),
            (Method::PUT, "/v1/maintenance-configurations/x".to_owned(), Touches::Everything),
            (Method::POST, "/v1/rollouts/x/pause".to_owned(), Touches::Everything),
        ];
        for (method, path, want) in cases {
            assert_eq!(touches(&method, &path), want, "{method} {path}");
        }
    }
}
