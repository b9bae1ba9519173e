//! The HTTP API of the hotpatch control plane: router, auth, problem+json errors, OpenAPI.
//!
//! `router(state)` is the whole service surface; the server binary only binds it.

pub mod answers;
pub mod auth;
pub mod batch;
pub mod clock;
pub mod dispatch;
pub mod error;
pub mod extract;
pub mod metrics;
pub mod openapi;
pub mod pagination;
pub mod presence;
pub mod routes;
pub mod webhooks;

use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Request};
use axum::http::HeaderName;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{middleware, Router};
use hotpatch_store::PgPool;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;
use utoipa_axum::router::OpenApiRouter;

pub use error::ApiError;

/// Body limit of every route but the import.
pub const BODY_LIMIT: usize = 1024 * 1024;
/// Body limit of `POST /v1/machines/import`.
pub const IMPORT_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    /// The database.
    pub pool: PgPool,
    /// Request metrics of this process.
    pub metrics: metrics::Metrics,
    /// Server settings the rules read.
    pub settings: std::sync::Arc<Settings>,
    /// Wake-ups of long-polls (fed by `Wakeups::run` on a LISTEN connection).
    pub wakeups: std::sync::Arc<hotpatch_store::wakeup::Wakeups>,
    /// The service's clock: handlers read `now` here, never ad hoc.
    pub clock: clock::Clock,
    /// Recently verified tokens (see `auth`).
    pub credentials: std::sync::Arc<auth::CredentialCache>,
    /// Agents seen since the last batch write of `last_seen_at` (see `presence`).
    pub presence: std::sync::Arc<presence::Presence>,
    /// What every patch status reads and rarely changes (see `routes::patch_status`).
    pub status_cache: std::sync::Arc<routes::patch_status::StatusCache>,
    /// Patch status answers kept in memory (see `answers`).
    pub answers: std::sync::Arc<answers::Answers>,
    /// Agents' claims, heartbeats and results on their way to the database in batches (see `batch`).
    /// Clones of this state share them, and a batch runs with the state (pool, clock, settings) of
    /// the request that started its runner: a state with another pool or clock needs its own.
    pub agent_batches: std::sync::Arc<routes::agent::Batches>,
}

/// Default memory for kept patch status answers: about 100,000 machines' answers.
pub const DEFAULT_STATUS_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Server settings the rules read (from `hotpatchd`'s flags and environment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Which months are baseline months, per OS (default January, April, July, October).
    pub calendar: hotpatch_scheduler::cycle::CalendarRule,
    /// Local start of the default off-peak window of machines without a maintenance configuration.
    pub off_peak_start: chrono::NaiveTime,
    /// Length of the default off-peak window.
    pub off_peak_duration: chrono::TimeDelta,
    /// How long a claimed job's lease lasts without a heartbeat.
    pub lease_ttl: chrono::TimeDelta,
    /// How often every machine is assessed (jittered per machine by ±10%).
    pub assessment_interval: chrono::TimeDelta,
    /// Publishing a current release starts its rollout to `automatic_by_platform` machines.
    pub automatic_rollouts: bool,
    /// `PUT /v1/admin/clock` may move the service clock (tests and demos only).
    pub clock_control: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            calendar: Default::default(),
            off_peak_start: chrono::NaiveTime::MIN + chrono::TimeDelta::hours(1),
            off_peak_duration: chrono::TimeDelta::hours(4),
            lease_ttl: chrono::TimeDelta::seconds(120),
            assessment_interval: chrono::TimeDelta::hours(24),
            automatic_rollouts: true,
            clock_control: false,
        }
    }
}

impl AppState {
    /// State over a migrated pool, with the default settings.
    pub fn new(pool: PgPool) -> Self {
        AppState::with_settings(pool, Settings::default())
    }

    /// State over a migrated pool, with these settings.
    pub fn with_settings(pool: PgPool, settings: Settings) -> Self {
        let wakeups = hotpatch_store::wakeup::Wakeups::new();
        let answers = std::sync::Arc::new(answers::Answers::new(DEFAULT_STATUS_CACHE_BYTES));
        wakeups.set_status_sink(answers.clone());
        AppState {
            pool,
            metrics: metrics::Metrics::default(),
            settings: std::sync::Arc::new(settings),
            wakeups,
            clock: clock::Clock::system(),
            credentials: Default::default(),
            presence: Default::default(),
            status_cache: Default::default(),
            answers,
            agent_batches: Default::default(),
        }
    }

    /// Keeps at most about `bytes` of patch status answers in memory (0: none).
    pub fn with_status_cache(mut self, bytes: usize) -> Self {
        self.answers = std::sync::Arc::new(answers::Answers::new(bytes));
        self.wakeups.set_status_sink(self.answers.clone());
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
        .merge(routes::agent::router())
        .merge(routes::operations::router())
        .merge(routes::events::router())
        .merge(routes::history::router())
        .merge(routes::install::router())
        .merge(routes::rollouts::router())
        .merge(routes::admin::router())
        .merge(routes::webhooks::router())
}

/// The whole API, with its cross-cutting layers.
pub fn router(state: AppState) -> Router {
    let (api, spec) = api_routes().split_for_parts();
    let request_id = HeaderName::from_static("x-request-id");
    let metrics = state.metrics.clone();
    let answers = state.answers.clone();
    api.merge(openapi::docs_router(spec))
        .route("/metrics", get(metrics::serve))
        .fallback(|| async { ApiError::NotFound("no such endpoint".to_owned()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .route_layer(middleware::from_fn_with_state(answers, answers::forget_written))
        .route_layer(middleware::from_fn_with_state(metrics, metrics::record))
        .layer(CatchPanicLayer::custom(|_: Box<dyn std::any::Any + Send>| {
            ApiError::Internal("handler panicked".to_owned()).into_response()
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request| {
                    let id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("");
                    tracing::info_span!("request", method = %req.method(), path = %req.uri().path(), request_id = %id)
                })
                .on_request(())
                .on_response(|res: &axum::response::Response, latency: Duration, _: &tracing::Span| {
                    tracing::info!(status = res.status().as_u16(), latency_ms = latency.as_millis() as u64, "served");
                }),
        )
        .layer(PropagateRequestIdLayer::new(request_id.clone()))
        .layer(SetRequestIdLayer::new(request_id, MakeRequestUuid))
        .with_state(state)
}
