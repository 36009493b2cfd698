//! The one list of stable, machine-readable error codes, and whether each is worth retrying.
//!
//! Clients match on these strings, so a code is never renamed once released; add new ones instead.

use serde::{Deserialize, Serialize};

/// Every error the service reports, to API clients or in a failed job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    // Request validation (API).
    InvalidUrl,
    InvalidTask,
    InvalidMinScore,
    /// A `"dream"` object with an unknown field, layer or class, or a value out of bounds.
    InvalidDream,
    /// A `"cache"` field other than `"use"` or `"bypass"`.
    InvalidCacheMode,
    InvalidJson,
    InvalidJobId,
    InvalidBatchId,
    /// A batch line that is not an item object, or names an unknown field.
    InvalidItem,
    InvalidExternalId,
    /// A batch line longer than the longest an item may be.
    LineTooLong,
    /// A `webhook_url` that is not an absolute http(s) URL without credentials.
    InvalidWebhookUrl,
    /// A `webhook_url` was given but the account has no signing secret yet
    /// (`POST /v1/webhooks/secret` creates one).
    WebhookSecretMissing,
    /// A page `cursor` that this service did not hand out.
    InvalidCursor,
    /// A batch with more items than one upload may hold.
    TooManyItems,
    PayloadTooLarge,
    UnsupportedMediaType,
    /// An upload (an `image/*` body or a multipart `file` part) with no bytes.
    EmptyUpload,
    /// A `multipart/form-data` submission without its `file` part.
    MissingFilePart,
    /// A multipart part other than `file` and `options`, or one of them twice.
    UnknownPart,
    /// A `multipart/form-data` body that does not parse (no boundary, broken framing).
    InvalidMultipart,
    JobNotFound,
    BatchNotFound,
    /// The job is the caller's but has no artifact of that name (or it was purged).
    ArtifactNotFound,
    JobAlreadyFinished,
    InvalidIdempotencyKey,
    IdempotencyKeyReused,
    InvalidName,
    InvalidScope,
    InvalidQuery,
    RouteNotFound,
    MethodNotAllowed,
    UriTooLong,
    RequestTimeout,
    /// The client closed the connection before its request was read (logged, never sent).
    ClientClosed,
    DuplicateHeader,
    HeadersTooLarge,
    BadRequest,
    // Access control and limits (API).
    Unauthorized,
    Forbidden,
    InsufficientScope,
    KeyNotFound,
    AccountNotFound,
    AmbiguousAccount,
    LimitTooHigh,
    RateLimited,
    QuotaExceeded,
    TooManyRequestsInFlight,
    // Sign-up and sessions (API).
    /// Sign-up is turned off (`IMGMETA_SIGNUP=closed`).
    SignupClosed,
    /// A user with this e-mail address (compared case-insensitively) exists already.
    EmailTaken,
    /// A sign-up (or a new password) that breaks the rules: e-mail shape, password length.
    InvalidSignup,
    /// Wrong e-mail or password; the same answer for both.
    InvalidCredentials,
    /// Too many failed logins for the account or from the client's address.
    LoginThrottled,
    /// A state-changing request made with a session lacks the right `X-CSRF-Token`, or a
    /// sign-up or login came from another origin.
    CsrfFailed,
    // Service state.
    ServiceUnavailable,
    Internal,
    // Fetching the image.
    FetchFailed,
    /// The image host's TLS certificate was refused (unknown issuer, another name, expired):
    /// trying again cannot change it.
    TlsFailed,
    HttpStatus,
    UpstreamUnavailable,
    Timeout,
    TooLarge,
    TooManyRedirects,
    /// The image host's fetch schedule is full for longer than a worker may wait: the job is
    /// tried again later.
    HostRateLimited,
    BlockedDestination,
    BlockedDomain,
    // Decoding and analysing.
    NotAnImage,
    UnsupportedFormat,
    DecodeFailed,
    ImageTooLarge,
    ModelUnavailable,
    InferenceFailed,
    /// The result would exceed the stored result's size limit.
    ResultTooLarge,
    // Job lifecycle.
    Poison,
    Cancelled,
}

