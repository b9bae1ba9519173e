//! Patch status answers kept in this replica's memory: portals poll the same machines all day,
//! and most polls find nothing changed. A kept answer is served (200 with its body, or 304 when
//! its ETag matches) without reading PostgreSQL, for as long as it is known to be current:
//!
//! - every write of a machine's status inputs, on any replica, reaches every replica as a
//!   notification (migration 0009) that drops the machine's answer; writes of what every answer
//!   depends on (catalog, maintenance configurations, a rollout's state) drop them all;
//! - a write through this replica's API drops what it touched before its response is sent
//!   (`hotpatch_api`'s `forget_written` layer), so a client that wrote and then reads never waits for a notification;
//! - while the LISTEN connection is down, nothing is served or kept, and everything kept is
//!   dropped whenever it goes down or comes back (notifications may have been missed);
//! - an answer is only served at instants from when it was computed until its `valid_until`
//!   (the first instant at which the clock alone changes it), and only while this replica's
//!   unwritten last-seen mark of the machine's agent is the one it was computed with.
//!
//! An answer computed from a read that may predate a change is never kept: each fill carries a
//! [`Ticket`] taken before the read, and a fill is refused when its machine (or everything)
//! changed after that ticket. The memory is bounded: a shard over its share of the budget is
//! emptied.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use crate::wakeups::StatusSink;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// Shards of the map: requests for different machines rarely wait on one lock.
const SHARDS: usize = 64;
/// What a kept entry costs beside its body and tag (map slot, `Arc`, times).
const ENTRY_OVERHEAD: usize = 160;

/// One machine's computed answer.
#[derive(Debug, Clone)]
pub struct Answer {
    /// Its `ETag` header value (quoted).
    pub etag: String,
    /// Its JSON body.
    pub body: Bytes,
    /// The instant it was computed at.
    pub computed_at: DateTime<Utc>,
    /// The first instant at which the clock alone changes it.
    pub valid_until: DateTime<Utc>,
    /// This replica's unwritten last-seen mark of the machine's agent, as read before computing.
    pub seen: Option<DateTime<Utc>>,
}

impl Answer {
    /// Whether it is the answer at `now` given this replica's current last-seen mark `seen`.
    pub fn current(&self, now: DateTime<Utc>, seen: Option<DateTime<Utc>>) -> bool {
        self.computed_at <= now && now < self.valid_until && self.seen == seen
    }

    fn size(&self) -> usize {
        self.body.len() + self.etag.len() + ENTRY_OVERHEAD
    }
}

enum Slot {
    Kept(Arc<Answer>),
    /// Dropped by the change numbered so: fills with an older ticket are refused.
    Changed(u64),
}

#[derive(Default)]
struct Shard {
    slots: HashMap<Uuid, Slot>,
    /// Number of the change that last emptied the shard.
    emptied_at: u64,
    bytes: usize,
}

impl Shard {
    fn slot_size(slot: &Slot) -> usize {
        match slot {
            Slot::Kept(a) => a.size(),
            Slot::Changed(_) => ENTRY_OVERHEAD / 2,
        }
    }

    fn put(&mut self, id: Uuid, slot: Slot) {
        self.bytes += Shard::slot_size(&slot);
        if let Some(old) = self.slots.insert(id, slot) {
            self.bytes -= Shard::slot_size(&old);
        }
    }

    fn empty(&mut self, change: u64) {
        self.slots.clear();
        self.bytes = 0;
        self.emptied_at = change;
    }
}

/// Proof of when a read began: see [`AnswerCache::fill`].
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

/// How the kept answers were used (for metrics and tests).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AnswerStats {
    /// Requests answered from memory.
    pub hits: u64,
    /// Requests for a current answer that had to compute it.
    pub misses: u64,
    /// Answers kept.
    pub fills: u64,
    /// Fills refused: their machine changed while they were computed.
    pub refused: u64,
    /// Bytes kept now.
    pub bytes: usize,
}

/// This replica's kept answers (see the module documentation).
pub struct AnswerCache {
    shards: Box<[Mutex<Shard>]>,
    /// Numbers the changes; a ticket is the number of the last change before a read.
    changes: AtomicU64,
    /// Bytes each shard may keep (0: nothing is kept).
    shard_budget: usize,
    hits: AtomicU64,
    misses: AtomicU64,
    fills: AtomicU64,
    refused: AtomicU64,
}

