//! `hotpatch-agent`: run one machine's agent, or simulate a fleet of them.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use hotpatch_agent::{AgentConfig, ExecutionLog, Fleet, FleetConfig, SimConfig};
use hotpatch_domain::OsVersion;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "hotpatch-agent", version, about = "The hotpatch agent and fleet simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

mod run;
#[cfg(windows)]
mod service;

use run::{run, RunArgs};

#[derive(Subcommand)]
enum Command {
    /// Run the agent of one machine until SIGINT/SIGTERM.
    ///
    /// `--executor command --program <path>` runs the program for each job (see the README's
    /// contract); `--executor simulated` changes an in-memory machine, never this host. The
    /// token comes from HOTPATCH_AGENT_TOKEN or a token file, never from an argument.
    Run(RunArgs),
    /// Run the agent as a Windows service (started by the service manager; same options as
    /// `run`, usually just `--config`).
    #[cfg(windows)]
    Service(RunArgs),
    /// Register (or adopt) N simulated machines and run one agent for each in this process.
    ///
    /// Machines are named {prefix}-00000… and labelled sim={prefix}; a later run with the same
    /// prefix adopts them. Prints `simulate: ready N machines` to stderr once every agent runs,
    /// then a progress line every 2 s.
    Simulate(SimulateArgs),
    /// Load harness of the dispatch path; prints `name value unit` lines on stdout.
    #[command(subcommand)]
    Bench(BenchCommand),
}

#[derive(Subcommand)]
enum BenchCommand {
    /// K agents drive a fixed number of jobs through claim → heartbeat → result (one machine
    /// per job, registered first): jobs/s, claim latency, the server's peak RSS.
    Queue {
        #[command(flatten)]
        target: TargetArgs,
        /// Concurrent agents.
        #[arg(long, default_value_t = 64)]
        agents: usize,
        /// Jobs to run.
        #[arg(long, default_value_t = 10_000)]
        jobs: usize,
        /// Claim → result without a heartbeat: a job that ends before its first heartbeat is
        /// due, as the agent runs it (the shape of the raw claim + complete).
        #[arg(long)]
        no_heartbeat: bool,
    },
    /// N agents long-poll at once: the server's RSS while they wait, then the time from "assess
    /// now" to the claim answering, for a sample of them over several rounds.
    Idle {
        #[command(flatten)]
        target: TargetArgs,
        /// Long-polling agents.
        #[arg(long, default_value_t = 10_000)]
        agents: usize,
        /// Rounds of jobs.
        #[arg(long, default_value_t = 10)]
        rounds: usize,
        /// Machines that get a job in each round.
        #[arg(long, default_value_t = 100)]
        sample: usize,
    },
}

#[derive(Args)]
struct TargetArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "HOTPATCH_URL")]
    server: String,
    /// An operator (or admin) token.
    #[arg(long, env = "HOTPATCH_TOKEN", hide_env_values = true)]
    token: String,
}

impl TargetArgs {
    fn target(self) -> hotpatch_agent::bench::Target {
        hotpatch_agent::bench::Target { server: self.server, token: self.token }
    }
}

/// The bench's result lines are its output (scripts read them), so they go to stdout.
#[allow(clippy::print_stdout)]
fn print_figures(figures: &[hotpatch_agent::bench::Figure]) {
    for f in figures {
        println!("{f}");
    }
}

async fn bench(command: BenchCommand) -> ExitCode {
    let result = match command {
        BenchCommand::Queue { target, agents, jobs, no_heartbeat } => {
            hotpatch_agent::bench::queue(&target.target(), agents.max(1), jobs.max(1), !no_heartbeat)
                .await
                .map(|r| r.figures)
        }
        BenchCommand::Idle { target, agents, rounds, sample } => {
            hotpatch_agent::bench::idle(&target.target(), agents.max(1), rounds.max(1), sample.max(1))
                .await
                .map(|r| r.figures)
        }
    };
    match result {
        Ok(figures) => {
            print_figures(&figures);
            ExitCode::SUCCESS
        }
        Err(e) => {
            tracing::error!(error = %e, "bench failed");
            ExitCode::FAILURE
        }
    }
}

#[derive(Args)]
struct SimulateArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "HOTPATCH_URL")]
    server: String,
    /// An operator token (registration and agent tokens).
    #[arg(long, env = "HOTPATCH_TOKEN", hide_env_values = true)]
    token: String,
    /// How many machines to simulate.
    #[arg(long)]
    machines: usize,
    /// Machine name prefix and value of the `sim` label.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Regions, cycled over the machines.
    #[arg(long, value_delimiter = ',', default_value = "uksouth,eastasia,westcentralus")]
    regions: Vec<String>,
    /// Keep each agent's spool and finished-job record in a subdirectory (named after its
    /// machine) of this directory; without it they live in memory, like the machines.
    #[arg(long)]
    state_dir: Option<PathBuf>,
    #[command(flatten)]
    sim: SimArgs,
}

