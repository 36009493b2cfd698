//! The route table, body limits and the JSON fallbacks for unknown routes and methods.

mod account;
mod health;
mod jobs;
mod legacy;
mod metrics;

use crate::{ApiError, AppState};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use imgmeta_domain::ErrorCode;
use tower_http::trace::TraceLayer;

/// Largest request body accepted anywhere.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// `413 payload_too_large` for a body over [`MAX_BODY_BYTES`].
pub(crate) fn payload_too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        ErrorCode::PayloadTooLarge,
        format!("request body exceeds {MAX_BODY_BYTES} bytes"),
    )
}

pub(crate) fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/jobs", post(jobs::submit).get(jobs::list))
        .route("/v1/jobs/{id}", get(jobs::get).delete(jobs::cancel))
        .route("/v1/account", get(account::get))
        .route(
            "/v1/account/keys",
            get(account::list_keys).post(account::create_key),
        )
        .route("/v1/account/keys/{prefix}", delete(account::revoke_key))
        .route("/img", post(legacy::img))
        // Everything above needs an API key; sign-up and health checks below do not.
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::auth::require_key,
        ))
        .route("/v1/keys", post(crate::keys::create))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(metrics::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::read_body,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            crate::limits::guard,
        ))
        .layer(TraceLayer::new_for_http())
        .layer(axum::middleware::from_fn(metrics::record))
        .with_state(state)
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
