//! Agent liveness, batched: each request of an agent marks it seen in this replica's memory, and
//! the server writes the marks to `machine_agent.last_seen_at` together about once a second
//! ([`Presence::flush`]). A fleet of agents long-polling would otherwise cost a row write per
//! claim; `connected` (seen within two minutes) does not need finer resolution than the flush.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use chrono::{DateTime, Utc};
use hotpatch_store::{agents, PgPool, StoreError};
use uuid::Uuid;

/// Agents seen by this replica since its last flush.
#[derive(Debug, Default)]
pub struct Presence {
    pending: Mutex<HashMap<Uuid, DateTime<Utc>>>,
    /// The marks a flush is writing: still this replica's to tell until they are committed, so a
    /// read during the write does not see an agent as silent.
    writing: Mutex<HashMap<Uuid, DateTime<Utc>>>,
}

impl Presence {
    /// Marks the machine's agent as seen at `at` (kept until the next flush).
    pub fn saw(&self, machine_id: Uuid, at: DateTime<Utc>) {
        let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
        let mark = pending.entry(machine_id).or_insert(at);
        *mark = (*mark).max(at);
    }

    /// When this replica last saw the machine's agent, if that is not written yet: a read on this
    /// replica combines it with the stored value, so it never looks older than it is here.
    pub fn pending(&self, machine_id: Uuid) -> Option<DateTime<Utc>> {
        let pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner).get(&machine_id).copied();
        let writing = self.writing.lock().unwrap_or_else(PoisonError::into_inner).get(&machine_id).copied();
        pending.max(writing)
    }

    /// Writes the pending marks in one statement; returns how many were written. Marks the
    /// database could not take now (row locked, or the write failed) stay pending for the next
    /// flush, unless a newer one arrived meanwhile.
    pub async fn flush(&self, pool: &PgPool) -> Result<usize, StoreError> {
        let batch: Vec<(Uuid, DateTime<Utc>)> = {
            let mut pending = self.pending.lock().unwrap_or_else(PoisonError::into_inner);
            if pending.is_empty() {
                return Ok(0);
            }
            let batch: Vec<_> = pending.drain().collect();
            // Under the pending lock, so a read never finds a mark in neither map.
            *self.writing.lock().unwrap_or_else(PoisonError::into_inner) = batch.iter().copied().collect();
            batch
        };
        let outcome = agents::mark_seen(pool, &batch).await;
        // Marks not written go back to pending before `writing` lets go of them.
        let written = match outcome {
            Ok(skipped) => {
                let written = batch.len() - skipped.len();
                if !skipped.is_empty() {
                    let at: HashMap<Uuid, DateTime<Utc>> = batch.into_iter().collect();
                    for id in skipped {
                        if let Some(&t) = at.get(&id) {
                            self.saw(id, t);
                        }
                    }
                }
                Ok(written)
            }
            Err(e) => {
                batch.iter().for_each(|&(id, at)| self.saw(id, at));
                Err(e)
            }
        };
        self.writing.lock().unwrap_or_else(PoisonError::into_inner).clear();
        written
    }
}
