//! The agent's durable memory of finished work, so a job whose work finished is never run again
//! because its report was late.
//!
//! - The **spool**: when a job's work finishes, before anything is sent, its reports (result,
//!   and the inventory to send first) are written as an [`Entry`]. The agent retries them until
//!   the server answers for good (accepted, or refused: 409 `lease_lost`, 404, …), and only then
//!   removes the entry; an agent that restarts delivers what it finds before claiming.
//! - The **finished-job record**: the last [`RECORD_LEN`] jobs whose entries were settled, with
//!   the result sent. A late report finds the lease re-queued (409) and the server offers the job
//!   again; the agent then reports the kept result under the new lease instead of running it.
//!
//! - The **job in hand**: written before a job's work starts and removed once its entry is
//!   spooled, so an agent that starts again knows which job it was doing when it stopped, and
//!   (by the machine's boot marker) whether the machine restarted meanwhile.
//!
//! All live in a state directory locked by one agent ([`Spool::open`]); the simulator's
//! thousands of agents may keep theirs in memory instead ([`Spool::in_memory`]). The file
//! format is in `entry.rs`, the directory in `files.rs`.

mod entry;
mod files;

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use hotpatch_domain::job::{JobKind, JobResult};
use tracing::{error, warn};
use uuid::Uuid;

pub use entry::{decode, encode, Entry, Finished, FormatError, InHand, Record, FORMAT};
use files::Files;

/// How many finished jobs the record remembers: far more than can be re-offered at once (a
/// machine has one job in hand at a time, re-offered within a lease or two).
pub const RECORD_LEN: usize = 256;

/// Why the state directory cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// Another agent holds the directory's lock.
    #[error(
        "the state directory {} is in use by another agent (its lock file is held); \
         give each agent its own --state-dir", .0.display()
    )]
    Locked(PathBuf),
    /// The directory or its lock file cannot be created or opened.
    #[error("{what} {}: {source}", .path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The failure.
        #[source]
        source: std::io::Error,
    },
}

/// Jobs with unsettled reports, and the record of settled ones.
#[derive(Debug, Default)]
pub struct Spool {
    files: Option<Files>,
    pending: BTreeMap<Uuid, Entry>,
    finished: VecDeque<Finished>,
    in_hand: Option<InHand>,
}

impl Spool {
    /// Opens (creating it if needed) and locks the state directory `dir`, and reads back what an
    /// earlier agent left there. Unreadable files are set aside with a warning.
    pub fn open(dir: &Path) -> Result<Spool, SpoolError> {
        let files = Files::open(dir)?;
        let pending = files.entries().into_iter().map(|e| (e.job_id, e)).collect();
        let mut finished: VecDeque<Finished> = files.record().jobs.into();
        while finished.len() > RECORD_LEN {
            finished.pop_front();
        }
        let in_hand = files.in_hand();
        Ok(Spool { files: Some(files), pending, finished, in_hand })
    }

    /// A spool that lives as long as the agent (the simulator's machines live in memory too).
    pub fn in_memory() -> Spool {
        Spool::default()
    }

    /// The state directory, when on disk.
    pub fn dir(&self) -> Option<&Path> {
        self.files.as_ref().map(Files::dir)
    }

    /// Keeps `entry` (new, or replacing its job's) durably before anything is sent for it.
    pub fn keep(&mut self, entry: Entry) {
        if let Some(files) = &self.files {
            if let Err(e) = files.write_entry(&entry) {
                // Nothing better to do than go on: the entry is still retried while this agent
                // runs, only a restart before delivery would forget it.
                error!(job_id = %entry.job_id, error = %e, "could not write the spool entry; it is kept in memory only");
            }
        }
        self.pending.insert(entry.job_id, entry);
    }

    /// Notes `in_hand` as the job being worked on (durably, before the work starts or its state
    /// changes).
    pub fn hold(&mut self, in_hand: InHand) {
        if let Some(files) = &self.files {
            if let Err(e) = files.write_in_hand(&in_hand) {
                error!(job_id = %in_hand.job.id, error = %e, "could not write the job in hand; a restart would not find it");
            }
        }
        self.in_hand = Some(in_hand);
    }

    /// The job in hand: the one being worked on, or at start, the one an earlier run was
    /// working on when it stopped.
    pub fn in_hand(&self) -> Option<&InHand> {
        self.in_hand.as_ref()
    }

    /// The job in hand is done with (its entry is spooled, or it was dropped).
    pub fn let_go(&mut self) {
        if self.in_hand.take().is_none() {
            return;
        }
        if let Some(files) = &self.files {
            if let Err(e) = files.remove_in_hand() {
                warn!(error = %e, "could not remove the job in hand; it is looked at again at start");
            }
        }
    }

