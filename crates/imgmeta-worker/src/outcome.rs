//! The one place that decides what a run's result means for the job: success, final failure,
//! or another attempt later.

use imgmeta_domain::{ErrorBody, ErrorCode};
use imgmeta_pipeline::{AnalysisError, JobResult};
use std::time::Duration;

pub(crate) enum Outcome {
    Succeeded(serde_json::Value),
    Failed(ErrorBody),
    Retry { error: ErrorBody, delay: Duration },
}

/// Transient errors (`ErrorCode::is_retryable`) are retried with exponential backoff and full
/// jitter until the job has had `max_attempts` runs; every other error ends the job at once.
pub(crate) fn decide(
    result: Result<JobResult, AnalysisError>,
    attempt: i32,
    max_attempts: i32,
    retry_base: Duration,
) -> Outcome {
    match result {
        Ok(result) => match serde_json::to_value(&result) {
            Ok(value) => Outcome::Succeeded(value),
            Err(err) => Outcome::Failed(ErrorBody::new(
                ErrorCode::Internal,
                format!("result could not be serialised: {err}"),
            )),
        },
        Err(err) if err.is_retryable() && attempt < max_attempts => Outcome::Retry {
            error: err.body(),
            delay: backoff(attempt, retry_base),
        },
        Err(err) => {
            let mut body = err.body();
            if err.is_retryable() {
                body.message = format!("{} (gave up after {attempt} attempts)", body.message);
            }
            Outcome::Failed(body)
        }
    }
}

/// `base · 2^(attempt-1)`, capped at 10 minutes, with full jitter so that jobs failing
/// together do not retry together.
fn backoff(attempt: i32, base: Duration) -> Duration {
    let exp = base
        .saturating_mul(1 << (attempt - 1).clamp(0, 16))
        .min(Duration::from_secs(600));
    let jittered = exp.mul_f64(0.5 + rand::random::<f64>() * 0.5);
    // Whole milliseconds: PostgreSQL intervals have microsecond precision and sqlx refuses to
    // encode a Duration with nanoseconds.
    Duration::from_millis(jittered.as_millis().max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transient() -> AnalysisError {
        AnalysisError::new(ErrorCode::Timeout, "the image host did not answer")
    }

    #[test]
    fn transient_errors_retry_until_the_last_attempt() {
        let base = Duration::from_secs(1);
        assert!(matches!(
            decide(Err(transient()), 1, 5, base),
            Outcome::Retry { .. }
        ));
        assert!(matches!(
            decide(Err(transient()), 4, 5, base),
            Outcome::Retry { .. }
        ));
        match decide(Err(transient()), 5, 5, base) {
            Outcome::Failed(body) => {
                assert_eq!(body.code, ErrorCode::Timeout);
                assert!(body.message.contains("after 5 attempts"));
            }
            _ => panic!("the last attempt must fail the job"),
        }
    }

    #[test]
    fn permanent_errors_fail_at_once() {
        let err = AnalysisError::new(ErrorCode::NotAnImage, "text/html");
        assert!(matches!(
            decide(Err(err), 1, 5, Duration::from_secs(1)),
            Outcome::Failed(_)
        ));
    }

    #[test]
    fn backoff_grows_exponentially_with_jitter() {
        let base = Duration::from_secs(1);
        for attempt in 1..=6 {
            let full = base * (1 << (attempt - 1));
            let d = backoff(attempt, base);
            assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
        }
        assert!(backoff(40, base) <= Duration::from_secs(600));
        assert_eq!(
            backoff(3, Duration::from_millis(7)).subsec_nanos() % 1_000_000,
            0
        );
    }
}
