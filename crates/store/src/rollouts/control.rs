//! The operator's pause, resume and cancel: state transitions guarded in the update itself
//! (`update … where state in (…) returning`), so a transition that lost a race to another one
//! (or to the dispatcher halting the rollout) reports the state it found instead of applying.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Rollout, RolloutRow, RolloutState};
use crate::error::StoreError;

/// What a transition did.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition<T> {
    /// It applied.
    Done(T),
    /// There is no such rollout (404).
    NotFound,
    /// The rollout is in a state the transition does not leave from (409); this one.
    WrongState(RolloutState),
}

/// What canceling did.
#[derive(Debug, Clone, PartialEq)]
pub struct Canceled {
    /// The rollout, now canceled.
    pub rollout: Rollout,
    /// Its queued jobs that were canceled (leased ones run to their end).
    pub jobs_canceled: u64,
}

/// The unfinished (running, paused or halted) automatic rollouts of releases of `os` other than
/// `except`: a newer release's automatic rollout replaces them.
pub async fn automatic_in_flight(
    db: impl sqlx::PgExecutor<'_>,
    os: hotpatch_domain::OsVersion,
    except: Uuid,
) -> Result<Vec<Uuid>, StoreError> {
    let os: &'static str = os.into();
    let ids = sqlx::query_scalar!(
        "select r.id from rollout r join release rel on rel.id = r.release_id
         where r.automatic and r.state in ('running', 'paused', 'halted')
           and rel.os = $1 and r.release_id <> $2
         order by r.id",
        os,
        except,
    )
    .fetch_all(db)
    .await?;
    Ok(ids)
}

/// Moves the rollout from one of `from` to `to` (clearing the halted reason, setting the finish
/// time when `to` is final); the rollout after the change, or why not.
async fn transition(
    conn: &mut PgConnection,
    id: Uuid,
    from: &[RolloutState],
    to: RolloutState,
    now: DateTime<Utc>,
) -> Result<Transition<Rollout>, StoreError> {
    let from: Vec<&str> = from.iter().map(|s| s.as_str()).collect();
    let row = sqlx::query_as!(
        RolloutRow,
        "update rollout set state = $3, halted_reason = null, updated_at = $4::timestamptz,
                finished_at = case when $3 in ('canceled', 'succeeded') then $4::timestamptz end
         where id = $1 and state = any($2)
         returning id, release_id, selector, options, state, halted_reason, automatic, created_by, deadline,
                   expected_finish, machine_count, created_at, updated_at, finished_at",
        id,
        &from as &[&str],
        to.as_str(),
        now,
    )
    .fetch_optional(&mut *conn)
    .await?;
    if let Some(row) = row {
        return Ok(Transition::Done(row.try_into()?));
    }
    let state =
        sqlx::query_scalar!("select state from rollout where id = $1", id).fetch_optional(&mut *conn).await?;
    match state {
        None => Ok(Transition::NotFound),
        Some(s) => Ok(Transition::WrongState(s.parse()?)),
    }
}

/// Pauses a running rollout: no new install starts; jobs already queued or running go on, and
/// their results are recorded. Batches are not evaluated while paused.
pub async fn pause(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Transition<Rollout>, StoreError> {
    transition(conn, id, &[RolloutState::Running], RolloutState::Paused, now).await
}

/// Resumes a paused or halted rollout. From halted: the halted reason is cleared and the halted
/// batches reopen; their failed machines go back to pending for their next window (attempts
/// kept: the dispatcher moves them on as missed windows). Unhealthy machines count until their
/// agent reports healthy ([`super::record_health`] follows the reports while the batch is open),
/// so resuming without fixing them halts the batch again.
pub async fn resume(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Transition<Rollout>, StoreError> {
    let done =
        transition(conn, id, &[RolloutState::Paused, RolloutState::Halted], RolloutState::Running, now)
            .await?;
    if matches!(done, Transition::Done(_)) {
        sqlx::query!(
            "with reopened as (
                 update rollout_batch set state = 'open', updated_at = $2
                 where rollout_id = $1 and state = 'halted'
                 returning batch_index)
             update rollout_machine m set state = 'pending', updated_at = $2
             from reopened b
             where m.rollout_id = $1 and m.batch_index = b.batch_index and m.state = 'failed'",
            id,
            now,
        )
        .execute(&mut *conn)
        .await?;
    }
    Ok(done)
}

/// Cancels a running, paused or halted rollout: its queued jobs are canceled (a leased job runs
/// to its end, and its machine takes the result), its machines that had not started are
/// canceled, and its unfinished batches too.
pub async fn cancel(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<Transition<Canceled>, StoreError> {
    let from = [RolloutState::Running, RolloutState::Paused, RolloutState::Halted];
    let rollout = match transition(conn, id, &from, RolloutState::Canceled, now).await? {
        Transition::Done(r) => r,
        Transition::NotFound => return Ok(Transition::NotFound),
        Transition::WrongState(s) => return Ok(Transition::WrongState(s)),
    };
    // Jobs first: a machine is canceled when it had no job or its job was canceled; one whose
    // job an agent holds, or whose job ended since the last tick, stays queued until the
    // dispatcher records the result.
    let jobs_canceled = sqlx::query!(
        "update job set state = 'canceled', finished_at = $2, error = 'rollout canceled', updated_at = $2
         where rollout_id = $1 and state = 'queued'",
        id,
        now,
    )
    .execute(&mut *conn)
    .await?
    .rows_affected();
    sqlx::query!(
        "update rollout_machine m set state = 'canceled', updated_at = $2
         where m.rollout_id = $1
           and (m.state = 'pending'
                or (m.state = 'queued'
                    and exists (select 1 from job j where j.id = m.job_id and j.state = 'canceled')))",
        id,
        now,
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query!(
        "update rollout_batch set state = 'canceled', finished_at = $2, updated_at = $2
         where rollout_id = $1 and state in ('pending', 'open', 'halted')",
        id,
        now,
    )
    .execute(&mut *conn)
    .await?;
    Ok(Transition::Done(Canceled { rollout, jobs_canceled }))
}
