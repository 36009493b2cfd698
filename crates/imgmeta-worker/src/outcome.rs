//! The one place that decides what a run's result means for the job: success, final failure,
//! another attempt later, or the same attempt later (its image host was busy).

use imgmeta_domain::{ErrorBody, ErrorCode};
use imgmeta_pipeline::{AnalysisError, Artifact, JobResult};
use std::time::Duration;

/// The largest result stored, as compact JSON. Results are read whole on every status poll,
/// so one bigger than this fails the job with `result_too_large` rather than being stored,
/// truncated or dropped.
pub(crate) const MAX_RESULT_BYTES: usize = 256 * 1024;

/// How long after its submission a job may be deferred for a busy host without the run
/// counting as one of its attempts. Waiting for a host under the per-host rate limit is no
/// fault of the job's, so it should not spend the attempts meant for failures; past this, each
/// deferral counts, so a job whose host is never free still ends (as `host_rate_limited`).
pub(crate) const FREE_HOST_DEFERRALS_FOR: Duration = Duration::from_secs(3600);

pub(crate) enum Outcome {
    /// The result as stored, and the images the job made (stored beside it).
    Succeeded(serde_json::Value, Vec<Artifact>),
    Failed(ErrorBody),
    Retry {
        error: ErrorBody,
        delay: Duration,
    },
    /// The image host's next turn was too far away to wait for holding a worker slot: run the
    /// job again after `delay`, without counting this run as an attempt (within
    /// `FREE_HOST_DEFERRALS_FOR`).
    Defer {
        error: ErrorBody,
        delay: Duration,
    },
}

