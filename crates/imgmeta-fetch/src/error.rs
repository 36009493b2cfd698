//! `FetchError`: every way a fetch can fail, each with its stable code and a human message.

use crate::{BlockReason, DomainRefusal};
use imgmeta_domain::ErrorCode;
use std::net::IpAddr;
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// A failed fetch. `code()` says what the job fails with (and whether it is worth retrying);
/// the `Display` text is the human message stored alongside the code.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{url}: {problem}")]
    InvalidUrl { url: String, problem: String },
    #[error("{url} is refused: only http and https are fetched, not {scheme}")]
    BlockedScheme { url: String, scheme: String },
    #[error("{url} is refused: URLs carrying credentials are never fetched")]
    BlockedCredentials { url: String },
    #[error("destination {host} is refused: address {address} {reason}")]
    BlockedAddress {
        host: String,
        address: IpAddr,
        reason: BlockReason,
    },
    #[error("destination {host} is refused: port {port} is not an allowed port")]
    BlockedPort { host: String, port: u16 },
    #[error(transparent)]
    BlockedDomain(#[from] DomainRefusal),
    #[error("could not resolve {host}: {source}")]
    Resolve {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolved to no addresses")]
    NoAddresses { host: String },
    #[error("could not connect to {host}: {source}")]
    Connect {
        host: String,
        #[source]
        source: BoxError,
    },
    #[error("{host} presented a certificate that is refused: {source}")]
    Certificate {
        host: String,
        #[source]
        source: BoxError,
    },
    #[error("request to {host} failed: {source}")]
    Request {
        host: String,
        #[source]
        source: BoxError,
    },
    #[error("timed out after {} ms {stage}", after.as_millis())]
    Timeout {
        stage: &'static str,
        after: Duration,
    },
    #[error("{}", too_large_message(*limit, *declared))]
    TooLarge { limit: u64, declared: Option<u64> },
    #[error("more than {limit} redirects")]
    TooManyRedirects { limit: u8 },
    #[error("{url} answered HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("{url} answered a {status} redirect {problem}")]
    BadRedirect {
        url: String,
        status: u16,
        problem: String,
    },
    #[error("{url} answered with an empty body")]
    EmptyBody { url: String },
    #[error(
        "{host} is busy under the per-host fetch rate limit: its next turn is {} ms away",
        retry_after.as_millis()
    )]
    HostRateLimited { host: String, retry_after: Duration },
    #[error("could not build the HTTP client: {0}")]
    Client(#[source] BoxError),
}

fn too_large_message(limit: u64, declared: Option<u64>) -> String {
    match declared {
        Some(len) => format!("the image is {len} bytes, more than the limit of {limit} bytes"),
        None => format!("the image is larger than the limit of {limit} bytes"),
    }
}

impl FetchError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::InvalidUrl { .. } => ErrorCode::InvalidUrl,
            Self::BlockedScheme { .. }
            | Self::BlockedCredentials { .. }
            | Self::BlockedAddress { .. }
            | Self::BlockedPort { .. } => ErrorCode::BlockedDestination,
            Self::BlockedDomain(refusal) => refusal.code(),
            Self::Resolve { .. }
            | Self::NoAddresses { .. }
            | Self::Connect { .. }
            | Self::Request { .. } => ErrorCode::FetchFailed,
            Self::Certificate { .. } => ErrorCode::TlsFailed,
            Self::Timeout { .. } => ErrorCode::Timeout,
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::TooManyRedirects { .. } => ErrorCode::TooManyRedirects,
            // Only what HTTP defines as the server's trouble is worth another try; a status
            // outside the standard range (LinkedIn's 999) is a refusal like any 4xx.
            Self::Status { status, .. } if *status == 429 || (500..=599).contains(status) => {
                ErrorCode::UpstreamUnavailable
            }
            Self::Status { .. } | Self::BadRedirect { .. } => ErrorCode::HttpStatus,
            Self::EmptyBody { .. } => ErrorCode::NotAnImage,
            Self::HostRateLimited { .. } => ErrorCode::HostRateLimited,
            Self::Client(_) => ErrorCode::Internal,
        }
    }

    /// Whether another attempt later could succeed (network blips, overloaded upstreams).
    pub fn is_retryable(&self) -> bool {
        self.code().is_retryable()
    }

    /// How long to wait before trying again, when the failure says (a host busy under the
    /// per-host rate limit); retrying sooner would only fail the same way.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::HostRateLimited { retry_after, .. } => Some(*retry_after),
            _ => None,
        }
    }

    /// The `{code, message}` pair a failed job stores.
    pub fn to_body(&self) -> imgmeta_domain::ErrorBody {
        imgmeta_domain::ErrorBody::new(self.code(), self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::FetchError;

    fn status(status: u16) -> FetchError {
        FetchError::Status {
            url: "http://example.com/a.jpg".into(),
            status,
        }
    }

    #[test]
    fn only_server_errors_and_429_are_worth_another_try() {
        for retried in [429, 500, 503, 599] {
            assert!(status(retried).is_retryable(), "{retried}");
        }
        for refused in [400, 403, 404, 410, 451, 600, 999] {
            assert!(!status(refused).is_retryable(), "{refused}");
            assert_eq!(status(refused).code().as_str(), "http_status");
        }
    }
}
