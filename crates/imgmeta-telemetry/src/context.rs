//! Trace context across the queue: the API notes the W3C `traceparent` of a submission's span
//! with the job, the relay sends it as a message header, and the worker makes the job's span
//! its child, so one trace shows a job from submission to result.
//!
//! The crates on that path stay free of OpenTelemetry: they call the functions here, which do
//! nothing until the process that exports traces installs a [`TraceContext`] (imgmeta-cli).

use std::sync::OnceLock;

/// Reads and adopts trace contexts; implemented by the trace exporter.
pub trait TraceContext: Send + Sync {
    /// The `traceparent` of the current span, if it belongs to a trace.
    fn current(&self) -> Option<String>;
    /// Makes `span` a child of the span that `traceparent` names.
    fn adopt(&self, span: &tracing::Span, traceparent: &str);
}

static CONTEXT: OnceLock<Box<dyn TraceContext>> = OnceLock::new();

/// Installs the process's trace context; false if one was installed already.
pub fn install(context: Box<dyn TraceContext>) -> bool {
    CONTEXT.set(context).is_ok()
}

/// The current span's `traceparent`, when traces are exported and the span is in one.
pub fn current_traceparent() -> Option<String> {
    CONTEXT.get()?.current().filter(|t| is_valid_traceparent(t))
}

/// Makes `span` a child of `traceparent` (a message header: checked before use, and ignored
/// when malformed or when traces are not exported).
pub fn adopt_parent(span: &tracing::Span, traceparent: Option<&str>) {
    if let (Some(context), Some(parent)) = (CONTEXT.get(), traceparent)
        && is_valid_traceparent(parent)
    {
        context.adopt(span, parent);
    }
}

/// Whether `value` is a W3C trace-context `traceparent` of version 00: `00-` then a 32-digit
/// trace id, a 16-digit parent span id and 2-digit flags, in lowercase hex, ids not all zero.
pub fn is_valid_traceparent(value: &str) -> bool {
    let parts: Vec<&str> = value.split('-').collect();
    let hex = |s: &str, len: usize| {
        s.len() == len && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
    };
    let nonzero = |s: &str| s.bytes().any(|b| b != b'0');
    matches!(parts.as_slice(), [version, trace, span, flags]
        if *version == "00"
            && hex(trace, 32) && nonzero(trace)
            && hex(span, 16) && nonzero(span)
            && hex(flags, 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_w3c_traceparent_is_valid() {
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(is_valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
        ));
    }

    #[test]
    fn malformed_traceparents_are_refused() {
        for bad in [
            "",
            "garbage",
            // Zero ids name no span.
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            // Unknown version, uppercase, wrong lengths, extra fields.
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(!is_valid_traceparent(bad), "{bad:?}");
        }
    }

    #[test]
    fn without_an_installed_context_nothing_is_read_or_adopted() {
        // No exporter in this test binary: the hooks are inert.
        assert_eq!(current_traceparent(), None);
        adopt_parent(
            &tracing::Span::none(),
            Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        );
    }
}
