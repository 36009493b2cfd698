//! Process-wide request limits applied before routing, from the request head alone: the
//! request-target length, repeated single-value headers, a declared body over the limit, and
//! the cap on requests in flight (which protects the database pool and memory under a flood;
//! probes are exempt so readiness tells the truth about dependencies, not load). The body limit
//! itself is decided from the head too ([`BodyLimit`]: an image upload may be larger than a
//! JSON body). Then, only after authentication, the cap on uploads being read and a deadline for
//! the whole request body (a client dripping its body cannot hold a connection).

use crate::routes::MAX_BODY_BYTES;
use crate::{ApiError, AppState};
use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use imgmeta_domain::ErrorCode;

/// Headers a request may carry once only: a second copy is ambiguous (which one did the
/// proxies in between act on?), so it is refused.
const SINGLE_VALUE_HEADERS: [&str; 4] = [
    "authorization",
    "content-type",
    "idempotency-key",
    "content-length",
];

/// Room beside the image in a multipart upload: boundaries, part headers and the options part.
pub(crate) const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// How many body bytes a request may send, decided from its head alone (method, path and
/// `Content-Type`) by [`guard`] and left in its extensions for [`read_body`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BodyLimit {
    pub bytes: usize,
    /// An image upload (`POST /v1/jobs` with an `image/*` or `multipart/form-data` body) or a
    /// streamed batch: it takes one of the process's upload places.
    pub upload: bool,
    /// Handed to the handler as it arrives (an NDJSON batch) instead of read whole first; the
    /// handler holds it to [`BodyPace`].
    pub streamed: bool,
}

/// Largest JSON batch body (`{"items": [...]}`, at most 10,000 items).
pub(crate) const MAX_JSON_BATCH_BYTES: usize = 16 * 1024 * 1024;
/// Largest NDJSON batch body.
pub(crate) const MAX_NDJSON_BATCH_BYTES: usize = 256 * 1024 * 1024;

impl BodyLimit {
    const JSON: BodyLimit = BodyLimit {
        bytes: MAX_BODY_BYTES,
        upload: false,
        streamed: false,
    };

    fn of(method: &Method, path: &str, headers: &HeaderMap, max_upload_bytes: usize) -> Self {
        if method != Method::POST {
            return Self::JSON;
        }
        let media_type = crate::routes::media_type(headers);
        match (path, media_type.as_deref()) {
            ("/v1/jobs", Some(t)) if t.starts_with("image/") => Self {
                bytes: max_upload_bytes,
                upload: true,
                streamed: false,
            },
            ("/v1/jobs", Some("multipart/form-data")) => Self {
                bytes: max_upload_bytes + MULTIPART_OVERHEAD,
                upload: true,
                streamed: false,
            },
            ("/v1/batches", Some(t)) if crate::routes::is_ndjson(t) => Self {
                bytes: MAX_NDJSON_BATCH_BYTES,
                upload: true,
                streamed: true,
            },
            ("/v1/batches", _) => Self {
                bytes: MAX_JSON_BATCH_BYTES,
                upload: false,
                streamed: false,
            },
            _ => Self::JSON,
        }
    }

    /// `413 payload_too_large`, naming this limit.
    pub(crate) fn refusal(self, max_upload_bytes: usize) -> ApiError {
        if self.upload && !self.streamed {
            crate::routes::upload_too_large(max_upload_bytes)
        } else {
            crate::routes::payload_too_large(self.bytes)
        }
    }
}

pub(crate) async fn guard(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let security = &state.security;
    for name in SINGLE_VALUE_HEADERS {
        if request.headers().get_all(name).iter().nth(1).is_some() {
            tracing::info!(
                kind = "security",
                event = "validation_failed",
                code = %ErrorCode::DuplicateHeader,
                header = name,
                "request refused: a single-value header was repeated"
            );
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::DuplicateHeader,
                format!("the {name} header may appear only once"),
            )
            .into_response();
        }
    }
    // A declared length over the limit is refused before a byte of the body is read.
    let max_upload_bytes = security.inbound.max_upload_bytes;
    let limit = BodyLimit::of(
        request.method(),
        request.uri().path(),
        request.headers(),
        max_upload_bytes,
    );
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit.bytes as u64) {
        let mut response = limit.refusal(max_upload_bytes).into_response();
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return response;
    }
    request.extensions_mut().insert(limit);
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
    // Probes and metrics must answer even when the process is saturated: readiness reports
    // the dependencies, and saturation shows in the metrics.
    if matches!(request.uri().path(), "/healthz" | "/readyz" | "/metrics") {
        return next.run(request).await;
    }
    let Ok(_permit) = security.in_flight.clone().try_acquire_owned() else {
        metrics::counter!(imgmeta_telemetry::IN_FLIGHT_REFUSED, "share" => "global").increment(1);
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
    let in_flight = security.max_in_flight - security.in_flight.available_permits();
    metrics::gauge!(imgmeta_telemetry::HTTP_IN_FLIGHT).set(in_flight as f64);
    next.run(request).await
}

