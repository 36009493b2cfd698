//! The pipeline's error: whichever stage failed, as a stable code and a message.

use imgmeta_domain::{ErrorBody, ErrorCode};
use std::time::Duration;

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AnalysisError {
    code: ErrorCode,
    message: String,
    /// Set when trying again sooner is pointless (a host busy under the per-host rate limit).
    retry_after: Option<Duration>,
}

impl AnalysisError {
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    /// The earliest another attempt could succeed, when the failure says.
    pub fn retry_after(&self) -> Option<Duration> {
        self.retry_after
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code, self.message.clone())
    }

    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    /// Says that another attempt should wait at least `after`.
    pub fn with_retry_after(mut self, after: Duration) -> Self {
        self.retry_after = Some(after);
        self
    }

    pub(crate) fn internal(message: String) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub(crate) fn model_unavailable(reason: String) -> Self {
        Self::new(
            ErrorCode::ModelUnavailable,
            format!("object detection is unavailable: {reason}"),
        )
    }
}

impl From<imgmeta_fetch::FetchError> for AnalysisError {
    fn from(err: imgmeta_fetch::FetchError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
            retry_after: err.retry_after(),
        }
    }
}

impl From<imgmeta_metadata::MetadataError> for AnalysisError {
    fn from(err: imgmeta_metadata::MetadataError) -> Self {
        Self::new(err.code(), err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_host_carries_its_retry_after_into_the_analysis_error() {
        let fetch = imgmeta_fetch::FetchError::HostRateLimited {
            host: "victim.example".to_owned(),
            retry_after: Duration::from_millis(7500),
        };

        let err = AnalysisError::from(fetch);

        assert_eq!(err.code(), ErrorCode::HostRateLimited);
        assert!(err.is_retryable());
        assert_eq!(err.retry_after(), Some(Duration::from_millis(7500)));
        assert!(err.to_string().contains("victim.example"), "{err}");
        let other = AnalysisError::new(ErrorCode::Timeout, "slow");
        assert_eq!(other.retry_after(), None);
    }
}
