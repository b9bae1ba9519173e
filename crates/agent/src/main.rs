//! `hotpatch-agent`: run one machine's agent, or simulate a fleet of them.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use clap::{Args, Parser, Subcommand};
use hotpatch_agent::client::http_client;
use hotpatch_agent::{
    Agent, AgentClient, AgentConfig, ExecutionLog, Fleet, FleetConfig, SimConfig, SimulatedMachine, Spool,
};
use hotpatch_domain::OsVersion;
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

#[derive(Parser)]
#[command(name = "hotpatch-agent", version, about = "The hotpatch agent and fleet simulator")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the agent of one machine until SIGINT/SIGTERM.
    ///
    /// For now the agent runs the SIMULATED executor: jobs change an in-memory machine
    /// (updates, build, reboots), never this host.
    Run(RunArgs),
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
        BenchCommand::Queue { target, agents, jobs } => {
            hotpatch_agent::bench::queue(&target.target(), agents.max(1), jobs.max(1))
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
struct RunArgs {
    /// Server base URL, e.g. http://127.0.0.1:8080.
    #[arg(long, env = "HOTPATCH_URL")]
    server: String,
    /// The machine's agent token.
    #[arg(long, env = "HOTPATCH_AGENT_TOKEN", hide_env_values = true)]
    token: String,
    /// The simulated machine's OS.
    #[arg(long, default_value = "windows_server_2022", value_parser = parse_os)]
    os: OsVersion,
    /// Where the agent keeps finished work until the server has it (the spool) and the jobs it
    /// finished: a job is never run twice because its report was late, across restarts too.
    /// One agent per directory (it is locked).
    #[arg(long, env = "HOTPATCH_AGENT_STATE_DIR", default_value_os_t = default_state_dir())]
    state_dir: PathBuf,
    #[command(flatten)]
    sim: SimArgs,
}

/// `C:\ProgramData\hotpatch\agent` on Windows, `/var/lib/hotpatch-agent` elsewhere.
fn default_state_dir() -> PathBuf {
    if cfg!(windows) {
        PathBuf::from(r"C:\ProgramData\hotpatch\agent")
    } else {
        PathBuf::from("/var/lib/hotpatch-agent")
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

/// Cancels `cancel` on SIGINT or SIGTERM.
fn cancel_on_signals(cancel: CancellationToken) {
    tokio::spawn(async move {
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
        tracing::info!("stopping");
        cancel.cancel();
    });
}

async fn run(args: RunArgs, cancel: CancellationToken) -> ExitCode {
    let http = match http_client() {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client");
            return ExitCode::FAILURE;
        }
    };
    let spool = match Spool::open(&args.state_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the state directory");
            return ExitCode::FAILURE;
        }
    };
    let config = match args.sim.agent_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    let client = AgentClient::new(http, &args.server, &args.token);
    let machine = SimulatedMachine::new(args.sim.sim_config(args.os));
    let agent = Agent::new(client, machine, config, Default::default(), spool);
    tracing::info!(server = %args.server, state_dir = %args.state_dir.display(),
        "agent started (simulated executor)");
    match agent.run(cancel).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            ExitCode::FAILURE
        }
    }
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

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = EnvFilter::try_from_env("HOTPATCH_LOG")
        .unwrap_or_else(|_| EnvFilter::new("warn,hotpatch_agent=info"));
    let ansi = std::io::stderr().is_terminal();
    tracing_subscriber::fmt().with_writer(std::io::stderr).with_ansi(ansi).with_env_filter(filter).init();
    let cancel = CancellationToken::new();
    cancel_on_signals(cancel.clone());
    match cli.command {
        Command::Run(args) => run(args, cancel).await,
        Command::Simulate(args) => simulate(args, cancel).await,
        Command::Bench(command) => bench(command).await,
    }
}
