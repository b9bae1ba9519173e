//! Singletons across replicas: periodic work (lease reaper, periodic assessments, rollout
//! dispatcher, agent liveness, event retention) runs under a transaction-scoped advisory lock, so with N replicas one does each
//! tick and the others skip it.

use sqlx::PgConnection;

use crate::error::StoreError;

/// The advisory locks of the service (one 64-bit key each; the high bits spell "hotp").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i64)]
pub enum Singleton {
    /// The lease reaper: expired leases back to the queue, jobs whose backoff passed woken.
    LeaseReaper = 0x686f_7470_0000_0001,
    /// The rollout dispatcher: advancing rollouts and enqueueing their installs.
    RolloutDispatch = 0x686f_7470_0000_0002,
    /// Periodic assessments: every machine with an agent assessed on its cadence.
    PeriodicAssessments = 0x686f_7470_0000_0003,
    /// Agent liveness: agents silent too long reported lost; operations whose end the
    /// commit-time check missed reported finished.
    AgentLiveness = 0x686f_7470_0000_0004,
    /// Event retention: change-feed events past their retention deleted.
    EventRetention = 0x686f_7470_0000_0005,
}

/// How long a leader's transaction may sit idle before PostgreSQL ends its session, and with it
/// the lock. A replica frozen while it holds a lock (SIGSTOP, a VM paused, a partition: its
/// transaction is then idle, waiting for a statement that does not come) so loses leadership
/// after this long, and another replica takes the work over at its next pass. A leader pass
/// never waits this long between its statements.
pub const IDLE_TIMEOUT: &str = "10s";

/// Takes the lock for the rest of the caller's transaction; `false` when another replica holds it.
/// The transaction gets [`IDLE_TIMEOUT`], so a lock cannot outlive a frozen holder for long.
pub async fn try_lock(conn: &mut PgConnection, which: Singleton) -> Result<bool, StoreError> {
    let got = sqlx::query_scalar!(
        "select set_config('idle_in_transaction_session_timeout', $2, true) is not null
            and pg_try_advisory_xact_lock($1) as \"got!\"",
        which as i64,
        IDLE_TIMEOUT
    )
    .fetch_one(conn)
    .await?;
    Ok(got)
}
