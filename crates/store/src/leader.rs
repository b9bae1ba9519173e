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

/// Takes the lock for the rest of the caller's transaction; `false` when another replica holds it.
pub async fn try_lock(conn: &mut PgConnection, which: Singleton) -> Result<bool, StoreError> {
    let got = sqlx::query_scalar!("select pg_try_advisory_xact_lock($1) as \"got!\"", which as i64)
        .fetch_one(conn)
        .await?;
    Ok(got)
}
