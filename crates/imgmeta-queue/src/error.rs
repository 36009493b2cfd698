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
    /// RabbitMQ answers `541 INTERNAL_ERROR` to queue declarations for a moment after it
    /// starts (its quorum-queue subsystem is not up yet): retried quietly, then reported.
    #[error("the broker is not ready yet (541 INTERNAL_ERROR; it is probably still starting): {0}")]
    NotReady(String),
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
        match err.kind() {
            lapin::ErrorKind::ProtocolError(amqp) if amqp.get_id() == 541 => {
                Self::NotReady(err.to_string())
            }
            _ => Self::Unavailable(err.to_string()),
        }
    }
}

/// Runs `attempt` again while the broker answers [`QueueError::NotReady`], for up to about
/// 15 s (0.25 s, doubling to 2 s), logging those retries at debug level only: a broker that
/// just started is not an error worth a warning. Any other outcome is returned at once.
pub(crate) async fn retry_while_starting<T, F, Fut>(mut attempt: F) -> Result<T, QueueError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, QueueError>>,
{
    let mut delay = std::time::Duration::from_millis(250);
    let mut waited = std::time::Duration::ZERO;
    loop {
        match attempt().await {
            Err(QueueError::NotReady(message)) if waited < std::time::Duration::from_secs(15) => {
                tracing::debug!(error = %message, "broker not ready; declaring again");
                tokio::time::sleep(delay).await;
                waited += delay;
                delay = (delay * 2).min(std::time::Duration::from_secs(2));
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{QueueError, retry_while_starting};
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_starting_broker_is_waited_for_and_other_errors_are_not() {
        let calls = AtomicUsize::new(0);
        let result = retry_while_starting(|| async {
            match calls.fetch_add(1, Ordering::SeqCst) {
                0 | 1 => Err(QueueError::NotReady("541".into())),
                _ => Ok(7),
            }
        })
        .await;
        assert_eq!(result.unwrap(), 7);
        assert_eq!(calls.load(Ordering::SeqCst), 3);

        let calls = AtomicUsize::new(0);
        let result: Result<(), _> = retry_while_starting(|| async {
            calls.fetch_add(1, Ordering::SeqCst);
            Err(QueueError::Timeout)
        })
        .await;
        assert!(matches!(result, Err(QueueError::Timeout)));
        assert_eq!(calls.load(Ordering::SeqCst), 1);

        // A broker that never becomes ready is reported after about 15 s.
        let started = tokio::time::Instant::now();
        let result: Result<(), _> =
            retry_while_starting(|| async { Err(QueueError::NotReady("541".into())) }).await;
        assert!(matches!(result, Err(QueueError::NotReady(_))));
        let waited = started.elapsed();
        assert!(waited >= std::time::Duration::from_secs(15), "{waited:?}");
        assert!(waited <= std::time::Duration::from_secs(18), "{waited:?}");
    }
}
