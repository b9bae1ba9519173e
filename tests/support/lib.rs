//! Support for the end-to-end tests: build and start the real `hotpatchd` and `hotpatch-agent`
//! binaries, read their logs, signal them, and talk HTTP to the server.
//!
//! The binaries are `target/<profile>/{hotpatchd,hotpatch-agent}` next to the test executable,
//! built together once per test process with one `cargo build` (a no-op when fresh), so
//! `cargo test --workspace` works on a clean clone. `HOTPATCHD_BIN=<path>` and
//! `HOTPATCH_AGENT_BIN=<path>` use binaries built elsewhere instead.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use rand::distributions::{Alphanumeric, DistString};
use rustix::process::{kill_process, Pid, Signal};

/// How long a start may take (a first start runs `initdb`).
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How long a stop may take.
const STOP_TIMEOUT: Duration = Duration::from_secs(60);

/// The `hotpatchd` binary, built on first use.
pub fn hotpatchd_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("HOTPATCHD_BIN") {
        Some(path) => PathBuf::from(path),
        None => built_bins().join("hotpatchd"),
    })
}

/// The `hotpatch-agent` binary, built on first use (`HOTPATCH_AGENT_BIN=<path>` overrides).
pub fn agent_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("HOTPATCH_AGENT_BIN") {
        Some(path) => PathBuf::from(path),
        None => built_bins().join("hotpatch-agent"),
    })
}

/// Builds both binaries once, in one cargo invocation (so their dependencies are compiled once,
/// with one feature set), and returns the directory they are in.
fn built_bins() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        build_bins(&[
            ("hotpatch-server", "hotpatchd"),
            ("hotpatch-agent", "hotpatch-agent"),
            ("hotpatch-cli", "hotpatchctl"),
        ])
    })
}

/// Runs `cargo build` for binaries of the workspace into the target directory this test
/// executable lives in, with the same profile, and returns the directory they are in.
fn build_bins(bins: &[(&str, &str)]) -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    // <target>/[<triple>/]<profile>/deps/<test executable>
    let profile_dir = exe.parent().and_then(Path::parent).expect("the test executable is in <profile>/deps");
    let profile = profile_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let (target_dir, triple) = match profile_dir.parent() {
        Some(parent) if parent.join("CACHEDIR.TAG").exists() => (parent.to_path_buf(), None),
        Some(parent) => {
            let triple = parent.file_name().map(|n| n.to_string_lossy().into_owned());
            (parent.parent().unwrap_or(parent).to_path_buf(), triple)
        }
        None => panic!("cannot find the target directory of {}", exe.display()),
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace root");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(cargo);
    cmd.arg("build").arg("--quiet");
    for (package, bin) in bins {
        cmd.args(["-p", package, "--bin", bin]);
    }
    cmd.arg("--manifest-path").arg(workspace.join("Cargo.toml")).arg("--target-dir").arg(&target_dir);
    if let Some(triple) = &triple {
        cmd.args(["--target", triple]);
    }
    match profile.as_str() {
        "debug" => {}
        "release" => {
            cmd.arg("--release");
        }
        other => {
            cmd.args(["--profile", other]);
        }
    }
    // Cargo sets these for the test process; build scripts that watch them (ring watches
    // CARGO_MANIFEST_DIR) would see a change and rebuild half the tree for nothing.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        let set_by_cargo_for_tests = key == "OUT_DIR"
            || key.starts_with("CARGO_PKG_")
            || [
                "CARGO_MANIFEST_DIR",
                "CARGO_MANIFEST_PATH",
                "CARGO_CRATE_NAME",
                "CARGO_BIN_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
            ]
            .contains(&key.as_ref());
        if set_by_cargo_for_tests {
            cmd.env_remove(key.as_ref());
        }
    }
    let output = cmd.stdin(Stdio::null()).output().expect("running cargo build");
    assert!(output.status.success(), "cargo build failed:\n{}", String::from_utf8_lossy(&output.stderr));
    for (_, bin) in bins {
        let path = profile_dir.join(bin);
        assert!(path.is_file(), "cargo built {bin} but {} is missing", path.display());
    }
    profile_dir.to_path_buf()
}

/// A random secret usable as `HOTPATCH_ADMIN_TOKEN`.
pub fn random_token() -> String {
    format!("e2e_{}", Alphanumeric.sample_string(&mut rand::thread_rng(), 40))
}

/// A `hotpatchd` of its own: on a fresh database, with a random admin token. The directory and
/// the database live as long as this does.
pub struct Started {
    /// The running server.
    pub server: Server,
    /// Its admin token.
    pub token: String,
    /// Its data directory.
    pub dir: tempfile::TempDir,
    /// Its database (dropped with it).
    pub db: hotpatch_store::testing::TestDb,
}

