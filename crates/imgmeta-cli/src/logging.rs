//! Log set-up: human-readable text in development, JSON lines in production, always on stderr
//! so that stdout stays clean for command output; beside the logs, the trace exporter when one
//! is configured.

use crate::traces::TraceExport;
use imgmeta_config::{LogFormat, TraceExportSettings};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// The filter when `RUST_LOG` is unset.
const DEFAULT_FILTER: &str = "info,sqlx=warn,lapin=warn";

/// Logs only (tests, and processes without trace export), at the default filter.
pub fn init(format: LogFormat) {
    install(format, None, None);
}

/// Logs, and span export when `traces` is set. The exporter is returned so the caller can
/// flush it at exit; an exporter that cannot be built is logged and left out, since traces are
/// never a reason for the service not to run.
pub fn init_with_traces(
    format: LogFormat,
    filter: Option<&str>,
    traces: Option<&TraceExportSettings>,
    default_service_name: &str,
) -> Option<TraceExport> {
    let (export, failure) = match traces.map(|t| TraceExport::start(t, default_service_name)) {
        None => (None, None),
        Some(Ok(export)) => (Some(export), None),
        Some(Err(err)) => (None, Some(err)),
    };
    let bad_filter = install(format, filter, export.as_ref());
    if let Some(err) = bad_filter {
        tracing::warn!(error = %err, "RUST_LOG is not a valid filter; using {DEFAULT_FILTER:?}");
    }
    if let Some(err) = failure {
        tracing::warn!(kind = "error", error = %err, "cannot export traces; running without");
    }
    if let Some(export) = &export {
        tracing::info!(
            endpoint = export.endpoint(),
            service.name = export.service_name(),
            "exporting traces over OTLP/HTTP"
        );
    }
    export
}

/// Installs the subscriber; answers the parse error of a `filter` that was replaced by the
/// default.
fn install(
    format: LogFormat,
    filter: Option<&str>,
    traces: Option<&TraceExport>,
) -> Option<String> {
    let (filter, bad_filter) = match filter.map(EnvFilter::try_new) {
        None => (EnvFilter::new(DEFAULT_FILTER), None),
        Some(Ok(filter)) => (filter, None),
        Some(Err(err)) => (EnvFilter::new(DEFAULT_FILTER), Some(err.to_string())),
    };
    let json = match format {
        LogFormat::Text => false,
        LogFormat::Json => true,
        LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    // Colour codes only for a person at a terminal: a file or a log collector gets plain text.
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let logs: Box<dyn Layer<_> + Send + Sync> = match json {
        false => logs.boxed(),
        true => logs
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .boxed(),
    };
    // A second initialisation (tests start several apps in one process) is harmless.
    let _ = Registry::default()
        .with(filter)
        .with(logs)
        .with(traces.map(|t| t.layer()))
        .try_init();
    bad_filter
}
