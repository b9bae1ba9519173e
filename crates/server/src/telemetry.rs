//! Logging: `tracing` to stderr, human-readable or JSON.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// The log filter could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("invalid log level {filter:?} (HOTPATCH_LOG / --log-level): {source}")]
pub struct TelemetryError {
    filter: String,
    #[source]
    source: tracing_subscriber::filter::ParseError,
}

/// Installs the global subscriber. Logs go to stderr, so stdout stays free for output a
/// command might print.
pub fn init(filter: &str, format: LogFormat) -> Result<(), TelemetryError> {
    let mut env_filter =
        EnvFilter::try_new(filter).map_err(|source| TelemetryError { filter: filter.to_owned(), source })?;
    if !filter.contains("sqlx") {
        // PostgreSQL's NOTICEs ("relation … already exists, skipping" from migrations) are noise.
        if let Ok(quiet) = "sqlx::postgres::notice=warn".parse() {
            env_filter = env_filter.add_directive(quiet);
        }
    }
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr);
    // A second initialisation (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Pretty => builder.with_ansi(std::io::stderr().is_terminal()).try_init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
    };
    Ok(())
}

/// Logs every setting that is not at its default, with where it came from (secrets redacted);
/// clock control on is a warning: it lets an admin move the service's time.
pub fn log_settings(changed: &[crate::config::Setting]) {
    for s in changed {
        if s.key == "clock_control" && s.value == "true" {
            tracing::warn!(key = %s.key, value = %s.value, source = s.source,
                "clock control is on: an admin can move the service clock (tests and demos only)");
        } else {
            tracing::info!(key = %s.key, value = %s.value, source = s.source, "setting");
        }
    }
}