/// Transient errors (`ErrorCode::is_retryable`) are retried with exponential backoff and full
/// jitter (never sooner than the error's `retry_after`) until the job has had `max_attempts`
/// runs; every other error ends the job at once. A busy host defers the job instead, even on
/// its last attempt, since the deferral does not spend it; a result over `MAX_RESULT_BYTES`
/// fails the job.
pub(crate) fn decide(
    result: Result<JobResult, AnalysisError>,
    attempt: i32,
    max_attempts: i32,
    retry_base: Duration,
) -> Outcome {
    match result {
        Ok(result) => succeeded(&result),
        Err(err) if err.code() == ErrorCode::HostRateLimited && attempt <= max_attempts => {
            Outcome::Defer {
                error: err.body(),
                delay: host_delay(err.retry_after().unwrap_or_default()),
            }
        }
        Err(err) if err.is_retryable() && attempt < max_attempts => Outcome::Retry {
            error: err.body(),
            delay: backoff(attempt, retry_base)
                .max(whole_ms(err.retry_after().unwrap_or_default())),
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

/// The result as it will be stored, unless its JSON is over `MAX_RESULT_BYTES`.
fn succeeded(result: &JobResult) -> Outcome {
    let value = match serde_json::to_value(result) {
        Ok(value) => value,
        Err(err) => {
            return Outcome::Failed(ErrorBody::new(
                ErrorCode::Internal,
                format!("result could not be serialised: {err}"),
            ));
        }
    };
    // Counting stops at the limit, so an enormous result is not written out in full just to
    // be refused.
    let mut size = CappedCount(0);
    if serde_json::to_writer(&mut size, &value).is_err() {
        return Outcome::Failed(ErrorBody::new(
            ErrorCode::ResultTooLarge,
            format!(
                "the result is more than {MAX_RESULT_BYTES} bytes of JSON, the most a job stores"
            ),
        ));
    }
    Outcome::Succeeded(value, result.files.clone())
}

/// Counts bytes written, failing once they pass `MAX_RESULT_BYTES`.
struct CappedCount(usize);

impl std::io::Write for CappedCount {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        if self.0 > MAX_RESULT_BYTES {
            return Err(std::io::Error::other("result too large"));
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// At least until the host's schedule is free, plus jitter so that jobs deferred together (a
/// fan-in) do not all come back in the same instant to find it full again.
fn host_delay(free_in: Duration) -> Duration {
    let spread = (free_in / 4).max(Duration::from_millis(250));
    whole_ms(free_in + spread.mul_f64(rand::random::<f64>()))
}

/// `base · 2^(attempt-1)`, capped at 10 minutes, with full jitter so that jobs failing
/// together do not retry together.
fn backoff(attempt: i32, base: Duration) -> Duration {
    let exp = base
        .saturating_mul(1 << (attempt - 1).clamp(0, 16))
        .min(Duration::from_secs(600));
    whole_ms(exp.mul_f64(0.5 + rand::random::<f64>() * 0.5))
}

/// Rounded up to whole milliseconds, at least one: PostgreSQL intervals have microsecond
/// precision and sqlx refuses to encode a Duration with nanoseconds.
fn whole_ms(duration: Duration) -> Duration {
    Duration::from_millis(duration.as_nanos().div_ceil(1_000_000).max(1) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgmeta_pipeline::Timings;

    fn transient() -> AnalysisError {
        AnalysisError::new(ErrorCode::Timeout, "the image host did not answer")
    }

    fn busy_host(free_in: Duration) -> AnalysisError {
        AnalysisError::new(ErrorCode::HostRateLimited, "victim.example is busy")
            .with_retry_after(free_in)
    }

    fn result_with_objects(objects: serde_json::Value) -> JobResult {
        JobResult {
            image: None,
            objects: Some(objects),
            dream: None,
            cache: None,
            artifacts: Vec::new(),
            timings_ms: Timings::default(),
            files: Vec::new(),
            kept: None,
        }
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
    fn a_busy_host_defers_the_job_until_its_turn_even_on_the_last_attempt() {
        let free_in = Duration::from_millis(7_300);
        for attempt in [1, 5] {
            match decide(
                Err(busy_host(free_in)),
                attempt,
                5,
                Duration::from_millis(50),
            ) {
                Outcome::Defer { error, delay } => {
                    assert_eq!(error.code, ErrorCode::HostRateLimited);
                    assert!(delay >= free_in, "{delay:?}");
                    assert!(delay <= free_in + free_in / 4, "{delay:?}");
                    assert_eq!(delay.subsec_nanos() % 1_000_000, 0);
                }
                _ => panic!("a busy host must defer the job (attempt {attempt})"),
            }
        }
    }

    #[test]
    fn a_job_still_busy_after_its_counted_attempts_fails_as_host_rate_limited() {
        // Past `FREE_HOST_DEFERRALS_FOR` deferrals count, so the attempt number passes the limit.
        match decide(Err(busy_host(Duration::from_secs(3))), 6, 5, Duration::ZERO) {
            Outcome::Failed(body) => {
                assert_eq!(body.code, ErrorCode::HostRateLimited);
                assert!(body.message.contains("gave up after 6 attempts"));
            }
            _ => panic!("a job past its attempts must fail"),
        }
    }

    #[test]
    fn a_retry_never_comes_sooner_than_the_errors_retry_after() {
        let err = AnalysisError::new(ErrorCode::UpstreamUnavailable, "503")
            .with_retry_after(Duration::from_secs(30));
        match decide(Err(err), 1, 5, Duration::from_millis(50)) {
            Outcome::Retry { delay, .. } => assert!(delay >= Duration::from_secs(30)),
            _ => panic!("a transient error must be retried"),
        }
    }

    #[test]
    fn a_deferral_to_a_free_host_still_waits_a_little() {
        let delay = host_delay(Duration::ZERO);
        assert!(delay >= Duration::from_millis(1) && delay <= Duration::from_millis(250));
    }

    #[test]
    fn a_result_up_to_256_kib_of_json_is_stored() {
        // `{"image":null,"objects":"…","timings_ms":{…}}` around the string: measure the frame.
        let frame = serde_json::to_vec(&result_with_objects(serde_json::json!(""))).unwrap();
        let fits = "a".repeat(MAX_RESULT_BYTES - frame.len());

        match decide(Ok(result_with_objects(fits.into())), 1, 5, Duration::ZERO) {
            Outcome::Succeeded(value, _) => {
                assert_eq!(serde_json::to_vec(&value).unwrap().len(), MAX_RESULT_BYTES);
            }
            _ => panic!("a result of exactly the limit must be stored"),
        }
    }

    #[test]
    fn a_result_over_256_kib_of_json_fails_the_job_with_result_too_large() {
        let frame = serde_json::to_vec(&result_with_objects(serde_json::json!(""))).unwrap();
        let one_over = "a".repeat(MAX_RESULT_BYTES - frame.len() + 1);
        let huge = "a".repeat(20 * MAX_RESULT_BYTES);

        for objects in [one_over, huge] {
            match decide(
                Ok(result_with_objects(objects.into())),
                1,
                5,
                Duration::ZERO,
            ) {
                Outcome::Failed(body) => {
                    assert_eq!(body.code, ErrorCode::ResultTooLarge);
                    assert!(!body.code.is_retryable());
                    assert!(body.message.contains("262144"), "{}", body.message);
                }
                _ => panic!("an oversized result must fail the job"),
            }
        }
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
