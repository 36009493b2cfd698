//! Accepting a job, shared by `/v1/jobs` and `/img`: one transaction records the job, an
//! uploaded image (its input) and the message owed to the broker (the outbox); the relay
//! publishes it.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::http::StatusCode;
use chrono::{Timelike, Utc};
use imgmeta_domain::{ErrorCode, JobId, JobSpec, Source, Upload};
use imgmeta_store::{Idempotency, JobRecord, NewJob, Submitted};

/// A submission's outcome as the client sees it.
pub(crate) enum Accepted {
    Created(JobRecord),
    /// An idempotent repeat: the original job.
    Replayed(JobRecord),
}

/// Records the job. Once the transaction commits the job is accepted: the relay publishes its
/// message whenever the broker is reachable. While the broker is down, submissions are still
/// accepted until the outbox holds `max_outbox_backlog` messages; then 503 with Retry-After.
/// The job belongs to the caller's account and is charged to its key's and account's daily
/// quotas; an idempotent replay (within the account) is charged nothing.
/// Its span carries the job's id, which joins it to the worker's spans for the same job.
#[tracing::instrument(name = "submit", skip_all, fields(job.id = tracing::field::Empty))]
pub(crate) async fn submit(
    state: &AppState,
    caller: &Caller,
    spec: JobSpec,
    input: Option<Upload>,
    idempotency: Option<Idempotency>,
) -> Result<Accepted, ApiError> {
    if let Source::Url(url) = &spec.source {
        state.security.check_destination(url)?;
    }
    if !state.broker.is_up() {
        let backlog = state.store.outbox_backlog(state.max_outbox_backlog).await?;
        if backlog >= state.max_outbox_backlog {
            tracing::warn!(
                kind = "error",
                backlog,
                "broker down and outbox full; refusing submissions"
            );
            return Err(ApiError::unavailable(
                "the message broker is unavailable and the backlog is full",
            ));
        }
    }
    let new = NewJob {
        id: JobId::new(),
        owner: caller.owner(),
        spec,
        input,
        idempotency,
        trace_parent: imgmeta_telemetry::context::current_traceparent(),
    };
    let submitted = state.store.insert_job(&new).await?;
    if let Submitted::Created(job) | Submitted::Existing(job) = &submitted {
        tracing::Span::current().record("job.id", tracing::field::display(&job.id));
    }
    match submitted {
        Submitted::Created(job) => {
            metrics::counter!(imgmeta_telemetry::JOBS_SUBMITTED).increment(1);
            match &job.spec.source {
                Source::Url(url) => tracing::info!(
                    kind = "analytics",
                    event = "job_submitted",
                    job.id = %job.id,
                    image.source = "url",
                    image.url_host = %url.host_str(),
                    "job accepted"
                ),
                Source::Upload(digest) => tracing::info!(
                    kind = "analytics",
                    event = "job_submitted",
                    job.id = %job.id,
                    image.source = "upload",
                    image.bytes = digest.bytes(),
                    "job accepted"
                ),
            }
            Ok(Accepted::Created(job))
        }
        Submitted::Existing(job) => Ok(Accepted::Replayed(job)),
        Submitted::KeyReused => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::IdempotencyKeyReused,
            "this Idempotency-Key was already used with a different request",
        )),
        Submitted::QuotaExceeded => {
            tracing::warn!(
                kind = "security",
                event = "quota_exceeded",
                key.prefix = %caller.key_prefix(),
                account.id = %caller.account,
                "submission refused: daily quota used up"
            );
            Err(ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                ErrorCode::QuotaExceeded,
                "daily submission quota (of the key or its account) used up; it renews at 00:00 UTC",
            )
            .with_retry_after(secs_to_utc_midnight()))
        }
    }
}

fn secs_to_utc_midnight() -> u64 {
    let now = Utc::now();
    u64::from(86_400 - now.num_seconds_from_midnight()).max(1)
}
