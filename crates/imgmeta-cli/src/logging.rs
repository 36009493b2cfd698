//! Log set-up: human-readable text in development, JSON lines in production, always on stderr
//! so that stdout stays clean for command output; beside the logs, the trace exporter when one
//! is configured.

use crate::traces::TraceExport;
use imgmeta_config::{LogFormat, TraceExportSettings};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry};

/// Logs only (tests, and processes without trace export).
pub fn init(format: LogFormat) {
    install(format, None);
}

/// Logs, and span export when `traces` is set. The exporter is returned so the caller can
/// flush it at exit; an exporter that cannot be built is logged and left out, since traces are
/// never a reason for the service not to run.
pub fn init_with_traces(
    format: LogFormat,
    traces: Option<&TraceExportSettings>,
    default_service_name: &str,
) -> Option<TraceExport> {
    let (export, failure) = match traces.map(|t| TraceExport::start(t, default_service_name)) {
        None => (None, None),
        Some(Ok(export)) => (Some(export), None),
        Some(Err(err)) => (None, Some(err)),
    };
    install(format, export.as_ref());
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

fn install(format: LogFormat, traces: Option<&TraceExport>) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
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
}
