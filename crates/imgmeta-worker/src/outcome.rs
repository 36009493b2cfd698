//! The one place that decides what a pipeline result means for the job.

use imgmeta_domain::ErrorBody;
use imgmeta_pipeline::{AnalysisError, JobResult};

pub(crate) enum Outcome {
    Succeeded(serde_json::Value),
    Failed(ErrorBody),
}

/// Turns the pipeline's answer into the stored outcome.
///
/// Every error currently ends the job; retrying transient failures (error codes whose
/// `is_retryable()` is true) with backoff belongs to the reliability work and will be decided
/// here, in one place.
pub(crate) fn decide(result: Result<JobResult, AnalysisError>) -> Outcome {
    match result {
        Ok(result) => match serde_json::to_value(&result) {
            Ok(value) => Outcome::Succeeded(value),
            Err(err) => Outcome::Failed(ErrorBody::new(
                imgmeta_domain::ErrorCode::Internal,
                format!("result could not be serialised: {err}"),
            )),
        },
        Err(err) => Outcome::Failed(err.body()),
    }
}