#[derive(Args)]
struct SimArgs {
    /// Long-poll wait of a claim, in seconds (0–60).
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(0..=60))]
    wait: u64,
    /// How long a simulated job works, in milliseconds.
    #[arg(long, default_value_t = 200)]
    job_duration_ms: u64,
    /// How long a simulated reboot takes, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    reboot_ms: u64,
    /// Probability that a job fails (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    fail_rate: f64,
    /// Probability that a machine turns unhealthy after an install (0–1).
    #[arg(long, default_value_t = 0.0, value_parser = parse_probability)]
    unhealthy_rate: f64,
    /// Seed of the simulated machines.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Append `<job id> <kind> <outcome> <attempt>` to this file for each job whose work
    /// finished, once its reports are spooled (evidence for fault tests that no job ran twice).
    #[arg(long)]
    execution_log: Option<PathBuf>,
}

impl SimArgs {
    fn sim_config(&self, os: OsVersion) -> SimConfig {
        SimConfig {
            os,
            seed: self.seed,
            job_duration: Duration::from_millis(self.job_duration_ms),
            reboot_duration: Duration::from_millis(self.reboot_ms),
            fail_rate: self.fail_rate,
            unhealthy_rate: self.unhealthy_rate,
            clock: Arc::new(Utc::now),
        }
    }

    fn agent_config(&self) -> Result<AgentConfig, ExitCode> {
        let execution_log = match &self.execution_log {
            Some(path) => match ExecutionLog::open(path) {
                Ok(log) => Some(log),
                Err(e) => {
                    tracing::error!(error = %e, path = %path.display(), "cannot open the execution log");
                    return Err(ExitCode::FAILURE);
                }
            },
            None => None,
        };
        Ok(AgentConfig { wait: Duration::from_secs(self.wait), execution_log, ..AgentConfig::default() })
    }
}

fn parse_os(s: &str) -> Result<OsVersion, String> {
    s.parse().map_err(|_| format!("'{s}' is not windows_server_2022 or windows_server_2025"))
}

fn parse_probability(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(p) if (0.0..=1.0).contains(&p) => Ok(p),
        _ => Err(format!("'{s}' is not a probability between 0 and 1")),
    }
}

/// Cancels `cancel` on SIGINT or SIGTERM (Ctrl+C on Windows; a Windows service is stopped by
/// the service manager instead).
fn cancel_on_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
        #[cfg(unix)]
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with SIGINT");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("stopping");
        cancel.cancel();
    });
}

async fn simulate(args: SimulateArgs, cancel: CancellationToken) -> ExitCode {
    let agent = match args.sim.agent_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let config = FleetConfig {
        prefix: args.prefix,
        regions: args.regions,
        seed: args.sim.seed,
        sim: args.sim.sim_config(OsVersion::WindowsServer2022),
        agent,
        state_dir: args.state_dir,
        ..FleetConfig::new(&args.server, &args.token, args.machines)
    };
    let fleet = tokio::select! {
        _ = cancel.cancelled() => return ExitCode::SUCCESS,
        started = Fleet::start(config, cancel.clone()) => match started {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(error = %e, "simulate: cannot start");
                return ExitCode::FAILURE;
            }
        },
    };
    let machines = fleet.len();
    let stats = fleet.stats();
    eprintln!("simulate: ready {machines} machines");
    let progress = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(2));
            tick.tick().await;
            loop {
                tick.tick().await;
                eprintln!("{}", stats.progress());
            }
        })
    };
    let failed = fleet.wait().await;
    progress.abort();
    eprintln!("{}", stats.progress());
    if failed == machines && !cancel.is_cancelled() {
        tracing::error!("every agent stopped with an error");
        return ExitCode::FAILURE;
    }
    ExitCode::SUCCESS
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_file = match &cli.command {
        Command::Run(args) => args.log_file.clone(),
        #[cfg(windows)]
        Command::Service(args) => args.log_file.clone(),
        _ => None,
    };
    if let Err(e) = init_logging(log_file.as_deref()) {
        eprintln!("hotpatch-agent: {e}");
        return ExitCode::FAILURE;
    }
    let command = match cli.command {
        // The service dispatcher takes this thread; the service builds its own runtime.
        #[cfg(windows)]
        Command::Service(args) => return service::start(args),
        command => command,
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let cancel = CancellationToken::new();
        cancel_on_signals(cancel.clone());
        match command {
            Command::Run(args) => run(args, cancel).await,
            Command::Simulate(args) => simulate(args, cancel).await,
            Command::Bench(command) => bench(command).await,
            #[cfg(windows)]
            Command::Service(args) => run(args, cancel).await,
        }
    })
}

/// Logs to stderr, or appended to `file` (a service has no console).
fn init_logging(file: Option<&std::path::Path>) -> Result<(), String> {
    let filter = EnvFilter::try_from_env("HOTPATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,hotpatch_agent=info"));
    let logging = tracing_subscriber::fmt().with_env_filter(filter);
    match file {
        Some(path) => {
            let file = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| format!("cannot open the log file {}: {e}", path.display()))?;
            logging.with_writer(Mutex::new(file)).with_ansi(false).init();
        }
        None => {
            let ansi = std::io::stderr().is_terminal();
            logging.with_writer(std::io::stderr).with_ansi(ansi).init();
        }
    }
    Ok(())
}