/// Starts a `hotpatchd` on a fresh database with a random admin token and `env` added.
pub async fn start_fresh(env: &[(&str, &str)]) -> Started {
    let dir = tempfile::tempdir().expect("a temporary data directory");
    let db = hotpatch_store::testing::fresh_db().await;
    let token = random_token();
    let launch = env
        .iter()
        .fold(Launch::new(dir.path()).database_url(&db.url).admin_token(&token), |l, (k, v)| l.env(k, v));
    let server = launch.start().await;
    Started { server, token, dir, db }
}

/// How to start one `hotpatchd`: a data directory, `HOTPATCH_LISTEN=127.0.0.1:0`, no
/// `DATABASE_URL` and no admin token unless given.
#[derive(Debug, Clone)]
pub struct Launch {
    data_dir: PathBuf,
    env: Vec<(String, Option<String>)>,
    args: Vec<String>,
}

impl Launch {
    /// A launch on `data_dir`, with the embedded PostgreSQL.
    pub fn new(data_dir: &Path) -> Launch {
        let mut launch = Launch { data_dir: data_dir.to_owned(), env: Vec::new(), args: Vec::new() };
        launch = launch
            .env("HOTPATCH_LISTEN", "127.0.0.1:0")
            .env("HOTPATCH_LOG", "info")
            .env("HOTPATCH_LOG_FORMAT", "pretty")
            .env("RUST_BACKTRACE", "1");
        for var in [
            "DATABASE_URL",
            "HOTPATCH_ADMIN_TOKEN",
            "HOTPATCH_PG_BIN_DIR",
            "HOTPATCH_CONFIG",
            "OTEL_EXPORTER_OTLP_ENDPOINT",
        ] {
            launch.env.push((var.to_owned(), None));
        }
        launch
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Launch {
        self.env.push((key.to_owned(), Some(value.to_owned())));
        self
    }

    /// Adds command-line arguments (e.g. `dev`, `--config <file>`).
    pub fn args(mut self, args: &[&str]) -> Launch {
        self.args.extend(args.iter().map(|a| (*a).to_owned()));
        self
    }

    /// `HOTPATCH_ADMIN_TOKEN`.
    pub fn admin_token(self, token: &str) -> Launch {
        self.env("HOTPATCH_ADMIN_TOKEN", token)
    }

    /// `DATABASE_URL`.
    pub fn database_url(self, url: &str) -> Launch {
        self.env("DATABASE_URL", url)
    }

    fn spawn(&self) -> (Child, Arc<Mutex<String>>) {
        let mut cmd = Command::new(hotpatchd_bin());
        cmd.args(&self.args)
            .env("HOTPATCH_DATA_DIR", &self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (key, value) in &self.env {
            match value {
                Some(v) => cmd.env(key, v),
                None => cmd.env_remove(key),
            };
        }
        let mut child = cmd.spawn().expect("starting hotpatchd");
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, output.clone());
        }
        (child, output)
    }

    /// Starts `hotpatchd` and waits for its `listening on <addr>` line. Panics, with what it
    /// printed, when it exits or does not get there in time.
    pub async fn start(&self) -> Server {
        let (mut child, output) = self.spawn();
        let started = Instant::now();
        loop {
            let addr = listening_addr(&lock(&output));
            if let Some(addr) = addr {
                return Server::new(child, addr, output);
            }
            if let Ok(Some(status)) = child.try_wait() {
                // Let the readers catch the last lines.
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("hotpatchd exited ({status}) before listening:\n{}", lock(&output));
            }
            if started.elapsed() > START_TIMEOUT {
                let _ = child.kill();
                panic!("hotpatchd did not listen within {START_TIMEOUT:?}:\n{}", lock(&output));
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Runs `hotpatchd` expecting it to stop by itself (a failed start); returns its exit status
    /// and everything it printed. Panics if it is still running after the start timeout.
    pub async fn run_to_exit(&self) -> (ExitStatus, String) {
        let (mut child, output) = self.spawn();
        let status = wait_for_exit(&mut child, START_TIMEOUT).await;
        let Some(status) = status else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hotpatchd kept running, expected it to fail:\n{}", lock(&output));
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        let text = lock(&output).clone();
        (status, text)
    }
}

/// Copies what a pipe delivers into `output`, on a thread of its own.
fn collect(pipe: impl Read + Send + 'static, output: Arc<Mutex<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            let mut out = lock(&output);
            out.push_str(&line);
            out.push('\n');
        }
    });
}

fn lock(output: &Mutex<String>) -> std::sync::MutexGuard<'_, String> {
    output.lock().unwrap_or_else(|e| e.into_inner())
}

/// The address in the first `listening on <addr>` line (pretty or JSON logs).
pub fn listening_addr(log: &str) -> Option<SocketAddr> {
    let rest = &log[log.find("listening on ")? + "listening on ".len()..];
    let end = rest.find(|c: char| c.is_whitespace() || c == '"').unwrap_or(rest.len());
    rest[..end].parse().ok()
}

