//! Running the program once: its input on stdin, its output read while it runs, killed at the
//! deadline (with every process it started, on Unix: it runs in its own process group).

use std::path::PathBuf;
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};

/// The most of stdout kept: an inventory of a few hundred updates is well under this.
const MAX_STDOUT: usize = 8 << 20;
/// The most of stderr kept (its end): enough for a PowerShell error record.
const MAX_STDERR: usize = 64 << 10;
/// How long output is still read after the program exited or was killed (a process it left
/// running may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// One run of the program.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// The program.
    pub program: PathBuf,
    /// Its arguments, the kind last.
    pub args: Vec<String>,
    /// Its environment, on top of the agent's.
    pub env: Vec<(String, String)>,
    /// Written to its stdin, which is then closed.
    pub stdin: Vec<u8>,
    /// Killed after this long.
    pub timeout: Duration,
}

/// How it ended.
#[derive(Debug)]
pub enum Exit {
    /// It exited (or was killed by a signal) by itself.
    Exited(ExitStatus),
    /// The deadline passed: it was killed.
    TimedOut,
}

/// What a run left.
#[derive(Debug)]
pub struct Ran {
    /// How it ended.
    pub exit: Exit,
    /// Its stdout (the first [`MAX_STDOUT`] bytes).
    pub stdout: Vec<u8>,
    /// The end of its stderr.
    pub stderr: Vec<u8>,
}

/// Runs `inv`; `Err` when the program cannot be started at all.
pub async fn run(inv: Invocation) -> Result<Ran, String> {
    let mut command = Command::new(&inv.program);
    command
        .args(&inv.args)
        .envs(inv.env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    #[cfg(unix)]
    command.process_group(0);
    let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", inv.program.display()))?;
    // Dropped on every way out (a lost lease drops this future too): kills what is left,
    // unless the program exited by itself (what it started on purpose, such as a delayed
    // restart, must live on).
    let mut group = Group::of(&child);
    if let Some(mut stdin) = child.stdin.take() {
        let input = inv.stdin;
        // A program that does not read its input is fine: a broken pipe is ignored.
        tokio::spawn(async move {
            let _ = stdin.write_all(&input).await;
        });
    }
    let stdout = capture(child.stdout.take(), MAX_STDOUT, false);
    let stderr = capture(child.stderr.take(), MAX_STDERR, true);
    let exit = tokio::select! {
        status = child.wait() => match status {
            Ok(status) => {
                group.disarm();
                Exit::Exited(status)
            }
            Err(e) => return Err(format!("cannot wait for {}: {e}", inv.program.display())),
        },
        _ = tokio::time::sleep(inv.timeout) => {
            group.kill();
            let _ = child.kill().await;
            Exit::TimedOut
        }
    };
    let (stdout, stderr) = (stdout.finish().await, stderr.finish().await);
    Ok(Ran { exit, stdout, stderr })
}

/// A reader of one pipe into a buffer, shared so that what was read survives a reader that is
/// abandoned.
struct Capture {
    buffer: Arc<Mutex<Vec<u8>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Reads `pipe` into a buffer of at most `max` bytes: its start, or (`tail`) its end.
fn capture(pipe: Option<impl AsyncRead + Unpin + Send + 'static>, max: usize, tail: bool) -> Capture {
    let buffer = Arc::new(Mutex::new(Vec::new()));
    let task = pipe.map(|mut pipe| {
        let buffer = buffer.clone();
        tokio::spawn(async move {
            let mut chunk = vec![0u8; 16 << 10];
            while let Ok(n) = pipe.read(&mut chunk).await {
                if n == 0 {
                    break;
                }
                let Ok(mut b) = buffer.lock() else { break };
                b.extend_from_slice(&chunk[..n]);
                if b.len() > max {
                    if tail {
                        let cut = b.len() - max;
                        b.drain(..cut);
                    } else {
                        b.truncate(max);
                    }
                }
            }
        })
    });
    Capture { buffer, task }
}

impl Capture {
    /// What was read, once the pipe closed or [`DRAIN`] passed.
    async fn finish(mut self) -> Vec<u8> {
        if let Some(task) = self.task.take() {
            let abort = task.abort_handle();
            if tokio::time::timeout(DRAIN, task).await.is_err() {
                abort.abort();
            }
        }
        self.buffer.lock().map(|mut b| std::mem::take(&mut *b)).unwrap_or_default()
    }
}

/// The program's process group (Unix): killed at the deadline or when the run is abandoned, so
/// a hung program's children go with it.
struct Group {
    #[cfg(unix)]
    leader: Option<rustix::process::Pid>,
}

impl Group {
    fn of(child: &Child) -> Group {
        #[cfg(unix)]
        {
            let leader =
                child.id().and_then(|id| i32::try_from(id).ok()).and_then(rustix::process::Pid::from_raw);
            Group { leader }
        }
        #[cfg(not(unix))]
        {
            let _ = child;
            Group {}
        }
    }

    /// The program exited by itself: nothing is killed any more.
    fn disarm(&mut self) {
        #[cfg(unix)]
        {
            self.leader = None;
        }
    }

    /// Kills every process of the group. On Windows only the program itself is killed (by
    /// `kill_on_drop`); what it started keeps running.
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(leader) = self.leader {
            let _ = rustix::process::kill_process_group(leader, rustix::process::Signal::KILL);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.kill();
    }
}
