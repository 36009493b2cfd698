//! Accepting a job, shared by `/v1/jobs` and `/img`: one transaction records the job, an
//! uploaded image (its input) and the message owed to the broker (the outbox); the relay
//! publishes it.

use crate::auth::Caller;
use crate::{ApiError, AppState};
use axum::http::StatusCode;
use chrono::{Timelike, Utc};
use imgmeta_domain::analysis::{CacheInfo, Cut, cacheable};
use imgmeta_domain::{ErrorCode, JobId, JobSpec, Source, Upload};
use imgmeta_store::{Idempotency, JobAdmission, JobRecord, NewJob, Submitted, UrlEntry};

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
    let admission = admission(state, caller, &spec).await?;
    let new = NewJob {
        id: JobId::new(),
        owner: caller.owner(),
        spec,
        input,
        idempotency,
        trace_parent: imgmeta_telemetry::context::current_traceparent(),
        admission,
    };
    // Answers from the cache are recorded in groups: under a viral burst they are most of
    // the submissions, and one statement records dozens.
    let submitted = match &state.url_cache {
        Some(policy) if imgmeta_store::is_answered(&new) => policy.answered.insert(new).await?,
        _ => state.store.insert_job(&new).await?,
    };
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

/// How the URL cache admits a job: answered at once from a fresh entry (or from a stale one
/// while another job refreshes it, or with a URL's remembered error), else queued under the
/// URL's single flight. Uploads, uncacheable requests and a cache that is off queue as usual.
/// A fresh entry this process read a moment ago answers without reading it again
/// ([`crate::HotEntries`]).
async fn admission(
    state: &AppState,
    caller: &Caller,
    spec: &JobSpec,
) -> Result<JobAdmission, ApiError> {
    let (Some(policy), Source::Url(url)) = (&state.url_cache, &spec.source) else {
        return Ok(JobAdmission::Queued);
    };
    if !cacheable(&spec.tasks, spec.min_score, spec.bypass_cache) {
        metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "bypass").increment(1);
        return Ok(JobAdmission::Queued);
    }
    let key = url.cache_key();
    // The hot copy answers only what it can answer outright; anything else reads PostgreSQL.
    // A request that misses the copy while another request here reads the entry waits for
    // that read (a moment at most) and tries the copy again.
    let mut _reading = None;
    if let Some(hot) = &policy.hot {
        if let Some(admission) = from_hot(hot, policy, caller, spec, &key) {
            return Ok(admission);
        }
        match hot.read_or_wait(&key) {
            Ok(reading) => _reading = Some(reading),
            Err(done) => {
                let _ = tokio::time::timeout(crate::hot_entries::READ_WAIT, done).await;
                if let Some(admission) = from_hot(hot, policy, caller, spec, &key) {
                    return Ok(admission);
                }
            }
        }
    }
    let ticket = policy.hot.as_ref().map(crate::HotEntries::before_read);
    let found = state.store.lookup_url(&key, caller.account).await?;
    if let (Some(hot), Some(ticket), Some(entry)) = (&policy.hot, ticket, &found.entry) {
        hot.keep(&key, entry, ticket);
    }
    let view = Found {
        entry: found.entry.as_ref(),
        elapsed_s: 0.0,
        in_flight: found.in_flight,
        redact_gps: found.redact_gps,
    };
    let (admission, result) = decide(view, spec, policy.max_stale, &key);
    if let (JobAdmission::Answered { .. }, Some(entry)) = (&admission, &found.entry) {
        policy.hits.add(&key, &entry.model);
    }
    metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => result).increment(1);
    Ok(admission)
}

/// The answer from this process's copy of the URL's entry, when it can answer outright.
fn from_hot(
    hot: &crate::HotEntries,
    policy: &crate::UrlCacheAdmission,
    caller: &Caller,
    spec: &JobSpec,
    key: &str,
) -> Option<JobAdmission> {
    let redact_gps = caller.redact_gps()?;
    let held = hot.get(key)?;
    let found = Found {
        entry: Some(&held.entry),
        elapsed_s: held.elapsed_s(),
        in_flight: false,
        redact_gps,
    };
    let (admission @ JobAdmission::Answered { .. }, result) =
        decide(found, spec, policy.max_stale, key)
    else {
        return None;
    };
    policy.hits.add(key, &held.entry.model);
    metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => result).increment(1);
    Some(admission)
}

/// What a lookup found: the entry, read `elapsed_s` ago (its age and freshness move on by
/// that much), whether a flight for the URL is under way, and the asking account's GPS
/// setting.
struct Found<'a> {
    entry: Option<&'a UrlEntry>,
    elapsed_s: f64,
    in_flight: bool,
    redact_gps: bool,
}

/// The URL cache's rules for one lookup, and the lookup's result for the metric.
fn decide(
    found: Found<'_>,
    spec: &JobSpec,
    max_stale: std::time::Duration,
    key: &str,
) -> (JobAdmission, &'static str) {
    let Some(entry) = found.entry else {
        return (JobAdmission::Flight(key.to_owned()), "miss");
    };
    let age_s = entry.age_s + found.elapsed_s;
    let fresh_for_s = entry.fresh_for_s - found.elapsed_s;
    if let Some(error) = &entry.error {
        if fresh_for_s > 0.0 {
            let info = CacheInfo::new("hit", Some("url"), age_s);
            let result = serde_json::json!({ "cache": info });
            let error = Some(error.clone());
            return (JobAdmission::Answered { result, error }, "negative");
        }
        return (JobAdmission::Flight(key.to_owned()), "miss");
    }
    if !entry.analysis.covers(&spec.tasks) {
        return (JobAdmission::Flight(key.to_owned()), "miss");
    }
    let cut = Cut {
        tasks: &spec.tasks,
        min_score: spec.min_score,
        redact_gps: found.redact_gps,
    };
    if fresh_for_s > 0.0 && !entry.must_revalidate {
        let info = CacheInfo::new("hit", Some("url"), age_s);
        let result = entry.analysis.answer(cut, &info);
        return (
            JobAdmission::Answered {
                result,
                error: None,
            },
            "hit",
        );
    }
    // Stale: served while another job revalidates it (grace mode), unless the origin said
    // no-cache; otherwise this job revalidates it, and those after it wait or get it stale.
    let grace = -fresh_for_s <= max_stale.as_secs_f64();
    if found.in_flight && grace && !entry.must_revalidate {
        let info = CacheInfo::new("stale", Some("url"), age_s);
        let result = entry.analysis.answer(cut, &info);
        return (
            JobAdmission::Answered {
                result,
                error: None,
            },
            "stale",
        );
    }
    (JobAdmission::Flight(key.to_owned()), "revalidate")
}

pub(crate) fn secs_to_utc_midnight() -> u64 {
    let now = Utc::now();
    u64::from(86_400 - now.num_seconds_from_midnight()).max(1)
}
