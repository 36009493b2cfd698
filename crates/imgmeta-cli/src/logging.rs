//! Log set-up: human-readable text in development, JSON lines in production, always on stderr
//! so that stdout stays clean for command output.

use imgmeta_config::LogFormat;
use tracing_subscriber::EnvFilter;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,lapin=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let json = match format {
        LogFormat::Text => false,
        LogFormat::Json => true,
        LogFormat::Auto => !std::io::IsTerminal::is_terminal(&std::io::stderr()),
    };
    // A second initialisation (tests start several apps in one process) is harmless.
    let _ = match json {
        false => builder.try_init(),
        true => builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .try_init(),
    };
}
