//! `hotpatchd`: reads its configuration, starts logging and runs the service (or the demo).

use std::process::ExitCode;

use hotpatch_server::config::{Command, LogFormat};
use hotpatch_server::{telemetry, Application, Config, StartupError};

/// mimalloc instead of glibc's malloc: a page of 1,000 patch statuses spent a third of its CPU
/// time in glibc's allocator (perf, `GET /v1/machines?include=patch_status` at 1,000,000 machines).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let (config, changed) = match Config::load(std::env::args_os()) {
        Ok(loaded) => loaded,
        Err(hotpatch_server::config::ConfigError::Args(e)) => e.exit(),
        Err(e) => {
            eprintln!("hotpatchd: error: {e}");
            return ExitCode::from(2);
        }
    };
    let format = config.log_format;
    // The demo's own lines, not every request of its hundreds of agents, unless asked for.
    let dev_quiet =
        matches!(config.command, Some(Command::Dev(_))) && !changed.iter().any(|s| s.key == "log_level");
    let level = if dev_quiet { "warn,hotpatch_server=info" } else { config.log_level.as_str() };
    let tracing = match telemetry::init(level, format, config.otlp_endpoint.as_deref()) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("hotpatchd: error: {e}");
            return ExitCode::FAILURE;
        }
    };
    telemetry::log_settings(&changed);
    let ran = run(config).await;
    if let Some(tracing) = tracing {
        // The exporter's flush blocks (its own HTTP client): off the runtime's threads.
        let _ = tokio::task::spawn_blocking(move || tracing.shutdown()).await;
    }
    match ran {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if format == LogFormat::Json {
                tracing::error!(error = %e, "hotpatchd failed");
            }
            eprintln!("hotpatchd: error: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), StartupError> {
    match config.command.clone() {
        Some(Command::Dev(args)) => hotpatch_server::dev::run(config, args).await,
        None => Application::build(config).await?.run().await,
    }
}
