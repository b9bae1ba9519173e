//! The command executor: the agent runs an operator's program for each job and speaks JSON with
//! it. The contract (pinned in the crate's README, "The command executor's contract"):
//!
//! - the agent starts `<program> [<args>…] <kind>`: a job kind (`assess`, `install`,
//!   `rollback`, `reboot`) with the claimed job as JSON on stdin, or one of the agent's own
//!   reads (`inventory`, `health`) with `{}`; the environment adds `HOTPATCH_KIND`,
//!   `HOTPATCH_JOB_ID` (jobs), `HOTPATCH_DEADLINE` (RFC 3339) and `HOTPATCH_STATE_DIR`;
//! - the program writes one JSON object on stdout (the whole output, or its last line):
//!   [`answer::JobAnswer`] for jobs, the `Inventory` or `Health` body for the reads, and exits 0;
//! - anything else is a failed job with the reason and the ends of stdout and stderr: a non-zero
//!   exit or a signal, no JSON or a wrong one, the deadline passing (the install payload's
//!   `maximum_duration`, else [`CommandConfig::job_timeout`]), at which the program is killed
//!   with every process it started (its process group, on Unix);
//! - a program that needs the machine to restart schedules the restart and answers
//!   `"rebooted": true`: the agent keeps the job on disk and reports it once the boot marker
//!   says the machine restarted ([`crate::agent`]).

pub mod answer;
mod process;

use std::path::PathBuf;
use std::time::Duration;

use chrono::Utc;
use hotpatch_domain::job::{ClaimedJob, Health, HealthCheck, HealthStatus, Inventory, JobKind};
use hotpatch_domain::payload::InstallPayload;
use tracing::warn;

use crate::boot::BootMarker;
use crate::executor::{Executor, ExecutorError, JobOutcome};
use process::{Exit, Invocation, Ran};

/// The longest end of stdout or stderr kept in a failed job's error.
const TAIL_CHARS: usize = 2_000;

/// How the command executor runs its program.
#[derive(Debug, Clone)]
pub struct CommandConfig {
    /// The program (a path, or a name looked up in `PATH`).
    pub program: PathBuf,
    /// Arguments before the kind (e.g. `-File hotpatch-executor.ps1` for `powershell.exe`).
    pub args: Vec<String>,
    /// Environment variables for the program, on top of the agent's (a proxy, a log level).
    pub env: Vec<(String, String)>,
    /// A job's time limit when its payload sets none.
    pub job_timeout: Duration,
    /// The time limit of the `inventory` and `health` reads.
    pub read_timeout: Duration,
    /// Given to the program as `HOTPATCH_STATE_DIR`, for files of its own.
    pub state_dir: Option<PathBuf>,
    /// Where the machine's boot marker comes from.
    pub boot: BootMarker,
}

impl CommandConfig {
    /// A program run with the default limits (2 h per job, 10 min per read) and the OS's boot
    /// marker.
    pub fn new(program: impl Into<PathBuf>) -> CommandConfig {
        CommandConfig {
            program: program.into(),
            args: Vec::new(),
            env: Vec::new(),
            job_timeout: Duration::from_secs(2 * 3600),
            read_timeout: Duration::from_secs(600),
            state_dir: None,
            boot: BootMarker::Os,
        }
    }
}

/// Runs an operator's program for each job.
#[derive(Debug, Clone)]
pub struct CommandExecutor {
    config: CommandConfig,
}

impl CommandExecutor {
    /// An executor running `config.program`.
    pub fn new(config: CommandConfig) -> CommandExecutor {
        CommandExecutor { config }
    }

    /// The job's time limit: the install payload's `maximum_duration`, else the default.
    pub fn time_limit(&self, job: &ClaimedJob) -> Duration {
        let limit = match job.kind {
            JobKind::Install => serde_json::from_value::<InstallPayload>(job.payload.clone())
                .ok()
                .and_then(|p| p.maximum_duration)
                .map(|d| d.as_std()),
            _ => None,
        };
        limit.unwrap_or(self.config.job_timeout)
    }

