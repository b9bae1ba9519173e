//! The application layer of the hotpatch control plane: one service module per capability and
//! one background duty per loop. It calls `hotpatch_scheduler` for decisions and
//! `hotpatch_store` for rows, and owns the transactions; `hotpatch_api` only extracts a request,
//! calls one service function and maps the result.
//!
//! Every service function takes the [`App`] (the pool, the clock, the settings and this
//! replica's shared memory) and answers an [`AppError`].

pub mod admin;
pub mod audit;
pub mod catalog;
pub mod clock;
pub mod console;
pub mod duties;
pub mod error;
pub mod events;
pub mod fleet;
pub mod json;
pub mod operations;
pub mod queue;
pub mod rollouts;
pub mod schedules;
mod secrets;
pub mod selector;
pub mod settings;
pub mod status;
pub mod telemetry;
pub mod tokens;
pub mod wakeups;
pub mod webhooks;
pub mod whatif;

use std::sync::Arc;

use hotpatch_store::PgPool;

pub use clock::Clock;
pub use error::AppError;
pub use settings::Settings;

use wakeups::Wakeups;

/// Default memory for kept patch status answers: about 100,000 machines' answers.
pub const DEFAULT_STATUS_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// The kept patch status answers and machine reads, `bytes` each, fed by `wakeups`.
/// Returns them with the one sink both are dropped through (notifications, and writes through
/// this replica: `hotpatch_api`'s `forget_written` layer).
fn caches(wakeups: &Wakeups, bytes: usize) -> Kept {
    let status = Arc::new(status::cache::AnswerCache::new(bytes));
    let machines = Arc::new(status::cache::AnswerCache::new(bytes));
    let all = Arc::new(status::cache::Caches(vec![status.clone(), machines.clone()]));
    wakeups.set_status_sink(all.clone());
    (status, machines, all)
}

/// The patch status cache, the machine-read cache, and both as one sink.
type Kept = (Arc<status::cache::AnswerCache>, Arc<status::cache::AnswerCache>, Arc<status::cache::Caches>);

/// What every service reads: the database, the clock, the settings, and this replica's shared
/// memory (wake-ups of waiting claims, unwritten last-seen marks, kept patch status answers,
/// the agent protocol's batches). Clones share all of it.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub pool: PgPool,
    /// The service's clock: services read `now` here, never ad hoc.
    pub clock: Clock,
    /// Server settings the rules read.
    pub settings: Arc<Settings>,
    /// Wake-ups of long-polls (fed by `Wakeups::run` on a LISTEN connection).
    pub wakeups: Arc<Wakeups>,
    /// Agents seen since the last batch write of `last_seen_at` (see [`queue::presence`]).
    pub presence: Arc<queue::presence::Presence>,
    /// What every patch status reads and rarely changes (see [`status::catalog`]).
    pub status_catalog: Arc<status::catalog::StatusCatalog>,
    /// Patch status answers kept in memory (see [`status::cache`]).
    pub status_cache: Arc<status::cache::AnswerCache>,
    /// Machine reads (`GET /v1/machines/{id}`) kept in memory, dropped by the same
    /// notifications as the patch status answers (a machine row is one of their inputs).
    pub machine_cache: Arc<status::cache::AnswerCache>,
    /// Every kept answer of this replica, to drop what a write changed (the sink notifications
    /// go to).
    pub kept: Arc<status::cache::Caches>,
    /// Agents' claims, heartbeats and results on their way to the database in batches (see
    /// [`queue::batches`]). A batch runs with the `App` (pool, clock, settings) of the request
    /// that started its runner: an `App` with another pool or clock needs its own.
    pub agent_batches: Arc<queue::Batches>,
    /// This process's metrics (see [`telemetry`]).
    pub telemetry: Arc<telemetry::Telemetry>,
    /// Cancelled when this process begins to stop: waiting claims answer "no job" at once, new
    /// claims take no job, operation waits return, the change feed's streams end, readiness
    /// fails, so the drain takes as long as the slowest short request, not a long poll.
    pub shutdown: tokio_util::sync::CancellationToken,
}

impl App {
    /// Services over a migrated pool, with these settings and the system clock.
    pub fn new(pool: PgPool, settings: Settings) -> Self {
        let wakeups = Wakeups::new();
        let (status_cache, machine_cache, kept) = caches(&wakeups, DEFAULT_STATUS_CACHE_BYTES);
        App {
            pool,
            clock: Clock::system(),
            settings: Arc::new(settings),
            wakeups,
            presence: Default::default(),
            status_catalog: Default::default(),
            status_cache,
            machine_cache,
            kept,
            agent_batches: Default::default(),
            telemetry: Default::default(),
            shutdown: Default::default(),
        }
    }

    /// Keeps at most about `bytes` of patch status answers in memory, and as much of machine
    /// reads (0: none).
    pub fn with_status_cache(mut self, bytes: usize) -> Self {
        (self.status_cache, self.machine_cache, self.kept) = caches(&self.wakeups, bytes);
        self
    }

    /// Whether this process has begun to stop (see [`App::shutdown`]).
    pub fn is_stopping(&self) -> bool {
        self.shutdown.is_cancelled()
    }

    /// The same services on another clock (tests, and a replica whose clock an admin moves).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }
}
