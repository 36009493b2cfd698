//! The pipeline's error: whichever stage failed, as a stable code and a message.

use imgmeta_domain::{ErrorBody, ErrorCode};

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct AnalysisError {
    code: ErrorCode,
    message: String,
}

impl AnalysisError {
    pub fn code(&self) -> ErrorCode {
        self.code
    }

    pub fn is_retryable(&self) -> bool {
        self.code.is_retryable()
    }

    pub fn body(&self) -> ErrorBody {
        ErrorBody::new(self.code, self.message.clone())
    }

    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub(crate) fn internal(message: String) -> Self {
        Self {
            code: ErrorCode::Internal,
            message,
        }
    }

    pub(crate) fn model_unavailable(reason: String) -> Self {
        Self {
            code: ErrorCode::ModelUnavailable,
            message: format!("object detection is unavailable: {reason}"),
        }
    }
}

impl From<imgmeta_fetch::FetchError> for AnalysisError {
    fn from(err: imgmeta_fetch::FetchError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}

impl From<imgmeta_metadata::MetadataError> for AnalysisError {
    fn from(err: imgmeta_metadata::MetadataError) -> Self {
        Self {
            code: err.code(),
            message: err.to_string(),
        }
    }
}
