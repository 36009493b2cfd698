//! Trace export settings: the standard OpenTelemetry variables (`OTEL_*`), read with their
//! standard meaning, so a process exports spans exactly when an OTLP endpoint is configured.
//!
//! Only OTLP over HTTP with protobuf bodies is built in. The SDK itself reads its other standard
//! tuning variables (`OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT`, `OTEL_BSP_*`,
//! `OTEL_RESOURCE_ATTRIBUTES`).

use crate::{ConfigError, Env};

/// Where and as whom a process exports its spans.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceExportSettings {
    /// The full URL spans are POSTed to (`…/v1/traces`).
    pub endpoint: url::Url,
    /// `OTEL_SERVICE_NAME`; unset means the process names itself after its role
    /// (`imgmeta-api`, `imgmeta-worker`).
    pub service_name: Option<String>,
}

/// The trace exporter's settings, or `None` when no endpoint is configured or export is turned
/// off (`OTEL_SDK_DISABLED=true`, `OTEL_TRACES_EXPORTER=none`).
pub(crate) fn from_env(env: &Env<'_>) -> Result<Option<TraceExportSettings>, ConfigError> {
    // The specification's booleans: only "true" (any case) is true, anything else false.
    if env
        .string("OTEL_SDK_DISABLED", "false")
        .eq_ignore_ascii_case("true")
    {
        return Ok(None);
    }
    match env.string("OTEL_TRACES_EXPORTER", "otlp").as_str() {
        "otlp" => {}
        "none" => return Ok(None),
        other => {
            return Err(ConfigError {
                var: "OTEL_TRACES_EXPORTER",
                reason: format!("expected \"otlp\" or \"none\", got {other:?}"),
            });
        }
    }
    // The signal's own variable is used as given; the general one is a base URL that gets the
    // signal's path appended (OTLP exporter specification).
    let endpoint = match (
        non_empty(env, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"),
        non_empty(env, "OTEL_EXPORTER_OTLP_ENDPOINT"),
    ) {
        (Some(raw), _) => http_url("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", &raw)?,
        (None, Some(raw)) => {
            let mut url = http_url("OTEL_EXPORTER_OTLP_ENDPOINT", &raw)?;
            let path = format!("{}/v1/traces", url.path().trim_end_matches('/'));
            url.set_path(&path);
            url
        }
        (None, None) => return Ok(None),
    };
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(protocol) = non_empty(env, var) {
            if protocol != "http/protobuf" {
                return Err(ConfigError {
                    var,
                    reason: format!(
                        "only \"http/protobuf\" (OTLP over HTTP, usually port 4318) is supported, got {protocol:?}"
                    ),
                });
            }
            // The signal's own variable wins over the general one.
            break;
        }
    }
    Ok(Some(TraceExportSettings {
        endpoint,
        service_name: non_empty(env, "OTEL_SERVICE_NAME"),
    }))
}

fn non_empty(env: &Env<'_>, var: &str) -> Option<String> {
    Some(env.string(var, "")).filter(|v| !v.is_empty())
}

fn http_url(var: &'static str, raw: &str) -> Result<url::Url, ConfigError> {
    crate::parse_url(var, raw, &["http", "https"])
}

#[cfg(test)]
mod tests {
    use crate::tests::settings;

    #[test]
    fn without_an_endpoint_nothing_is_exported() {
        assert_eq!(settings(&[]).unwrap().traces, None);
        let s = settings(&[
            ("OTEL_SERVICE_NAME", "x"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert_eq!(s.unwrap().traces, None);
    }

    #[test]
    fn the_general_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_used_as_given() {
        let traces = |vars: &[(&str, &str)]| settings(vars).unwrap().traces.unwrap();
        let t = traces(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")]);
        assert_eq!(t.endpoint.as_str(), "http://collector:4318/v1/traces");
        assert_eq!(t.service_name, None);
        let t = traces(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://otel.example/base/")]);
        assert_eq!(t.endpoint.as_str(), "https://otel.example/base/v1/traces");
        let t = traces(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            (
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "http://other:9999/custom",
            ),
            ("OTEL_SERVICE_NAME", "imgmeta-eu"),
        ]);
        assert_eq!(t.endpoint.as_str(), "http://other:9999/custom");
        assert_eq!(t.service_name.as_deref(), Some("imgmeta-eu"));
    }

    #[test]
    fn export_can_be_turned_off_by_the_standard_switches() {
        let on = [("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")];
        for off in [
            ("OTEL_SDK_DISABLED", "TRUE"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ] {
            assert_eq!(settings(&[on[0], off]).unwrap().traces, None, "{off:?}");
        }
        let s = settings(&[on[0], ("OTEL_SDK_DISABLED", "false")]).unwrap();
        assert!(s.traces.is_some());
    }

    #[test]
    fn unsupported_protocols_exporters_and_endpoints_name_the_variable() {
        let on = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318");
        let err = settings(&[on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert_eq!(err.var, "OTEL_EXPORTER_OTLP_PROTOCOL");
        let err = settings(&[on, ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json")]).unwrap_err();
        assert_eq!(err.var, "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL");
        // The signal's own protocol wins over the general one.
        let s = settings(&[
            on,
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/protobuf"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
        ]);
        assert!(s.unwrap().traces.is_some());
        let err = settings(&[on, ("OTEL_TRACES_EXPORTER", "zipkin")]).unwrap_err();
        assert_eq!(err.var, "OTEL_TRACES_EXPORTER");
        let err = settings(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318")]).unwrap_err();
        assert_eq!(err.var, "OTEL_EXPORTER_OTLP_ENDPOINT");
    }
}