impl AnswerCache {
    /// Keeps at most about `budget` bytes of answers; 0 keeps none.
    pub fn new(budget: usize) -> AnswerCache {
        AnswerCache {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            changes: AtomicU64::new(0),
            shard_budget: budget / SHARDS,
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            fills: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    fn shard(&self, id: Uuid) -> MutexGuard<'_, Shard> {
        // v4 and v7 ids end in random bits.
        let i = (id.as_u128() as usize) % SHARDS;
        // A shard stays consistent even if a holder panicked: every operation is one call.
        self.shards[i].lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The machine's kept answer, if any. `listening`: whether this replica receives status
    /// notifications now (without them nothing kept can be trusted).
    pub fn get(&self, id: Uuid, listening: bool) -> Option<Arc<Answer>> {
        if !listening || self.shard_budget == 0 {
            return None;
        }
        match self.shard(id).slots.get(&id) {
            Some(Slot::Kept(a)) => Some(a.clone()),
            _ => None,
        }
    }

    /// Counts an answer served from memory.
    pub fn hit(&self) {
        self.hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts an answer at the current instant that was not kept, or no longer current.
    pub fn miss(&self) {
        self.misses.fetch_add(1, Ordering::Relaxed);
    }

    /// Take before reading what an answer is computed from; `None` inside while not listening.
    pub fn ticket(&self, listening: bool) -> Ticket {
        Ticket(listening.then(|| self.changes.load(Ordering::Acquire)))
    }

    /// Keeps the machine's answer computed from a read begun at `ticket`, unless the machine
    /// (or everything) changed since.
    pub fn fill(&self, ticket: Ticket, id: Uuid, answer: Answer) {
        let Ticket(Some(ticket)) = ticket else { return };
        if answer.size() > self.shard_budget {
            return;
        }
        let mut shard = self.shard(id);
        let changed = shard.emptied_at > ticket
            || matches!(shard.slots.get(&id), Some(Slot::Changed(change)) if *change > ticket);
        if changed {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if shard.bytes + answer.size() > self.shard_budget {
            // Emptied for room: numbered like a change, which only refuses the fills in flight.
            let change = self.changes.fetch_add(1, Ordering::AcqRel) + 1;
            shard.empty(change);
        }
        shard.put(id, Slot::Kept(Arc::new(answer)));
        self.fills.fetch_add(1, Ordering::Relaxed);
    }

    /// Drops the machine's answer.
    pub fn forget(&self, id: Uuid) {
        let change = self.changes.fetch_add(1, Ordering::AcqRel) + 1;
        self.shard(id).put(id, Slot::Changed(change));
    }

    /// Drops every answer.
    pub fn forget_all(&self) {
        let change = self.changes.fetch_add(1, Ordering::AcqRel) + 1;
        for shard in self.shards.iter() {
            shard.lock().unwrap_or_else(PoisonError::into_inner).empty(change);
        }
    }

    /// Counts so far, and the bytes kept now.
    pub fn stats(&self) -> AnswerStats {
        AnswerStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            fills: self.fills.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            bytes: self.shards.iter().map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).bytes).sum(),
        }
    }
}

/// Several caches fed by the same notifications: the patch status answers and the machine
/// reads (`App::machine_cache`) both depend on a machine's rows.
pub struct Caches(pub Vec<Arc<AnswerCache>>);

impl StatusSink for Caches {
    fn changed(&self, ids: &[Uuid]) {
        self.0.iter().for_each(|c| c.changed(ids));
    }

    fn changed_all(&self) {
        self.0.iter().for_each(|c| c.changed_all());
    }
}

impl StatusSink for AnswerCache {
    fn changed(&self, ids: &[Uuid]) {
        ids.iter().for_each(|&id| self.forget(id));
    }

    fn changed_all(&self) {
        self.forget_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(body: &str) -> Answer {
        let t = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Answer {
            etag: "\"x\"".to_owned(),
            body: Bytes::from(body.to_owned()),
            computed_at: t,
            valid_until: t + chrono::TimeDelta::hours(1),
            seen: None,
        }
    }

    #[test]
    fn a_fill_is_served_until_its_machine_changes() {
        let a = AnswerCache::new(1 << 20);
        let id = Uuid::now_v7();
        a.fill(a.ticket(true), id, answer("{}"));
        assert!(a.get(id, true).is_some());
        a.forget(id);
        assert!(a.get(id, true).is_none());
    }

    #[test]
    fn a_fill_read_before_a_change_of_its_machine_is_refused() {
        let a = AnswerCache::new(1 << 20);
        let (id, other) = (Uuid::now_v7(), Uuid::now_v7());
        let ticket = a.ticket(true);
        a.forget(id);
        a.fill(ticket, id, answer("{}"));
        assert!(a.get(id, true).is_none());
        // Another machine's change does not refuse it.
        let ticket = a.ticket(true);
        a.forget(other);
        a.fill(ticket, id, answer("{}"));
        assert!(a.get(id, true).is_some());
        assert_eq!(a.stats().refused, 1);
    }

    #[test]
    fn a_fill_read_before_everything_changed_is_refused() {
        let a = AnswerCache::new(1 << 20);
        let id = Uuid::now_v7();
        let ticket = a.ticket(true);
        a.forget_all();
        a.fill(ticket, id, answer("{}"));
        assert!(a.get(id, true).is_none());
    }

    #[test]
    fn nothing_is_kept_or_served_while_not_listening() {
        let a = AnswerCache::new(1 << 20);
        let id = Uuid::now_v7();
        a.fill(a.ticket(false), id, answer("{}"));
        assert!(a.get(id, true).is_none());
        a.fill(a.ticket(true), id, answer("{}"));
        assert!(a.get(id, false).is_none());
        assert!(a.get(id, true).is_some());
    }

    #[test]
    fn the_memory_stays_within_the_budget() {
        let budget = 640 * 1024;
        let a = AnswerCache::new(budget);
        let body = "x".repeat(900);
        for _ in 0..2_000 {
            a.fill(a.ticket(true), Uuid::new_v4(), answer(&body));
        }
        assert!(a.stats().bytes <= budget, "{} bytes kept", a.stats().bytes);
        assert!(a.stats().bytes > budget / 4);
    }

    #[test]
    fn a_budget_of_zero_keeps_nothing() {
        let a = AnswerCache::new(0);
        let id = Uuid::now_v7();
        a.fill(a.ticket(true), id, answer("{}"));
        assert!(a.get(id, true).is_none());
    }

    #[test]
    fn an_answer_is_current_from_its_instant_until_valid_until_with_the_same_mark() {
        let a = answer("{}");
        let t = a.computed_at;
        assert!(a.current(t, None));
        assert!(!a.current(t - chrono::TimeDelta::seconds(1), None), "the clock went back");
        assert!(!a.current(a.valid_until, None));
        assert!(!a.current(t, Some(t)), "this replica saw the agent since");
    }
}
