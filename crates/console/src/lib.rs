//! The web console of the hotpatch control plane: server-rendered HTML pages (maud) with a
//! little vendored JavaScript (htmx, and `console.js` for live updates and confirmations),
//! served by `hotpatchd` itself at `/`. No separate server, no CDN, nothing built with Node.
//!
//! Pages call the same `hotpatch_app` use cases the API's handlers call. A browser signs in
//! with an API token, exchanged for a session cookie (`hotpatch_app::console`); every form
//! carries the session's CSRF secret; what a page offers follows the role, and every action
//! checks the role again on the server.

mod assets;
mod audit;
pub mod error;
mod layout;
mod live;
mod pages;
mod session;

use std::future::Future;

use axum::routing::{get, post};
use axum::Router;
use hotpatch_app::{App, AppError};
use hotpatch_domain::Role;
use uuid::Uuid;

pub use error::ConsoleError;

/// A token the service has checked: its id and role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// The token's id.
    pub token_id: Uuid,
    /// Its role.
    pub role: Role,
}

/// What the console needs from the service that mounts it: the application, and the check of
/// a presented API token (the bearer format is the API's).
pub trait Host: Clone + Send + Sync + 'static {
    /// The application's services.
    fn app(&self) -> &App;
    /// The token's id and role when `token` is valid now; `None` when it is not.
    fn verify(&self, token: &str) -> impl Future<Output = Result<Option<Verified>, AppError>> + Send;
    /// A place among the open streams the service allows the token (its caps on `/v1/events`),
    /// kept while the returned value lives; the refusal in words when the token holds too many.
    fn hold_stream(&self, token_id: Uuid) -> Result<Box<dyn std::any::Any + Send + Sync>, String>;
}

/// Every page of the console, for the service to merge at `/`. Paths never start with `/v1`,
/// `/docs`, `/openapi.json` or `/metrics`.
pub fn router<H: Host>() -> Router<H> {
    use pages::{fleet, machine, machines, maintenance, operations, releases, rollout, rollouts, signin};
    Router::new()
        .route("/", get(fleet::page::<H>))
        .route("/signin", get(signin::form).post(signin::submit::<H>))
        .route("/signout", post(signin::sign_out::<H>))
        .route("/machines", get(machines::page::<H>))
        .route("/machines/{id}", get(machine::page::<H>))
        .route("/machines/{id}/assess", post(machine::assess::<H>))
        .route("/machines/{id}/install", post(machine::install::<H>))
        .route("/machines/{id}/rollback", post(machine::rollback::<H>))
        .route("/operations", get(operations::page::<H>))
        .route("/operations/{id}", get(operations::operation::<H>))
        .route("/operations/{id}/cancel", post(operations::cancel::<H>))
        .route("/rollouts", get(rollouts::page::<H>).post(rollouts::start::<H>))
        .route("/rollouts/new", get(rollouts::new::<H>))
        .route("/rollouts/preview", post(rollouts::preview::<H>))
        .route("/rollouts/{id}", get(rollout::page::<H>))
        .route("/rollouts/{id}/{action}", post(rollout::control::<H>))
        .route("/releases", get(releases::page::<H>))
        .route("/maintenance", get(maintenance::page::<H>).post(maintenance::create::<H>))
        .route("/maintenance/new", get(maintenance::new::<H>))
        .route("/maintenance/check", post(maintenance::check::<H>))
        .route("/maintenance/{id}", get(maintenance::edit::<H>).post(maintenance::save::<H>))
        .route("/console/events", get(live::events::<H>))
        .route("/console/assets/{file}", get(assets::serve))
        .route_layer(axum::middleware::from_fn(audit::record))
        .layer(axum::Extension(std::sync::Arc::new(pages::fleet::SummaryCache::default())))
        .layer(axum::middleware::map_response(guarded))
}

/// What every console answer says to the browser: scripts, styles and requests from this
/// origin only (the policy forbids inline script, so injected markup cannot run), no framing,
/// no referrer to other sites, and no caching of pages (they show a session's data).
async fn guarded(mut response: axum::response::Response) -> axum::response::Response {
    use axum::http::{header, HeaderValue};
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}
