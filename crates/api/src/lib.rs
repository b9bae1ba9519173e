//! The HTTP API of the hotpatch control plane: router, auth, problem+json errors, OpenAPI.
//!
//! `router(state)` is the whole service surface; the server binary only binds it.

pub mod audit;
pub mod auth;
mod console;
pub mod error;
pub mod etag;
pub mod extract;
pub mod forget;
mod keep_alive;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod routes;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};
use hotpatch_store::PgPool;
use opentelemetry::trace::TraceContextExt as _;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

/// Body limit of every route but the import.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Body limit of `POST /v1/machines/import`.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

pub use hotpatch_app::{clock, App, Settings, DEFAULT_STATUS_CACHE_BYTES};

/// Shared state of every handler: the application's services, and what only HTTP needs, behind
/// one `Arc`. axum clones the state for every extractor and layer of every request: as a plain
/// struct of a dozen `Arc`s that was a quarter of the CPU of a patch status served from memory
/// (perf: `App::clone` and its drop), all of it atomic counters bouncing between the cores.
/// It dereferences to [`Shared`], which dereferences to the [`App`], so handlers pass `&state`
/// to a service.
#[derive(Clone)]
pub struct AppState(std::sync::Arc<Shared>);

/// What [`AppState`] shares.
#[derive(Clone)]
pub struct Shared {
    /// The services.
    pub app: App,
    /// Recently verified tokens (see `auth`).
    pub credentials: std::sync::Arc<auth::CredentialCache>,
    /// When set, `/metrics` answers only requests bearing this token (scrapers get their own
    /// secret, not an API token).
    pub metrics_token: Option<std::sync::Arc<str>>,
    /// Request rates and open-request caps (see [`limits`]); none unless configured.
    pub limits: std::sync::Arc<limits::Limits>,
}

impl std::ops::Deref for AppState {
    type Target = Shared;

    fn deref(&self) -> &Shared {
        &self.0
    }
}

/// Changing a state (while it is set up, before it serves) copies what other clones share.
impl std::ops::DerefMut for AppState {
    fn deref_mut(&mut self) -> &mut Shared {
        std::sync::Arc::make_mut(&mut self.0)
    }
}

impl std::ops::Deref for Shared {
    type Target = App;

    fn deref(&self) -> &App {
        &self.app
    }
}

impl std::ops::DerefMut for Shared {
    fn deref_mut(&mut self) -> &mut App {
        &mut self.app
    }
}

impl AppState {
    /// State over a migrated pool, with the default settings.
    pub fn new(pool: PgPool) -> Self {
        AppState::with_settings(pool, Settings::default())
    }

    /// State over a migrated pool, with these settings.
    pub fn with_settings(pool: PgPool, settings: Settings) -> Self {
        AppState::of(App::new(pool, settings))
    }

    /// State over these services.
    pub fn of(app: App) -> Self {
        AppState(std::sync::Arc::new(Shared {
            app,
            credentials: Default::default(),
            metrics_token: None,
            limits: Default::default(),
        }))
    }

    /// Keeps at most about `bytes` of patch status answers in memory (0: none).
    pub fn with_status_cache(mut self, bytes: usize) -> Self {
        self.app = self.app.clone().with_status_cache(bytes);
        self
    }

    /// Limits requests as `settings` say (see [`limits`]).
    pub fn with_limits(mut self, settings: limits::LimitSettings) -> Self {
        self.limits = std::sync::Arc::new(limits::Limits::new(settings));
        self
    }

    /// [`AppState::with_limits`], with the client's address taken from `X-Forwarded-For` when the
    /// peer is one of `proxies`.
    pub fn with_limits_behind(
        mut self,
        settings: limits::LimitSettings,
        proxies: hotpatch_domain::webhook_target::AllowList,
    ) -> Self {
        self.limits = std::sync::Arc::new(limits::Limits::new(settings).trusting(proxies));
        self
    }

    /// `/metrics` only for requests bearing `token` (`None`: open, as before).
    pub fn with_metrics_token(mut self, token: Option<&str>) -> Self {
        self.metrics_token = token.map(std::sync::Arc::from);
        self
    }
}

/// Every route with its OpenAPI description.
pub(crate) fn api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(openapi::base())
        .merge(routes::health::router())
        .merge(routes::machines::router())
        .merge(routes::import::router())
        .merge(routes::tokens::router())
        .merge(routes::regions::router())
        .merge(routes::releases::router())
        .merge(routes::calendar::router())
        .merge(routes::patch_status::router())
        .merge(routes::fleet::router())
        .merge(routes::maintenance::router())
        .merge(routes::windows::router())
        .merge(routes::calendar_feeds::router())
        .merge(routes::agent::router())
        .merge(routes::operations::router())
        .merge(routes::events::router())
        .merge(routes::history::router())
        .merge(routes::install::router())
        .merge(routes::rollouts::router())
        .merge(routes::admin::router())
        .merge(routes::webhooks::router())
        .merge(routes::audit::router())
        .merge(routes::whatif::router())
}

/// A request's path as logged: a calendar feed's URL is its credential, so its secret is left out.
fn logged_path(path: &str) -> &str {
    if path.starts_with("/v1/feeds/") {
        "/v1/feeds/…"
    } else {
        path
    }
}

/// The whole API, with its cross-cutting layers.
pub fn router(state: AppState) -> Router {
    let (api, spec) = api_routes().split_for_parts();
    let spec = openapi::finish(spec);
    let request_id = HeaderName::from_static("x-request-id");
    let kept = state.kept.clone();
    api.merge(openapi::docs_router(spec))
        .merge(hotpatch_console::router::<AppState>())
        .route("/metrics", get(metrics::serve))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(kept, forget::forget_written))
        .route_layer(middleware::from_fn_with_state(state.clone(), metrics::record))
        .route_layer(middleware::from_fn_with_state(state.clone(), audit::record))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::internal("handler panicked").into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    let span = tracing::info_span!("request", method = %req.method(), path = %logged_path(req.uri().path()),
                        request_id = %id, trace_id = tracing::field::Empty);
                    // Where traces are exported (an OpenTelemetry layer is installed), the log
                    // lines of the request name its trace, to find it in the collector.
                    let trace = span.context().span().span_context().trace_id();
                    if trace != opentelemetry::trace::TraceId::INVALID {
                        span.record("trace_id", tracing::field::display(trace));
                    }
                    span
                })
                .on_request(())
                .on_response(|res: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "served");
                }),
        )
        .layer(middleware::from_fn_with_state(state.limits.clone(), limits::per_address))
        .layer(middleware::from_fn(keep_alive::close_if_body_unread))
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
