//! The counters shared by a process's agents and the guards that keep them.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::client::ClientError;

/// Counters shared by every agent of a process (the simulator's progress line).
#[derive(Debug, Default)]
pub struct Stats {
    /// Agents started.
    pub machines: AtomicU64,
    /// Agents whose last request got a sensible answer (success or a 4xx other than 401).
    pub connected: AtomicU64,
    /// Results the server accepted.
    pub jobs_done: AtomicU64,
    /// Of those, failures.
    pub jobs_failed: AtomicU64,
    /// Jobs being worked on now.
    pub running: AtomicU64,
    /// Jobs dropped because their lease was lost.
    pub leases_lost: AtomicU64,
}

/// A snapshot of [`Stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Agents started.
    pub machines: u64,
    /// Agents connected.
    pub connected: u64,
    /// Results accepted.
    pub done: u64,
    /// Of those, failures.
    pub failed: u64,
    /// Jobs running.
    pub running: u64,
}

impl Stats {
    /// The counters now.
    pub fn progress(&self) -> Progress {
        Progress {
            machines: self.machines.load(Ordering::Relaxed),
            connected: self.connected.load(Ordering::Relaxed),
            done: self.jobs_done.load(Ordering::Relaxed),
            failed: self.jobs_failed.load(Ordering::Relaxed),
            running: self.running.load(Ordering::Relaxed),
        }
    }
}

impl fmt::Display for Progress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "machines {} · connected {} · jobs done {} ({} failed) · running {}",
            self.machines, self.connected, self.done, self.failed, self.running
        )
    }
}

/// One agent's part of `connected`.
#[derive(Debug)]
pub(super) struct Connection {
    pub(super) up: AtomicBool,
    pub(super) stats: Arc<Stats>,
}

impl Connection {
    pub(super) fn set(&self, up: bool) {
        if self.up.swap(up, Ordering::Relaxed) != up {
            if up {
                self.stats.connected.fetch_add(1, Ordering::Relaxed);
            } else {
                self.stats.connected.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn note<T>(&self, r: &Result<T, ClientError>) {
        self.set(match r {
            Ok(_) => true,
            Err(e) => !e.is_retryable() && !matches!(e, ClientError::Unauthorized(_)),
        });
    }
}

/// Decrements `running` when a job is over, however it ends.
pub(super) struct Running(pub(super) Arc<Stats>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_reads_as_the_simulator_prints_it() {
        let p = Progress { machines: 10, connected: 9, done: 7, failed: 2, running: 1 };
        assert_eq!(p.to_string(), "machines 10 · connected 9 · jobs done 7 (2 failed) · running 1");
    }
}
