//! `hotpatch-agent run`: its options, what they resolve to with the configuration file and the
//! environment, and running one machine's agent on the executor chosen. (Part of the binary,
//! not of the library.)

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use hotpatch_agent::boot::BootMarker;
use hotpatch_agent::client::{http_client, http_client_trusting};
use hotpatch_agent::config::{self, ExecutorKind, FileConfig};
use hotpatch_agent::{Agent, AgentClient, CommandConfig, CommandExecutor, Executor, SimulatedMachine, Spool};
use hotpatch_domain::OsVersion;
use tokio_util::sync::CancellationToken;

use crate::{parse_os, SimArgs};

#[derive(Args)]
pub(crate) struct RunArgs {
    /// The configuration file (TOML; see the README). Options given here win over it.
    #[arg(long, env = "HOTPATCH_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// Server base URL, e.g. https://hotpatch.example.com.
    #[arg(long, env = "HOTPATCH_URL")]
    server: Option<String>,
    /// A file holding the machine's agent token (used when HOTPATCH_AGENT_TOKEN is not set).
    /// The token itself is never an argument: arguments are visible to every user.
    #[arg(long, env = "HOTPATCH_AGENT_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    /// A PEM file of CA certificates to trust for the server, besides the built-in roots.
    #[arg(long)]
    ca_file: Option<PathBuf>,
    /// What runs the jobs: `command` (a program per job, a real machine) or `simulated` (an
    /// in-memory machine: patches nothing).
    #[arg(long, value_enum)]
    executor: Option<ExecutorKind>,
    /// The command executor's program, run as `<program> [<program-arg>…] <kind>`.
    #[arg(long)]
    program: Option<PathBuf>,
    /// An argument given to the program before the kind (repeat for several).
    #[arg(long = "program-arg", allow_hyphen_values = true)]
    program_args: Vec<String>,
    /// A job's time limit when its payload sets none (seconds or ISO 8601, e.g. PT2H).
    #[arg(long, value_parser = config::parse_duration)]
    job_timeout: Option<Duration>,
    /// How long a restart a job started may take to happen before the job fails.
    #[arg(long, value_parser = config::parse_duration)]
    restart_timeout: Option<Duration>,
    /// A file whose contents identify the current boot, instead of the operating system's boot
    /// id or time (containers, tests).
    #[arg(long)]
    boot_marker: Option<PathBuf>,
    /// The simulated machine's OS.
    #[arg(long, default_value = "windows_server_2022", value_parser = parse_os)]
    os: OsVersion,
    /// Where the agent keeps finished work until the server has it (the spool), the jobs it
    /// finished and the job in hand: a job is never run twice because its report was late,
    /// across restarts too. One agent per directory (it is locked).
    #[arg(long, env = "HOTPATCH_AGENT_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// Append the log to this file instead of writing it to stderr (a Windows service has no
    /// console).
    #[arg(long, env = "HOTPATCH_AGENT_LOG_FILE")]
    pub(crate) log_file: Option<PathBuf>,
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

/// What `run` uses, from its options, the configuration file and the environment.
struct Setup {
    server: String,
    token: String,
    ca_file: Option<PathBuf>,
    state_dir: PathBuf,
    executor: Executing,
    restart_timeout: Option<Duration>,
}

/// The executor chosen, with its settings.
enum Executing {
    Command(CommandConfig),
    Simulated,
}

impl Setup {
    /// Options win over the file; the token comes from HOTPATCH_AGENT_TOKEN or a file.
    fn resolve(args: &RunArgs) -> Result<Setup, String> {
        let file = match &args.config {
            Some(path) => FileConfig::read(path).map_err(|e| e.to_string())?,
            None => FileConfig::default(),
        };
        let server = args.server.clone().or(file.server).ok_or(
            "no server: give --server (or HOTPATCH_URL), or server in the configuration file (--config)",
        )?;
        let token_file = args.token_file.clone().or(file.token_file);
        let token = config::token(std::env::var("HOTPATCH_AGENT_TOKEN").ok(), token_file.as_deref())
            .map_err(|e| e.to_string())?;
        let state_dir = args.state_dir.clone().or(file.state_dir).unwrap_or_else(default_state_dir);
        let executor = match args.executor.or(file.executor) {
            Some(ExecutorKind::Simulated) => Executing::Simulated,
            Some(ExecutorKind::Command) => {
                let program = args.program.clone().or(file.program).ok_or(
                    "the command executor needs its program: --program <path>, or program in the configuration file",
                )?;
                let defaults = CommandConfig::new(program);
                Executing::Command(CommandConfig {
                    args: if args.program_args.is_empty() {
                        file.args.unwrap_or_default()
                    } else {
                        args.program_args.clone()
                    },
                    env: file.env.unwrap_or_default().into_iter().collect(),
                    job_timeout: args.job_timeout.or(file.job_timeout).unwrap_or(defaults.job_timeout),
                    read_timeout: file.read_timeout.unwrap_or(defaults.read_timeout),
                    state_dir: Some(state_dir.join("program")),
                    boot: match args.boot_marker.clone().or(file.boot_marker) {
                        Some(path) => BootMarker::File(path),
                        None => BootMarker::Os,
                    },
                    ..defaults
                })
            }
            None => {
                return Err("choose an executor: --executor command --program <path> runs a program per job on \
                            this machine; --executor simulated runs an in-memory machine that patches nothing \
                            (or executor in the configuration file)"
                    .to_owned())
            }
        };
        Ok(Setup {
            server,
            token,
            ca_file: args.ca_file.clone().or(file.ca_file),
            state_dir,
            executor,
            restart_timeout: args.restart_timeout.or(file.restart_timeout),
        })
    }
}

pub(crate) async fn run(args: RunArgs, cancel: CancellationToken) -> ExitCode {
    let setup = match Setup::resolve(&args) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let http = match &setup.ca_file {
        Some(ca) => http_client_trusting(ca),
        None => http_client(),
    };
    let http = match http {
        Ok(h) => h,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the HTTP client");
            return ExitCode::FAILURE;
        }
    };
    let spool = match Spool::open(&setup.state_dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot use the state directory");
            return ExitCode::FAILURE;
        }
    };
    let mut config = match args.sim.agent_config() {
        Ok(c) => c,
        Err(code) => return code,
    };
    if let Some(timeout) = setup.restart_timeout {
        config.restart_timeout = timeout;
    }
    let client = AgentClient::new(http, &setup.server, &setup.token);
    let state_dir = setup.state_dir.display().to_string();
    match setup.executor {
        Executing::Command(command) => {
            if let Some(dir) = &command.state_dir {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    tracing::error!(error = %e, dir = %dir.display(), "cannot create the program's state directory");
                    return ExitCode::FAILURE;
                }
            }
            tracing::info!(server = %setup.server, %state_dir, program = %command.program.display(),
                "agent started (command executor)");
            serve(
                Agent::new(client, CommandExecutor::new(command), config, Default::default(), spool),
                cancel,
            )
            .await
        }
        Executing::Simulated => {
            tracing::info!(server = %setup.server, %state_dir,
                "agent started (simulated executor: jobs change an in-memory machine, never this host)");
            let machine = SimulatedMachine::new(args.sim.sim_config(args.os));
            serve(Agent::new(client, machine, config, Default::default(), spool), cancel).await
        }
    }
}

async fn serve<E: Executor>(agent: Agent<E>, cancel: CancellationToken) -> ExitCode {
    match agent.run(cancel).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %e, "agent stopped");
            ExitCode::FAILURE
        }
    }
}
