//! The execution log (`--execution-log <file>`): one line per job whose work finished on the
//! machine, written once its reports are in the spool, i.e. at the point from which the agent
//! promises never to run the job again ([`crate::spool`]). A fault suite reads it to prove that no
//! job ran twice, whatever happened to the server, the database or the agent in between.
//!
//! Line format: `<job id> <kind> <outcome> <attempt>`. Each line is one `write` on a file opened
//! in append mode, so several agents (tasks or processes) can share the file without tearing
//! lines, and a killed process loses none it wrote (no fsync: the page cache outlives it).

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

use hotpatch_domain::job::{ClaimedJob, Outcome};
use tracing::warn;

/// A shared handle on the execution log; cloning shares the file.
#[derive(Debug, Clone)]
pub struct ExecutionLog {
    file: Arc<Mutex<File>>,
}

impl ExecutionLog {
    /// Opens `path` for appending, creating it when missing (an earlier run's lines stay).
    pub fn open(path: &Path) -> std::io::Result<ExecutionLog> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(ExecutionLog { file: Arc::new(Mutex::new(file)) })
    }

    /// Appends the line of `job`, whose work finished with `outcome`. A failed write is a
    /// warning: the log is evidence for tests, never a reason to stop the agent.
    pub fn record(&self, job: &ClaimedJob, outcome: Outcome) {
        let outcome = match outcome {
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
        };
        let line = format!("{} {} {outcome} {}\n", job.id, <&str>::from(job.kind), job.attempt);
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        if let Err(e) = file.write_all(line.as_bytes()) {
            warn!(error = %e, "could not append to the execution log");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use chrono::Utc;
    use hotpatch_domain::job::{JobKind, Lease};
    use uuid::Uuid;

    use super::*;

    fn job(kind: JobKind, attempt: i32) -> ClaimedJob {
        ClaimedJob {
            id: Uuid::new_v4(),
            kind,
            machine_id: Uuid::new_v4(),
            payload: serde_json::Value::Null,
            attempt,
            lease: Lease { id: Uuid::new_v4(), expires_at: Utc::now() },
        }
    }

    #[test]
    fn one_line_per_recorded_job_appended_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("executions.log");
        let (install, assess) = (job(JobKind::Install, 1), job(JobKind::Assess, 2));
        let log = ExecutionLog::open(&path).unwrap();
        log.record(&install, Outcome::Succeeded);
        log.clone().record(&assess, Outcome::Failed);
        // A restarted agent appends: the first run's lines stay.
        ExecutionLog::open(&path).unwrap().record(&install, Outcome::Succeeded);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                format!("{} install succeeded 1", install.id),
                format!("{} assess failed 2", assess.id),
                format!("{} install succeeded 1", install.id),
            ]
        );
    }
}
