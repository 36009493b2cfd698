//! Accepting a job: record it, then hand it to the broker, shared by `/v1/jobs` and `/img`.

use crate::{ApiError, AppState};
use imgmeta_domain::{JobId, JobSpec};
use imgmeta_queue::JobMessage;
use imgmeta_store::{JobRecord, NewJob};

/// Records the job and publishes its message, answering only after the broker confirmed it.
///
/// The row is committed before the message exists, so a worker never sees a message for a job
/// it cannot find. If publishing fails, the still-queued row is removed again and the client is
/// told to retry: an accepted job always has a message, a refused one leaves nothing behind.
pub(crate) async fn submit(state: &AppState, spec: JobSpec) -> Result<JobRecord, ApiError> {
    let job = state
        .store
        .insert_job(&NewJob {
            id: JobId::new(),
            spec,
        })
        .await?;
    if let Err(err) = state
        .publisher
        .publish(&JobMessage { job_id: job.id })
        .await
    {
        tracing::warn!(kind = "error", job.id = %job.id, error = %err, "publishing failed; withdrawing the job");
        if let Err(cleanup) = state.store.withdraw_queued(job.id).await {
            tracing::error!(kind = "error", job.id = %job.id, error = %cleanup, "could not withdraw an unpublished job");
        }
        return Err(ApiError::unavailable("the message broker is unavailable"));
    }
    tracing::info!(kind = "analytics", event = "job_submitted", job.id = %job.id, image.url_host = %job.spec.url.host_str(), "job accepted");
    Ok(job)
}
