//! `GET /metrics` and the middleware that counts and times every request and logs every
//! refused one.

use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_domain::ErrorCode;
use std::time::{Duration, Instant};

/// The process's metrics in the Prometheus text format.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "service",
    operation_id = "metrics",
    responses((status = 200, description = "Prometheus text exposition (0.0.4).", content_type = "text/plain", body = String))
)]
pub(super) async fn metrics() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        imgmeta_telemetry::render(),
    )
}

/// Records every request by its route template (never the raw path, which would let clients
/// create unbounded label values), method and status; a refused request (4xx, 5xx) is also
/// logged with its error code: `analytics` for a client's mistake, `error` for ours.
pub(super) async fn record(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = method_label(request.method()).to_owned();
    let started = Instant::now();
    let response = next.run(request).await;
    let elapsed = started.elapsed();
    let status = response.status();
    // Probes answer 503 every few seconds while a dependency is down: /readyz says so itself.
    let probe = route == "/healthz" || route == "/readyz";
    if (status.is_client_error() || status.is_server_error()) && !probe {
        log_refusal(
            &route,
            &method,
            status,
            response.extensions().get::<ErrorCode>(),
            elapsed,
        );
    }
    let status = status.as_u16().to_string();
    metrics::counter!(imgmeta_telemetry::HTTP_REQUESTS, "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!(imgmeta_telemetry::HTTP_DURATION, "route" => route, "method" => method)
        .record(elapsed.as_secs_f64());
    response
}

/// The `method` label: one of the standard methods, else `other`, so invented methods cannot
/// grow the label set.
fn method_label(method: &axum::http::Method) -> &'static str {
    use axum::http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        Method::TRACE => "TRACE",
        Method::CONNECT => "CONNECT",
        _ => "other",
    }
}

/// One line per refused request. The message is left out: it can quote the client's input.
fn log_refusal(
    route: &str,
    method: &str,
    status: StatusCode,
    code: Option<&ErrorCode>,
    elapsed: Duration,
) {
    let code = code.map_or("none", |c| c.as_str());
    let duration_ms = elapsed.as_millis() as u64;
    if status.is_server_error() {
        tracing::warn!(
            kind = "error",
            event = "request_failed",
            http.route = route,
            http.method = method,
            http.status = status.as_u16(),
            code,
            duration_ms,
            "request failed"
        );
    } else {
        tracing::info!(
            kind = "analytics",
            event = "request_refused",
            http.route = route,
            http.method = method,
            http.status = status.as_u16(),
            code,
            duration_ms,
            "request refused"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::method_label;
    use axum::http::Method;

    #[test]
    fn invented_methods_share_one_label() {
        assert_eq!(method_label(&Method::DELETE), "DELETE");
        let invented = Method::from_bytes("X".repeat(2000).as_bytes()).unwrap();
        assert_eq!(method_label(&invented), "other");
        assert_eq!(
            method_label(&Method::from_bytes(b"get").unwrap()),
            "other",
            "methods are case-sensitive"
        );
    }
}