impl ErrorCode {
    /// The stable snake_case string clients see.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidUrl => "invalid_url",
            Self::InvalidTask => "invalid_task",
            Self::InvalidMinScore => "invalid_min_score",
            Self::InvalidDream => "invalid_dream",
            Self::InvalidCacheMode => "invalid_cache_mode",
            Self::InvalidJson => "invalid_json",
            Self::InvalidJobId => "invalid_job_id",
            Self::InvalidBatchId => "invalid_batch_id",
            Self::InvalidItem => "invalid_item",
            Self::InvalidExternalId => "invalid_external_id",
            Self::LineTooLong => "line_too_long",
            Self::InvalidWebhookUrl => "invalid_webhook_url",
            Self::WebhookSecretMissing => "webhook_secret_missing",
            Self::InvalidCursor => "invalid_cursor",
            Self::TooManyItems => "too_many_items",
            Self::PayloadTooLarge => "payload_too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::EmptyUpload => "empty_upload",
            Self::MissingFilePart => "missing_file_part",
            Self::UnknownPart => "unknown_part",
            Self::InvalidMultipart => "invalid_multipart",
            Self::JobNotFound => "job_not_found",
            Self::BatchNotFound => "batch_not_found",
            Self::ArtifactNotFound => "artifact_not_found",
            Self::JobAlreadyFinished => "job_already_finished",
            Self::InvalidIdempotencyKey => "invalid_idempotency_key",
            Self::IdempotencyKeyReused => "idempotency_key_reused",
            Self::InvalidName => "invalid_name",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidQuery => "invalid_query",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::UriTooLong => "uri_too_long",
            Self::RequestTimeout => "request_timeout",
            Self::ClientClosed => "client_closed",
            Self::DuplicateHeader => "duplicate_header",
            Self::HeadersTooLarge => "headers_too_large",
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::Forbidden => "forbidden",
            Self::InsufficientScope => "insufficient_scope",
            Self::KeyNotFound => "key_not_found",
            Self::AccountNotFound => "account_not_found",
            Self::AmbiguousAccount => "ambiguous_account",
            Self::LimitTooHigh => "limit_too_high",
            Self::RateLimited => "rate_limited",
            Self::QuotaExceeded => "quota_exceeded",
            Self::TooManyRequestsInFlight => "too_many_requests_in_flight",
            Self::SignupClosed => "signup_closed",
            Self::EmailTaken => "email_taken",
            Self::InvalidSignup => "invalid_signup",
            Self::InvalidCredentials => "invalid_credentials",
            Self::LoginThrottled => "login_throttled",
            Self::CsrfFailed => "csrf_failed",
            Self::ServiceUnavailable => "service_unavailable",
            Self::Internal => "internal",
            Self::FetchFailed => "fetch_failed",
            Self::TlsFailed => "tls_failed",
            Self::HttpStatus => "http_status",
            Self::UpstreamUnavailable => "upstream_unavailable",
            Self::Timeout => "timeout",
            Self::TooLarge => "too_large",
            Self::TooManyRedirects => "too_many_redirects",
            Self::HostRateLimited => "host_rate_limited",
            Self::BlockedDestination => "blocked_destination",
            Self::BlockedDomain => "blocked_domain",
            Self::NotAnImage => "not_an_image",
            Self::UnsupportedFormat => "unsupported_format",
            Self::DecodeFailed => "decode_failed",
            Self::ImageTooLarge => "image_too_large",
            Self::ModelUnavailable => "model_unavailable",
            Self::InferenceFailed => "inference_failed",
            Self::ResultTooLarge => "result_too_large",
            Self::Poison => "poison",
            Self::Cancelled => "cancelled",
        }
    }

    /// Whether a job failing with this code may succeed if simply tried again later
    /// (network blips, overloaded hosts, our own infrastructure), as opposed to failing
    /// for a reason that another attempt cannot change (bad URL, not an image).
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            Self::FetchFailed
                | Self::UpstreamUnavailable
                | Self::Timeout
                | Self::ServiceUnavailable
                | Self::Internal
                | Self::ModelUnavailable
                | Self::HostRateLimited
        )
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The `{code, message}` pair stored on a failed job and wrapped in the API's error envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

impl ErrorBody {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The envelope every endpoint and `imgmeta analyze` use: `{"error": {"code", "message"}}`.
    pub fn envelope(&self) -> serde_json::Value {
        serde_json::json!({ "error": self })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_names_match_the_stable_strings() {
        for code in [
            ErrorCode::InvalidUrl,
            ErrorCode::JobNotFound,
            ErrorCode::ArtifactNotFound,
            ErrorCode::JobAlreadyFinished,
            ErrorCode::IdempotencyKeyReused,
            ErrorCode::HttpStatus,
            ErrorCode::TlsFailed,
            ErrorCode::NotAnImage,
            ErrorCode::ImageTooLarge,
            ErrorCode::BlockedDestination,
            ErrorCode::UriTooLong,
            ErrorCode::Unauthorized,
            ErrorCode::Forbidden,
            ErrorCode::InsufficientScope,
            ErrorCode::KeyNotFound,
            ErrorCode::AccountNotFound,
            ErrorCode::AmbiguousAccount,
            ErrorCode::LimitTooHigh,
            ErrorCode::InvalidScope,
            ErrorCode::InvalidName,
            ErrorCode::InvalidQuery,
            ErrorCode::RateLimited,
            ErrorCode::QuotaExceeded,
            ErrorCode::TooManyRequestsInFlight,
            ErrorCode::ClientClosed,
            ErrorCode::DuplicateHeader,
            ErrorCode::HeadersTooLarge,
            ErrorCode::BadRequest,
            ErrorCode::HostRateLimited,
            ErrorCode::ResultTooLarge,
            ErrorCode::EmptyUpload,
            ErrorCode::MissingFilePart,
            ErrorCode::UnknownPart,
            ErrorCode::InvalidMultipart,
            ErrorCode::InvalidDream,
            ErrorCode::InvalidCacheMode,
            ErrorCode::InvalidBatchId,
            ErrorCode::InvalidItem,
            ErrorCode::InvalidExternalId,
            ErrorCode::LineTooLong,
            ErrorCode::TooManyItems,
            ErrorCode::BatchNotFound,
            ErrorCode::InvalidWebhookUrl,
            ErrorCode::WebhookSecretMissing,
            ErrorCode::InvalidCursor,
            ErrorCode::SignupClosed,
            ErrorCode::EmailTaken,
            ErrorCode::InvalidSignup,
            ErrorCode::InvalidCredentials,
            ErrorCode::LoginThrottled,
            ErrorCode::CsrfFailed,
        ] {
            let json = serde_json::to_value(code).unwrap();
            assert_eq!(json, serde_json::Value::String(code.as_str().to_owned()));
        }
    }

    #[test]
    fn network_failures_retry_and_content_failures_do_not() {
        assert!(ErrorCode::Timeout.is_retryable());
        assert!(ErrorCode::FetchFailed.is_retryable());
        assert!(!ErrorCode::NotAnImage.is_retryable());
        assert!(!ErrorCode::HttpStatus.is_retryable());
        assert!(!ErrorCode::BlockedDestination.is_retryable());
    }
}
