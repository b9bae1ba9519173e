//! The operator's pause, resume and cancel. Each is one guarded transition in the store (it
//! reports the state it found when it does not apply), answered with the rollout's progress
//! read in the same transaction.

use hotpatch_store::rollouts::{self, Transition};
use uuid::Uuid;

use super::view::{not_found, RolloutDetail};
use crate::error::AppError;
use crate::App;

/// Which operator transition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Pause,
    Resume,
    Cancel,
}

impl Action {
    /// The past participle, for the answer and the log.
    fn verb(self) -> &'static str {
        match self {
            Action::Pause => "paused",
            Action::Resume => "resumed",
            Action::Cancel => "canceled",
        }
    }
}

/// A transition without its payload.
fn outcome<T>(t: Transition<T>) -> Transition<()> {
    match t {
        Transition::Done(_) => Transition::Done(()),
        Transition::NotFound => Transition::NotFound,
        Transition::WrongState(s) => Transition::WrongState(s),
    }
}

/// Applies `action` to the rollout and answers its progress: not found for an unknown rollout,
/// a conflict naming the state from which it does not apply.
async fn transition(app: &App, id: Uuid, action: Action) -> Result<RolloutDetail, AppError> {
    let now = app.clock.now();
    let mut tx = app.pool.begin().await?;
    let done = match action {
        Action::Pause => outcome(rollouts::pause(&mut tx, id, now).await?),
        Action::Resume => outcome(rollouts::resume(&mut tx, id, now).await?),
        Action::Cancel => outcome(rollouts::cancel(&mut tx, id, now).await?),
    };
    let verb = action.verb();
    match done {
        Transition::Done(()) => {}
        Transition::NotFound => return Err(not_found(id)),
        Transition::WrongState(s) => {
            return Err(AppError::Conflict(format!("rollout {id} is {s}; it cannot be {verb} from there")))
        }
    }
    let view = rollouts::get(&mut tx, id, now).await?.ok_or_else(|| not_found(id))?;
    tx.commit().await?;
    tracing::info!(rollout_id = %id, action = verb, "rollout {verb}");
    Ok(RolloutDetail::new(&view, now))
}

/// Pauses a running rollout: no new install starts (queued jobs run).
pub async fn pause(app: &App, id: Uuid) -> Result<RolloutDetail, AppError> {
    transition(app, id, Action::Pause).await
}

/// Resumes a paused or halted rollout.
pub async fn resume(app: &App, id: Uuid) -> Result<RolloutDetail, AppError> {
    transition(app, id, Action::Resume).await
}

/// Cancels an unfinished rollout: its queued jobs are canceled (running ones finish).
pub async fn cancel(app: &App, id: Uuid) -> Result<RolloutDetail, AppError> {
    transition(app, id, Action::Cancel).await
}
