//! The API's error type: an HTTP status, a stable code and a message, always sent as
//! `{"error": {"code", "message"}}`.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use imgmeta_domain::{ErrorBody, ErrorCode, ValidationError};
use serde::Serialize;

/// The body of every error answer, from every endpoint: `{"error": {"code", "message"}}`.
/// `code` is one of the stable codes; clients match on it, never on the message.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    /// Sent as `Retry-After` (seconds) when set.
    pub retry_after_secs: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after_secs = Some(secs);
        self
    }

    pub fn not_found(id: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            ErrorCode::JobNotFound,
            format!("no job with id {id}"),
        )
    }

    pub fn unavailable(what: impl std::fmt::Display) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::ServiceUnavailable,
            format!("{what}; try again shortly"),
        )
    }
}

impl From<ValidationError> for ApiError {
    fn from(err: ValidationError) -> Self {
        Self::new(StatusCode::BAD_REQUEST, err.code, err.message)
    }
}

impl From<imgmeta_store::StoreError> for ApiError {
    fn from(err: imgmeta_store::StoreError) -> Self {
        if matches!(err, imgmeta_store::StoreError::NoSuchAccount) {
            return Self::new(
                StatusCode::NOT_FOUND,
                ErrorCode::AccountNotFound,
                "no such account",
            );
        }
        if let imgmeta_store::StoreError::NotMigrated(detail) = &err {
            tracing::error!(kind = "error", detail = %detail, "database not migrated");
            return Self::unavailable("the database is not migrated (run `imgmeta migrate`)");
        }
        if err.is_retryable() {
            tracing::warn!(kind = "error", error = %err, "database unavailable");
            Self::unavailable("the database is unavailable")
        } else {
            tracing::error!(kind = "error", error = %err, "database error");
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::Internal,
                "internal error",
            )
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        metrics::counter!(imgmeta_telemetry::REQUEST_ERRORS, "code" => self.code.as_str())
            .increment(1);
        let body = ErrorEnvelope {
            error: ErrorBody::new(self.code, self.message),
        };
        let mut response = (self.status, Json(body)).into_response();
        // For the request log (routes::metrics::record), which sees every response.
        response.extensions_mut().insert(self.code);
        let retry_after = self
            .retry_after_secs
            .or((self.status == StatusCode::SERVICE_UNAVAILABLE).then_some(5));
        if let Some(secs) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(secs),
            );
        }
        response
    }
}
