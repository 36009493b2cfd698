//! The queue layer's error type.

use imgmeta_domain::ErrorCode;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("message broker unavailable: {0}")]
    Unavailable(String),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker could not route the message to a queue")]
    Unroutable,
    #[error("timed out waiting for the broker")]
    Timeout,
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("broker configuration: {0}")]
    Config(String),
}

impl QueueError {
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::Config(_) => ErrorCode::Internal,
            _ => ErrorCode::ServiceUnavailable,
        }
    }

    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Malformed(_) | Self::Config(_))
    }
}

impl From<lapin::Error> for QueueError {
    fn from(err: lapin::Error) -> Self {
        Self::Unavailable(err.to_string())
    }
}