async fn wait_for_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < timeout {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    None
}

/// A running `hotpatchd`. Dropping it stops the process (SIGTERM, then SIGKILL).
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    output: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Server {
    fn new(child: Child, addr: SocketAddr, output: Arc<Mutex<String>>) -> Server {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        Server { child: Some(child), addr, output, http }
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// An HTTP client for it.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Sends a signal.
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.pid()).ok().and_then(Pid::from_raw).expect("a valid pid");
        kill_process(pid, signal).expect("signalling hotpatchd");
    }

    /// SIGTERM, then waits for the exit; returns the status and everything it printed.
    pub async fn terminate(mut self) -> (ExitStatus, String) {
        self.signal(Signal::TERM);
        self.wait().await
    }

    /// SIGKILL (no chance to clean up), then waits for the exit.
    pub async fn kill(mut self) -> (ExitStatus, String) {
        self.signal(Signal::KILL);
        self.wait().await
    }

    async fn wait(&mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("a running child");
        let Some(status) = wait_for_exit(&mut child, STOP_TIMEOUT).await else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("hotpatchd did not stop within {STOP_TIMEOUT:?}:\n{}", self.output());
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        (status, self.output())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// A running `hotpatch-agent` (an agent or a simulated fleet). Dropping it kills the process.
#[derive(Debug)]
pub struct AgentProcess {
    child: Option<Child>,
    output: Arc<Mutex<String>>,
}

impl AgentProcess {
    /// Starts `hotpatch-agent <args>` with its log at `info`.
    pub fn start(args: &[&str]) -> AgentProcess {
        AgentProcess::start_with_env(args, &[])
    }

    /// Starts `hotpatch-agent <args>` with `env` added (e.g. the agent token, which is never an
    /// argument).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> AgentProcess {
        let mut cmd = Command::new(agent_bin());
        cmd.args(args)
            .env("HOTPATCH_LOG", "info")
            .env_remove("HOTPATCH_URL")
            .env_remove("HOTPATCH_TOKEN")
            .env_remove("HOTPATCH_AGENT_TOKEN")
            .env_remove("HOTPATCH_AGENT_CONFIG")
            .env_remove("HOTPATCH_AGENT_TOKEN_FILE")
            .env_remove("HOTPATCH_AGENT_STATE_DIR")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("starting hotpatch-agent");
        let output = Arc::new(Mutex::new(String::new()));
        if let Some(stdout) = child.stdout.take() {
            collect(stdout, output.clone());
        }
        if let Some(stderr) = child.stderr.take() {
            collect(stderr, output.clone());
        }
        AgentProcess { child: Some(child), output }
    }

    /// Everything it printed so far.
    pub fn output(&self) -> String {
        lock(&self.output).clone()
    }

    /// Waits until its output contains `text`; panics with the output when it exits first or
    /// `timeout` passes.
    pub async fn wait_for(&mut self, text: &str, timeout: Duration) {
        let started = Instant::now();
        loop {
            if lock(&self.output).contains(text) {
                return;
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                tokio::time::sleep(Duration::from_millis(100)).await;
                panic!("hotpatch-agent exited ({status}) before printing {text:?}:\n{}", self.output());
            }
            assert!(
                started.elapsed() < timeout,
                "hotpatch-agent did not print {text:?} within {timeout:?}:\n{}",
                self.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: the agent dies mid-work, as a crashed machine would.
    pub async fn kill(mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = wait_for_exit(&mut child, STOP_TIMEOUT).await;
        }
    }

    /// SIGTERM, then waits for the exit; returns the status and everything it printed.
    pub async fn terminate(mut self) -> (Option<ExitStatus>, String) {
        let mut child = self.child.take().expect("a running child");
        if let Some(pid) = i32::try_from(child.id()).ok().and_then(Pid::from_raw) {
            let _ = kill_process(pid, Signal::TERM);
        }
        let status = wait_for_exit(&mut child, STOP_TIMEOUT).await;
        if status.is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
        (status, self.output())
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// The `hotpatchctl` binary, built on first use (`HOTPATCHCTL_BIN=<path>` overrides).
pub fn ctl_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| match std::env::var_os("HOTPATCHCTL_BIN") {
        Some(path) => PathBuf::from(path),
        None => built_bins().join("hotpatchctl"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_address_is_read_from_pretty_and_json_logs() {
        let pretty = "2026-01-01T00:00:00Z  INFO hotpatch_server::startup: listening on 127.0.0.1:41234 addr=127.0.0.1:41234\n";
        assert_eq!(listening_addr(pretty), Some("127.0.0.1:41234".parse().unwrap()));
        let json = r#"{"level":"INFO","message":"listening on 127.0.0.1:5","addr":"127.0.0.1:5"}"#;
        assert_eq!(listening_addr(json), Some("127.0.0.1:5".parse().unwrap()));
        assert_eq!(listening_addr("starting"), None);
    }
}
