//! OpenTelemetry trace export: the process's `tracing` spans (a job and its stages) sent to an
//! OTLP/HTTP collector when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, and nothing at all otherwise.
//!
//! Spans are queued in memory and exported in batches from the SDK's own thread through a
//! blocking HTTP client, so a slow or absent collector never blocks a request or a job: when the
//! queue is full, spans are dropped. Only this module knows OpenTelemetry; it installs the
//! W3C trace-context hooks that let a job's trace cross the queue.

use imgmeta_config::TraceExportSettings;
use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use std::collections::HashMap;
use std::time::Duration;
use tracing::Subscriber;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer;
use tracing_subscriber::registry::LookupSpan;

/// How long exiting waits for the last spans to reach the collector.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(5);

/// A running exporter. Keep it for the process's lifetime and call [`TraceExport::shutdown`]
/// on the way out: spans still queued are sent then.
pub struct TraceExport {
    provider: SdkTracerProvider,
    endpoint: String,
    service_name: String,
}

impl TraceExport {
    /// Builds the exporter; `default_service_name` names the process's role unless
    /// `OTEL_SERVICE_NAME` was set. Makes no connection yet.
    pub fn start(
        settings: &TraceExportSettings,
        default_service_name: &str,
    ) -> Result<Self, opentelemetry_otlp::ExporterBuildError> {
        let service_name = settings
            .service_name
            .clone()
            .unwrap_or_else(|| default_service_name.to_owned());
        // Endpoint and protocol are given explicitly so that the exporter does not read its own,
        // differently defaulted, view of the same variables.
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(settings.endpoint.as_str())
            .build()?;
        let resource = Resource::builder()
            .with_service_name(service_name.clone())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build();
        let provider = SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        // Submissions note their trace with the job; workers join it.
        imgmeta_telemetry::context::install(Box::new(W3cTraceContext));
        // The endpoint is logged at start: never with credentials, should the URL carry any.
        let mut endpoint = settings.endpoint.clone();
        let _ = endpoint.set_username("");
        let _ = endpoint.set_password(None);
        Ok(Self {
            provider,
            endpoint: endpoint.to_string(),
            service_name,
        })
    }

    /// Where spans go, without any credentials.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    pub fn service_name(&self) -> &str {
        &self.service_name
    }

    /// The `tracing` layer that turns closed spans into exported ones.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: Subscriber + for<'span> LookupSpan<'span>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("imgmeta"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !from_the_exporter(meta.target())
            }))
    }

    /// Sends what is still queued and stops the exporter, waiting at most [`FLUSH_TIMEOUT`].
    pub fn shutdown(self) {
        if let Err(err) = self.provider.shutdown_with_timeout(FLUSH_TIMEOUT) {
            tracing::warn!(kind = "error", error = %err, "traces not flushed at exit");
        }
    }
}

/// W3C trace context through the OpenTelemetry layer's spans: what carries a job's trace from
/// the API through the outbox and the queue into the worker (see imgmeta_telemetry::context).
struct W3cTraceContext;

impl imgmeta_telemetry::context::TraceContext for W3cTraceContext {
    fn current(&self) -> Option<String> {
        let context = tracing::Span::current().context();
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        carrier.remove("traceparent")
    }

    fn adopt(&self, span: &tracing::Span, traceparent: &str) {
        let carrier = HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        // Fails only for a span the layer does not know (disabled by the filter): no trace then.
        let _ = span.set_parent(parent);
    }
}

/// Spans of the exporter's own machinery (the SDK, its HTTP client) are never exported: each
/// export would otherwise produce spans to export.
fn from_the_exporter(target: &str) -> bool {
    ["opentelemetry", "hyper", "h2", "reqwest"]
        .iter()
        .any(|prefix| target.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exporters_own_spans_are_left_out_and_ours_are_kept() {
        assert!(from_the_exporter("opentelemetry_sdk"));
        assert!(from_the_exporter("opentelemetry-otlp"));
        assert!(from_the_exporter("hyper_util::client::legacy"));
        assert!(from_the_exporter("reqwest::blocking"));
        assert!(!from_the_exporter("imgmeta_worker::job"));
        assert!(!from_the_exporter("imgmeta_pipeline"));
    }
}
