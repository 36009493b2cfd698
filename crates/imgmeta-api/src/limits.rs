//! Process-wide request limits applied before routing: the request-target length, the cap on
//! requests in flight (which protects the database pool and memory under a flood), and a
//! deadline for the whole request body (a client dripping its body cannot hold a connection).

use crate::routes::MAX_BODY_BYTES;
use crate::{ApiError, AppState};
use axum::body::Body;
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

/// Reads the whole body (at most [`MAX_BODY_BYTES`]) within the configured deadline before the
/// request goes on: `408 request_timeout` for a client too slow to send it, `413` for one too
/// large. Handlers then see a body that is already in memory.
pub(crate) async fn read_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let deadline = state.security.inbound.body_read_timeout;
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(_)) => {
            // Over the limit, or the client went away mid-body; the first is the one a client
            // can still read an answer to.
            return crate::routes::payload_too_large().into_response();
        }
        Err(_) => {
            tracing::warn!(
                kind = "security",
                event = "body_read_timeout",
                http.method = %parts.method,
                http.path = %imgmeta_auth::clean(parts.uri.path()),
                timeout_ms = u64::try_from(deadline.as_millis()).unwrap_or(u64::MAX),
                "client too slow sending its request body"
            );
            let mut response = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                ErrorCode::RequestTimeout,
                format!(
                    "the request body did not arrive within {} ms",
                    deadline.as_millis()
                ),
            )
            .into_response();
            // The rest of the body may still be on its way: do not reuse the connection.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