/// `503 too_many_requests_in_flight` for a holder (a key, or an address without one) whose
/// share of the in-flight cap is full; other clients are unaffected.
pub(crate) fn share_full(share: &'static str, holder: &str, limit: usize) -> Response {
    metrics::counter!(imgmeta_telemetry::IN_FLIGHT_REFUSED, "share" => share).increment(1);
    tracing::warn!(
        kind = "security",
        event = "too_many_requests_in_flight",
        share,
        holder = %holder,
        limit,
        "request refused: the client's share of the in-flight cap is full"
    );
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::TooManyRequestsInFlight,
        format!("this client already has {limit} requests in progress; retry shortly"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Reads the whole body (at most its [`BodyLimit`]) within the configured deadline before the
/// request goes on: `408 request_timeout` for a client too slow to send it, `413` for one too
/// large (a chunked body is cut at the limit); a client that hangs up mid-body is logged as
/// `client_closed`. Handlers then see a body that is already in memory. It runs after
/// authentication (see `routes`), so no body byte is read, and no `100 Continue` sent, for a
/// request without a valid key; a request without one (the operators' route) takes a place in
/// its address's share instead. An upload first takes one of the process's upload places
/// (`503 too_many_requests_in_flight` when they are all taken), since each may hold
/// `IMGMETA_MAX_UPLOAD_BYTES` in memory.
pub(crate) async fn read_body(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let security = &state.security;
    let _share = if request.extensions().get::<crate::Caller>().is_none() {
        let peer = request
            .extensions()
            .get::<ConnectInfo<std::net::SocketAddr>>()
            .map_or(std::net::IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
        let address =
            crate::shares::client_address(peer, request.headers(), &security.trusted_proxies);
        match security.shares.try_take(
            crate::shares::Holder::of_address(address),
            security.max_in_flight_per_address,
        ) {
            Some(share) => Some(share),
            None => {
                return share_full(
                    "address",
                    &address.to_string(),
                    security.max_in_flight_per_address,
                );
            }
        }
    } else {
        None
    };
    let limit = request
        .extensions()
        .get::<BodyLimit>()
        .copied()
        .unwrap_or(BodyLimit::JSON);
    let _upload = if limit.upload {
        match security.uploads.clone().try_acquire_owned() {
            Ok(permit) => Some(permit),
            Err(_) => return uploads_full(security.max_uploads_in_flight),
        }
    } else {
        None
    };
    let deadline = security.inbound.body_read_timeout;
    if limit.streamed {
        let (mut parts, body) = request.into_parts();
        parts.extensions.insert(BodyPace {
            grace: deadline,
            min_bytes_per_s: MIN_STREAM_BYTES_PER_S,
        });
        let body = Body::new(http_body_util::Limited::new(body, limit.bytes));
        return next.run(Request::from_parts(parts, body)).await;
    }
    let (parts, body) = request.into_parts();
    let read = tokio::time::timeout(deadline, axum::body::to_bytes(body, limit.bytes)).await;
    let bytes = match read {
        Ok(Ok(bytes)) => bytes,
        Ok(Err(error)) if is_malformed(&error) => {
            return ApiError::new(
                StatusCode::BAD_REQUEST,
                ErrorCode::BadRequest,
                "malformed request body (its chunked encoding is broken)",
            )
            .into_response();
        }
        Ok(Err(error)) if !is_length_limit(&error) => {
            tracing::info!(
                kind = "analytics",
                event = "client_closed",
                http.method = %parts.method,
                http.path = %imgmeta_auth::clean(parts.uri.path()),
                "client went away before sending its whole request body"
            );
            // Nobody reads this answer; its status (nginx's 499) keeps the metrics honest.
            return ApiError::new(
                StatusCode::from_u16(499).expect("a valid status"),
                ErrorCode::ClientClosed,
                "the client closed the connection mid-body",
            )
            .into_response();
        }
        Ok(Err(_)) => {
            let mut response = limit
                .refusal(security.inbound.max_upload_bytes)
                .into_response();
            // The rest of the body is still on its way: do not reuse the connection.
            response
                .headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
            return response;
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

/// The slowest average pace a streamed body may keep once its grace period is over.
const MIN_STREAM_BYTES_PER_S: u64 = 64 * 1024;

/// How fast a streamed body must arrive: within `grace` plus one second per
/// `min_bytes_per_s` bytes received so far. A client dripping its body (and so holding a
/// database transaction open) is cut off with `408 request_timeout`; an honest one sending a
/// 256 MiB batch at 64 KiB/s or faster never is.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyPace {
    pub grace: std::time::Duration,
    pub min_bytes_per_s: u64,
}

impl BodyPace {
    /// How long after the body began `received` bytes may have taken.
    pub(crate) fn allowed(&self, received: u64) -> std::time::Duration {
        self.grace
            + std::time::Duration::from_secs_f64(received as f64 / self.min_bytes_per_s as f64)
    }
}

/// `503 too_many_requests_in_flight`: this process already reads as many uploads as it may.
fn uploads_full(limit: usize) -> Response {
    metrics::counter!(imgmeta_telemetry::IN_FLIGHT_REFUSED, "share" => "uploads").increment(1);
    tracing::warn!(
        kind = "security",
        event = "too_many_requests_in_flight",
        share = "uploads",
        limit,
        "upload refused: the process already reads its most uploads at once"
    );
    let mut response = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        ErrorCode::TooManyRequestsInFlight,
        format!("this server is already receiving {limit} uploads; retry shortly"),
    )
    .into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

/// Whether reading a body failed on its framing (a broken chunked encoding) rather than on the
/// client going away or the length limit.
pub(crate) fn is_malformed(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if let Some(hyper_error) = e.downcast_ref::<hyper::Error>() {
            if hyper_error.is_incomplete_message() || hyper_error.is_closed() {
                return false;
            }
            if hyper_error.is_parse() {
                return true;
            }
        }
        // Hyper's chunked decoder reports a bad chunk as invalid input or data.
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return matches!(
                io.kind(),
                std::io::ErrorKind::InvalidInput | std::io::ErrorKind::InvalidData
            );
        }
        source = e.source();
    }
    false
}

/// Whether reading a body failed because it was over the limit (as opposed to the client
/// going away, or breaking the chunked encoding).
pub(crate) fn is_length_limit(error: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = source {
        if e.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = e.source();
    }
    false
}
