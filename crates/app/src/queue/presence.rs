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
        self.pending.lock().unwrap_or_else(PoisonError::into_inner).get(&machine_id).copied()
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
            pending.drain().collect()
        };
        let skipped = match agents::mark_seen(pool, &batch).await {
            Ok(skipped) => skipped,
            Err(e) => {
                batch.iter().for_each(|&(id, at)| self.saw(id, at));
                return Err(e);
            }
        };
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
}
