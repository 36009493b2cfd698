//! The route table, body limits and the JSON fallbacks for unknown routes and methods.

mod account;
pub(crate) mod batches;
pub(crate) mod health;
mod jobs;
mod legacy;
mod metrics;
mod session;
mod upload;
mod webhooks;

use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, StatusCode, header};
use axum::routing::{delete, get, post};
use imgmeta_domain::ErrorCode;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

/// Largest request body accepted anywhere but an image upload (`IMGMETA_MAX_UPLOAD_BYTES`).
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// `413 payload_too_large` for a body over `limit` bytes.
pub(crate) fn payload_too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {limit} bytes"),
    )
}

/// `413 payload_too_large` for an uploaded image over `max` bytes.
pub(crate) fn upload_too_large(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("the uploaded image exceeds {max} bytes (IMGMETA_MAX_UPLOAD_BYTES)"),
    )
}

/// The request's media type (`Content-Type` without parameters), lowercased; `None` without
/// one (or one that is not text).
pub(crate) fn media_type(headers: &axum::http::HeaderMap) -> Option<String> {
    let value = headers
        .get(axum::http::header::CONTENT_TYPE)?
        .to_str()
        .ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase(),
    )
}

/// Whether a media type names newline-delimited JSON (`application/x-ndjson`, or its other
/// spellings `application/jsonl` and `application/jsonlines`).
pub(crate) fn is_ndjson(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/jsonlines"
    )
}

/// Reads a JSON object body: a JSON array (which serde would read field by field into a
/// struct) or any other value is refused with `400 invalid_json`.
pub(crate) fn json_object<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let invalid =
        |message: String| ApiError::new(StatusCode::BAD_REQUEST, ErrorCode::InvalidJson, message);
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        return Err(invalid("the body must be a JSON object".to_owned()));
    }
    serde_json::from_slice(body).map_err(|e| invalid(format!("invalid JSON body: {e}")))
}

pub(crate) fn router(state: AppState) -> Router {
    // Authentication runs on the request head; only then is the body read (route layers run
    // outside in: the last added first).
    let with_key = Router::new()
        // The body reader has already held a submission to its limit, decided from the head
        // (an image upload may be larger than the default).
        .route(
            "/v1/jobs",
            post(jobs::submit)
                .layer(DefaultBodyLimit::disable())
                .get(jobs::list),
        )
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route(
            "/v1/batches",
            post(batches::create)
                .layer(DefaultBodyLimit::disable())
                .get(batches::list),
        )
        .route(
            "/v1/batches/{id}",
            get(batches::get).delete(batches::cancel),
        )
        .route("/v1/batches/{id}/results", get(batches::results))
        .route("/v1/jobs/{id}/artifacts/{name}", get(jobs::artifact))
        .route("/v1/webhooks/secret", post(webhooks::rotate_secret))
        .route("/v1/webhooks/deliveries", get(webhooks::deliveries))
        .route("/v1/account", get(account::get))
        .route(
            "/v1/account/keys",
            get(account::list_keys).post(account::create_key),
        )
        .route("/v1/account/keys/{prefix}", delete(account::revoke_key))
        .route("/img", post(legacy::img))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ));
    // Sign-up (with the admin token, checked from the head), the probes and the console need no
    // API key.
    let without_key = Router::new()
        .route("/v1/keys", post(crate::keys::create))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::keys::require_admin,
        ))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        // The web console: a page and its assets, public (the API calls it makes are not).
        .route("/", get(crate::console::index))
        .route("/console/{asset}", get(crate::console::asset));
    // Sign-up and login are guarded from the head (origin, sign-up switch); the session routes
    // by the session cookie (and the CSRF token for what changes state).
    let sessions = Router::new()
        .route("/v1/signup", post(session::signup))
        .route("/v1/session", post(session::login))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::sessions::guard_entry,
        ))
        .merge(
            Router::new()
                .route("/v1/session", get(session::get).delete(session::logout))
                .route("/v1/session/password", post(session::change_password))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::limits::read_body,
                ))
                .route_layer(axum::middleware::from_fn_with_state(
                    state.clone(),
                    crate::sessions::require_session,
                )),
        );
    with_key
        .merge(without_key)
        .merge(sessions)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard,
        ))
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(axum::middleware::from_fn(metrics::record))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ))
        .with_state(state)
}

/// The policy every answer carries (HTML pages and JSON alike): scripts, styles, images and
/// connections from this origin only, no inline script or style, never framed, forms posted
/// only here.
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'";

/// The span of a request: method and path only. The query string stays out of every log, since
/// signed image URLs (and the legacy `/img?<url>`) carry secrets there.
fn request_span(request: &axum::http::Request<axum::body::Body>) -> tracing::Span {
    tracing::info_span!(
        "request",
        http.method = %request.method(),
        http.path = %imgmeta_auth::clean(request.uri().path()),
    )
}

async fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::RouteNotFound,
        "no such route",
    )
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        "method not allowed on this route",
    )
}