    /// The unsettled entry of `job_id`.
    pub fn pending(&self, job_id: Uuid) -> Option<&Entry> {
        self.pending.get(&job_id)
    }

    /// The jobs with unsettled entries, the earliest known lease expiry first.
    pub fn pending_jobs(&self) -> Vec<Uuid> {
        let mut jobs: Vec<&Entry> = self.pending.values().collect();
        jobs.sort_by_key(|e| (e.lease.expires_at, e.job_id));
        jobs.into_iter().map(|e| e.job_id).collect()
    }

    /// Whether some entry is unsettled.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The server answered the entry of `job_id` for good: it moves to the finished-job record
    /// (written before the entry is removed, so a crash in between leaves both, never neither).
    pub fn settle(&mut self, job_id: Uuid) {
        let Some(entry) = self.pending.remove(&job_id) else { return };
        self.finished.retain(|f| f.job_id != job_id);
        self.finished.push_back(Finished { job_id, kind: entry.kind, result: entry.result });
        while self.finished.len() > RECORD_LEN {
            self.finished.pop_front();
        }
        let Some(files) = &self.files else { return };
        let record = Record { jobs: self.finished.iter().cloned().collect() };
        if let Err(e) = files.write_record(&record) {
            error!(%job_id, error = %e, "could not write the finished-job record; the spool entry stays");
            return;
        }
        if let Err(e) = files.remove_entry(job_id) {
            warn!(%job_id, error = %e, "could not remove a settled spool entry; it is sent again at start");
        }
    }

    /// The result kept for `job_id` when its work already finished here (unsettled or in the
    /// record): such a job must be reported, not run again.
    pub fn kept(&self, job_id: Uuid) -> Option<(JobKind, &JobResult)> {
        if let Some(e) = self.pending.get(&job_id) {
            return Some((e.kind, &e.result));
        }
        self.finished.iter().rev().find(|f| f.job_id == job_id).map(|f| (f.kind, &f.result))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{DateTime, TimeDelta};
    use hotpatch_domain::job::{Lease, Outcome};

    fn entry(n: u128) -> Entry {
        let lease = Lease {
            id: Uuid::from_u128(1000 + n),
            expires_at: DateTime::from_timestamp(1_750_000_000, 0).unwrap() + TimeDelta::seconds(n as i64),
        };
        let result = JobResult {
            lease_id: lease.id,
            outcome: Outcome::Succeeded,
            error: None,
            installed: Vec::new(),
            rebooted: Some(true),
            reboot_pending: Some(false),
        };
        Entry {
            job_id: Uuid::from_u128(n),
            kind: JobKind::Reboot,
            lease,
            result,
            inventory: None,
            inventory_decides: false,
            health: true,
        }
    }

    #[test]
    fn a_settled_job_leaves_the_spool_for_the_record_and_both_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        spool.keep(entry(2));
        spool.keep(entry(1));
        assert_eq!(spool.pending_jobs(), [Uuid::from_u128(1), Uuid::from_u128(2)]);
        spool.settle(Uuid::from_u128(1));
        drop(spool);
        let spool = Spool::open(dir.path()).unwrap();
        assert_eq!(spool.pending_jobs(), [Uuid::from_u128(2)]);
        let (kind, kept) = spool.kept(Uuid::from_u128(1)).unwrap();
        assert_eq!((kind, kept), (JobKind::Reboot, &entry(1).result));
        assert!(spool.kept(Uuid::from_u128(2)).is_some(), "an unsettled job is kept too");
        assert!(spool.kept(Uuid::from_u128(3)).is_none());
    }

    #[test]
    fn the_record_keeps_the_last_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path()).unwrap();
        for n in 0..(RECORD_LEN as u128 + 10) {
            spool.keep(entry(n));
            spool.settle(Uuid::from_u128(n));
        }
        drop(spool);
        let spool = Spool::open(dir.path()).unwrap();
        assert!(spool.kept(Uuid::from_u128(9)).is_none());
        assert!(spool.kept(Uuid::from_u128(10)).is_some());
        assert!(!spool.has_pending());
    }

    #[test]
    fn an_in_memory_spool_keeps_and_settles_without_a_directory() {
        let mut spool = Spool::in_memory();
        assert!(spool.dir().is_none());
        spool.keep(entry(1));
        spool.settle(Uuid::from_u128(1));
        assert!(!spool.has_pending());
        assert!(spool.kept(Uuid::from_u128(1)).is_some());
    }
}
