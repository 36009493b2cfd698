//! `GET /metrics` and the middleware that counts and times every request and logs every
//! refused one.

use axum::extract::{MatchedPath, Request};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_domain::ErrorCode;
use std::time::{Duration, Instant};

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
    let method = request.method().as_str().to_owned();
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
