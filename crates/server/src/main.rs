//! `hotpatchd`: reads its configuration, starts logging and runs the service.

use std::process::ExitCode;

use clap::Parser;
use hotpatch_server::config::LogFormat;
use hotpatch_server::{telemetry, Application, Config, StartupError};

#[tokio::main]
async fn main() -> ExitCode {
    let config = Config::parse();
    let format = config.log_format;
    if let Err(e) = telemetry::init(&config.log_level, format) {
        eprintln!("hotpatchd: error: {e}");
        return ExitCode::FAILURE;
    }
    match run(config).await {
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
    Application::build(config).await?.run().await
}
