//! The OpenAPI document, generated from the handlers, served at `/openapi.json` with a
//! browsable `/docs`; `api/openapi.json` is its committed copy, checked for drift by a test.

use axum::routing::get;

use axum::body::Bytes;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::Router;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::OpenApi as Document;
use utoipa::{Modify, OpenApi};

use crate::AppState;

mod flatten;
mod problems;

#[derive(OpenApi)]
#[openapi(
    info(title = "hotpatch", description = "Control plane for Windows Server hotpatching: fleet inventory, \
        eligibility, release cycle, maintenance windows and dispatch to agents."),
    modifiers(&BearerAuth),
    tags((name = "machines", description = "The fleet inventory and hotpatch eligibility"),
        (name = "tokens", description = "API tokens"),
        (name = "regions", description = "Region capabilities"),
        (name = "releases", description = "The release catalog (baselines, hotpatches, other updates) and the calendar"),
        (name = "maintenance", description = "Maintenance configurations and each machine's windows in its local time"),
        (name = "events", description = "The change feed (Server-Sent Events), resumable with `Last-Event-ID`"),
        (name = "webhooks", description = "Signed deliveries of change-feed events to your URLs"),
        (name = "admin", description = "The service clock (movable only in test installations)"),
        (name = "health", description = "Liveness and readiness")))]
struct ApiDoc;

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme("bearer", SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)));
    }
}

/// The document's header (info, tags, security scheme); paths are added by the routers.
pub(crate) fn base() -> Document {
    ApiDoc::openapi()
}

/// The complete OpenAPI document of the API.
pub fn document() -> Document {
    finish(crate::api_routes().split_for_parts().1)
}

/// The routes' own descriptions completed with what the layers they share answer: see
/// [`problems::complete`].
pub(crate) fn finish(mut doc: Document) -> Document {
    problems::complete(&mut doc);
    flatten::flatten_all_of(&mut doc);
    doc
}

/// The document as the pretty JSON committed in `api/openapi.json`.
pub fn document_json() -> String {
    let mut s = document().to_pretty_json().unwrap_or_default();
    s.push('\n');
    s
}

/// The OpenAPI viewer, vendored (`crates/api/assets/README.md`): `/docs` needs no CDN.
const RAPIDOC: &[u8] = include_bytes!("../assets/rapidoc-min.js");

/// The `/docs` page: the viewer reading `/openapi.json`, with its web fonts off (the system's
/// are used) so that nothing is fetched from another host.
const DOCS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>hotpatch API</title>
  <script type="module" src="/docs/rapidoc-min.js"></script>
</head>
<body>
  <rapi-doc spec-url="/openapi.json" load-fonts="false" render-style="read" show-header="false"
    allow-try="true" allow-server-selection="false" schema-style="table" theme="light"
    regular-font="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"
    mono-font="ui-monospace, SFMono-Regular, Consolas, monospace"></rapi-doc>
</body>
</html>
"#;

/// Only this origin: the page, its script, the spec and the API calls "try" makes.
const DOCS_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
    img-src 'self' data:; font-src 'self'; connect-src 'self'; frame-ancestors 'none'";

/// `/openapi.json` and `/docs` (with its script).
pub(crate) fn docs_router(spec: Document) -> Router<AppState> {
    // Rendered once: axum clones a handler for every request it serves, so a handler holding the
    // spec by value would copy the whole document (about a megabyte) per request, and the spec
    // would stay in memory as many times as requests are in flight.
    let json = Bytes::from(spec.to_json().unwrap_or_else(|_| "{}".to_owned()));
    Router::new()
        .route(
            "/openapi.json",
            get(move || {
                let json = json.clone();
                async move { ([(CONTENT_TYPE, "application/json")], json) }
            }),
        )
        .route(
            "/docs",
            get(|| async {
                ([(CONTENT_TYPE, "text/html; charset=utf-8"), (CONTENT_SECURITY_POLICY, DOCS_CSP)], DOCS_PAGE)
            }),
        )
        .route(
            "/docs/rapidoc-min.js",
            get(|| async {
                (
                    [
                        (CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    Bytes::from_static(RAPIDOC),
                )
            }),
        )
}