    /// Runs the program for `kind` with `input` on stdin.
    async fn invoke(
        &self,
        kind: &str,
        input: Vec<u8>,
        timeout: Duration,
        job: Option<&ClaimedJob>,
    ) -> Result<Ran, String> {
        let deadline = Utc::now() + timeout;
        let mut env = self.config.env.clone();
        env.extend([
            ("HOTPATCH_KIND".to_owned(), kind.to_owned()),
            ("HOTPATCH_DEADLINE".to_owned(), deadline.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ]);
        if let Some(job) = job {
            env.push(("HOTPATCH_JOB_ID".to_owned(), job.id.to_string()));
        }
        if let Some(dir) = &self.config.state_dir {
            env.push(("HOTPATCH_STATE_DIR".to_owned(), dir.display().to_string()));
        }
        let mut args = self.config.args.clone();
        args.push(kind.to_owned());
        process::run(Invocation { program: self.config.program.clone(), args, env, stdin: input, timeout })
            .await
    }

    /// Runs an `inventory` or `health` read and parses its answer.
    async fn read<T>(&self, kind: &str, parse: fn(&[u8]) -> Result<T, String>) -> Result<T, String> {
        let ran = self.invoke(kind, b"{}".to_vec(), self.config.read_timeout, None).await?;
        answered(kind, &ran, self.config.read_timeout)
            .and_then(|()| parse(&ran.stdout).map_err(|why| failure(&format!("{kind}: {why}"), &ran)))
    }
}

/// `Ok` when the run ended with exit status 0; otherwise why not, with the output's ends.
fn answered(kind: &str, ran: &Ran, timeout: Duration) -> Result<(), String> {
    match &ran.exit {
        Exit::Exited(status) if status.success() => Ok(()),
        Exit::Exited(status) => Err(failure(&format!("{kind}: the program ended with {status}"), ran)),
        Exit::TimedOut => Err(failure(
            &format!("{kind}: the program did not finish within {}s and was killed", timeout.as_secs()),
            ran,
        )),
    }
}

/// `what`, followed by the ends of stderr and stdout, for the operator.
fn failure(what: &str, ran: &Ran) -> String {
    let mut text = what.to_owned();
    for (name, bytes) in [("stderr", &ran.stderr), ("stdout", &ran.stdout)] {
        let output = String::from_utf8_lossy(bytes);
        let tail = tail(&output);
        if !tail.is_empty() {
            text.push_str(&format!("\n--- {name} (end) ---\n{tail}"));
        }
    }
    warn!(error = %text, "the executor program failed");
    text
}

/// The last [`TAIL_CHARS`] characters of `text`, trimmed.
fn tail(text: &str) -> &str {
    let text = text.trim();
    match text.char_indices().rev().nth(TAIL_CHARS) {
        Some((cut, c)) => &text[cut + c.len_utf8()..],
        None => text,
    }
}

impl Executor for CommandExecutor {
    async fn inventory(&mut self) -> Result<Inventory, ExecutorError> {
        self.read("inventory", answer::inventory).await.map_err(ExecutorError)
    }

    async fn run(&mut self, job: &ClaimedJob) -> JobOutcome {
        let kind = <&str>::from(job.kind);
        let timeout = self.time_limit(job);
        // Serializing a claimed job (plain data, string keys) cannot fail.
        let input = serde_json::to_vec(job).unwrap_or_default();
        let ran = match self.invoke(kind, input, timeout, Some(job)).await {
            Ok(ran) => ran,
            Err(e) => return JobOutcome::failed(e, false),
        };
        let parsed = answered(kind, &ran, timeout)
            .and_then(|()| answer::job(&ran.stdout).map_err(|why| failure(&format!("{kind}: {why}"), &ran)));
        match parsed {
            Ok(answer) => answer.into_outcome(),
            Err(error) => JobOutcome::failed(error, false),
        }
    }

    async fn health(&mut self) -> Health {
        match self.read("health", answer::health).await {
            Ok(health) => health,
            // A health check that cannot run is not a healthy machine.
            Err(e) => Health {
                status: HealthStatus::Unhealthy,
                checks: vec![HealthCheck {
                    name: "health program".to_owned(),
                    status: HealthStatus::Unhealthy,
                    detail: Some(e),
                }],
            },
        }
    }

    fn boot_marker(&mut self) -> Option<String> {
        self.config.boot.read()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_keeps_the_end_on_a_character_boundary() {
        let long = format!("{}é{}", "a".repeat(10), "b".repeat(TAIL_CHARS - 1));
        let t = tail(&long);
        assert_eq!(t.chars().count(), TAIL_CHARS);
        assert!(t.starts_with('é'));
        assert_eq!(tail("  short \n"), "short");
    }
}
