//! Logging: `tracing` to stderr, human-readable or JSON; and, when an OTLP endpoint is
//! configured, the same spans (one per request, one per background pass) exported to an
//! OpenTelemetry collector.

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _};

use crate::config::LogFormat;

/// Logging or tracing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter could not be parsed.
    #[error("invalid log level {filter:?} (HOTPATCH_LOG / --log-level): {source}")]
    Filter {
        /// The filter given.
        filter: String,
        /// Why it does not parse.
        #[source]
        source: tracing_subscriber::filter::ParseError,
    },
    /// The OTLP exporter could not be built.
    #[error("cannot export traces to {endpoint} (OTEL_EXPORTER_OTLP_ENDPOINT): {source}")]
    Otlp {
        /// The endpoint given.
        endpoint: String,
        /// Why.
        #[source]
        source: opentelemetry_otlp::ExporterBuildError,
    },
}

/// The trace exporter, while traces are exported: [`Tracing::shutdown`] sends what is left.
pub struct Tracing(SdkTracerProvider);

impl Tracing {
    /// Exports the spans still buffered and stops the exporter.
    pub fn shutdown(self) {
        if let Err(e) = self.0.shutdown() {
            eprintln!("hotpatchd: could not flush the last traces: {e}");
        }
    }
}

/// Installs the global subscriber. Logs go to stderr, so stdout stays free for output a
/// command might print. With `otlp` (a collector's OTLP/HTTP base URL), spans are exported too.
pub fn init(filter: &str, format: LogFormat, otlp: Option<&str>) -> Result<Option<Tracing>, TelemetryError> {
    let mut env_filter = EnvFilter::try_new(filter)
        .map_err(|source| TelemetryError::Filter { filter: filter.to_owned(), source })?;
    if !filter.contains("sqlx") {
        // PostgreSQL's NOTICEs ("relation … already exists, skipping" from migrations) are noise.
        if let Ok(quiet) = "sqlx::postgres::notice=warn".parse() {
            env_filter = env_filter.add_directive(quiet);
        }
    }
    let logs = match format {
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let provider = match otlp.map(str::trim).filter(|e| !e.is_empty()) {
        Some(endpoint) => Some(provider(endpoint)?),
        None => None,
    };
    let traces = provider.as_ref().map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("hotpatchd")));
    // A second initialisation (tests) keeps the first subscriber.
    let _ = tracing_subscriber::registry().with(env_filter).with(logs).with(traces).try_init();
    Ok(provider.map(Tracing))
}

/// A tracer provider exporting to `endpoint`'s `/v1/traces` in batches, as `hotpatchd`.
fn provider(endpoint: &str) -> Result<SdkTracerProvider, TelemetryError> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|source| TelemetryError::Otlp { endpoint: endpoint.to_owned(), source })?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name("hotpatchd").build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
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
