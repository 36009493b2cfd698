//! Process-wide request limits applied before routing: the request-target length and the cap
//! on requests in flight (which protects the database pool and memory under a flood).

use crate::{ApiError, AppState};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_domain::ErrorCode;

pub(crate) async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let security = &state.security;
    let target_len = request
        .uri()
        .path_and_query()
        .map_or(0, |pq| pq.as_str().len());
    if target_len > security.inbound.max_url_bytes {
        tracing::warn!(
            kind = "security",
            event = "validation_failed",
            code = %ErrorCode::UriTooLong,
            target_bytes = target_len,
            "request target too long"
        );
        return ApiError::new(
            StatusCode::URI_TOO_LONG,
            ErrorCode::UriTooLong,
            format!(
                "the request target exceeds {} bytes",
                security.inbound.max_url_bytes
            ),
        )
        .into_response();
    }
    // Liveness must answer even when the process is saturated.
    if request.uri().path() == "/healthz" {
        return next.run(request).await;
    }
    let Ok(_permit) = security.in_flight.clone().try_acquire_owned() else {
        tracing::warn!(
            kind = "security",
            event = "too_many_requests_in_flight",
            max_in_flight = security.max_in_flight,
            "request refused: too many in flight"
        );
        let mut response = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::TooManyRequestsInFlight,
            format!(
                "this server is already handling {} requests; retry shortly",
                security.max_in_flight
            ),
        )
        .into_response();
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        return response;
    };
    next.run(request).await
}
