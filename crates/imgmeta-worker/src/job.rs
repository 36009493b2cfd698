//! Handling one delivery: claim, run with a renewed lease (fetching the image, or reading an
//! uploaded one from the store), store the outcome, then settle.

use crate::TestHooks;
use crate::outcome::{FREE_HOST_DEFERRALS_FOR, Outcome, decide};
use crate::url_cache::Leading;
use imgmeta_domain::{ErrorCode, JobId, JobSpec, Source};
use imgmeta_pipeline::{AnalysisError, Analyzer, JobResult, Request};
use imgmeta_queue::JobDelivery;
use imgmeta_store::{Claim, FlightEnd, NewArtifact, NewContent, Store, StoreError};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub(crate) struct Shared {
    pub store: Store,
    pub analyzer: Arc<Analyzer>,
    pub worker_id: String,
    pub lease: Duration,
    pub max_attempts: i32,
    pub retry_base: Duration,
    pub hooks: TestHooks,
    pub url_cache: Option<crate::UrlCachePolicy>,
    pub content_cache_max_entries: Option<i64>,
    /// Analyses this process wrote to the content cache: every `EVICT_EVERY`th evicts.
    pub content_writes: std::sync::atomic::AtomicU64,
}

/// The content cache is trimmed to its bound once every this many analyses written.
const EVICT_EVERY: u64 = 64;

pub(crate) async fn handle(shared: &Shared, delivery: JobDelivery, hand_back: CancellationToken) {
    let message = match &delivery.message {
        Ok(message) => *message,
        Err(err) => {
            // Nothing can ever process it; keeping it would only block the queue.
            tracing::error!(kind = "error", error = %err, "dropping a malformed message");
            settle_ack(&delivery).await;
            return;
        }
    };
    let span =
        tracing::info_span!("job", job.id = %message.job_id, attempt = tracing::field::Empty);
    // The run joins the trace of the submission (each attempt is a child of it).
    imgmeta_telemetry::context::adopt_parent(&span, delivery.trace_parent.as_deref());
    run(shared, &delivery, message.job_id, hand_back)
        .instrument(span)
        .await;
}

async fn run(shared: &Shared, delivery: &JobDelivery, id: JobId, hand_back: CancellationToken) {
    let Some((attempt, spec, redact_gps, stored_url)) =
        claim(shared, delivery, id, &hand_back).await
    else {
        return;
    };
    tracing::Span::current().record("attempt", attempt);
    match &spec.source {
        Source::Url(url) => {
            tracing::info!(image.source = "url", image.url_host = %url.host_str(), "job started")
        }
        Source::Upload(digest) => {
            tracing::info!(
                image.source = "upload",
                image.bytes = digest.bytes(),
                "job started"
            )
        }
    }
    let _in_flight = InFlight::start();
    if let Some(needle) = &shared.hooks.crash_on_url_substring
        && spec
            .source
            .url()
            .is_some_and(|url| url.as_str().contains(needle.as_str()))
    {
        tracing::error!("IMGMETA_TEST_CRASH_ON_URL_SUBSTRING matched: aborting the process");
        std::process::abort();
    }
    let started = Instant::now();

    // The lease is renewed while the job runs; losing it (the job was cancelled, or a newer
    // run took over after this one stalled) stops this run, whose result could not be stored.
    let lost_lease = CancellationToken::new();
    let renewer = tokio::spawn(renew(
        shared.store.clone(),
        id,
        attempt,
        shared.lease,
        lost_lease.clone(),
    ));
    let request = Request {
        tasks: spec.tasks.clone(),
        min_score: spec.min_score,
        redact_gps,
        dream: spec.dream.clone().unwrap_or_default(),
        bypass_cache: spec.bypass_cache,
    };
    // A URL job the cache may answer leads its URL's flight (it was admitted under it).
    let leading = match (&shared.url_cache, &spec.source) {
        (Some(_), Source::Url(url))
            if imgmeta_domain::analysis::cacheable(
                &request.tasks,
                request.min_score,
                request.bypass_cache,
            ) =>
        {
            Some(Leading::new(url, shared.analyzer.model_version()))
        }
        _ => None,
    };
    let result = tokio::select! {
        result = analyze(shared, id, &spec.source, &request, leading.as_ref(), stored_url) => Some(result),
        _ = lost_lease.cancelled() => None,
        _ = hand_back.cancelled() => {
            renewer.abort();
            release(shared, delivery, id, attempt).await;
            return;
        }
    };
    renewer.abort();
    let Some(result) = result else {
        tracing::warn!("lease lost (cancelled or superseded); abandoning this run");
        settle_ack(delivery).await;
        return;
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let mut result = result;
    let kept = result.as_mut().ok().and_then(|r| r.kept.take());
    let outcome = decide(result, attempt, shared.max_attempts, shared.retry_base);
    let flight = match (&leading, &kept, &shared.url_cache) {
        (Some(leading), Some(kept), Some(policy)) => Some(leading.end(kept, policy)),
        // Led but nothing to share: the followers are handed over to run themselves.
        (Some(_), None, Some(_)) => Some(FlightEnd::default()),
        _ => None,
    };
    // An analysis this run made goes to the content cache in the job's own commit.
    let model = shared.analyzer.model_version();
    let content = kept
        .as_ref()
        .filter(|k| k.fresh && shared.content_cache_max_entries.is_some())
        .map(|k| NewContent {
            sha256: &k.sha256,
            model: &model,
            image: k.analysis.image.as_ref(),
            objects: k.analysis.objects.as_ref(),
        });
    let store_started = Instant::now();
    let stored = persist(&hand_back, || async {
        match &outcome {
            Outcome::Succeeded(result, files) => {
                let artifacts: Vec<NewArtifact<'_>> = files
                    .iter()
                    .map(|f| NewArtifact {
                        name: &f.info.name,
                        mime: &f.info.mime,
                        width: f.info.width,
                        height: f.info.height,
                        sha256: &f.info.sha256,
                        bytes: &f.bytes,
                    })
                    .collect();
                let done = shared
                    .store
                    .complete_leading(
                        id,
                        attempt,
                        result,
                        &artifacts,
                        flight.as_ref(),
                        content.as_ref(),
                    )
                    .await?;
                if let Some(followers) = done.filter(|n| *n > 0) {
                    metrics::counter!(imgmeta_telemetry::CACHE_LOOKUPS, "result" => "coalesced")
                        .increment(followers);
                    tracing::info!(followers, "completed the jobs waiting on this run");
                }
                Ok(done.is_some())
            }
            Outcome::Failed(error) => {
                let negative = match (&leading, &shared.url_cache) {
                    (Some(leading), Some(policy)) => leading.negative(error, policy),
                    _ => None,
                };
                shared
                    .store
                    .fail_leading(id, attempt, error, negative.as_ref())
                    .await
            }
            Outcome::Retry { error, delay } => {
                shared.store.retry_later(id, attempt, error, *delay).await
            }
            Outcome::Defer { error, delay } => {
                shared
                    .store
                    .defer_for_host(id, attempt, error, *delay, FREE_HOST_DEFERRALS_FOR)
                    .await
            }
        }
    })
    .instrument(tracing::info_span!("store"))
    .await;
    metrics::histogram!(imgmeta_telemetry::STAGE_DURATION, "stage" => "store")
        .record(store_started.elapsed().as_secs_f64());
    if let (Some(true), Some(_), Some(max_entries)) =
        (stored, &content, shared.content_cache_max_entries)
    {
        evict_now_and_then(shared, max_entries).await;
    }
    match stored {
        Some(true) => {
            record(&outcome);
            match &outcome {
                Outcome::Succeeded(..) => {
                    tracing::info!(
                        kind = "analytics",
                        event = "job_succeeded",
                        duration_ms,
                        "job succeeded"
                    )
                }
                Outcome::Failed(error) => tracing::info!(
                    kind = "analytics", event = "job_failed", code = %error.code, duration_ms,
                    message = %error.message, "job failed"
                ),
                Outcome::Retry { error, delay } => tracing::info!(
                    kind = "analytics", event = "job_retry_scheduled", code = %error.code, duration_ms,
                    retry_in_ms = delay.as_millis() as u64, message = %error.message, "job will be retried"
                ),
                Outcome::Defer { error, delay } => tracing::info!(
                    kind = "analytics", event = "job_deferred", code = %error.code, duration_ms,
                    retry_in_ms = delay.as_millis() as u64, message = %error.message,
                    "image host busy; job deferred until its turn"
                ),
            }
            if shared.hooks.crash_after_commit {
                tracing::error!("IMGMETA_TEST_CRASH_AFTER_COMMIT: aborting between commit and ack");
                std::process::abort();
            }
            settle_ack(delivery).await;
        }
        Some(false) => {
            tracing::warn!(
                "run no longer owns the job (cancelled or superseded); outcome discarded"
            );
            settle_ack(delivery).await;
        }
        // Shutting down with the database unreachable: leave the message unacknowledged; it
        // returns to the queue with the connection, and the lease expires for the reconciler.
        None if hand_back.is_cancelled() => {}
        // The database rejected the write: the lease expires and the reconciler re-queues the
        // job; this copy of the message goes back now.
        None => settle_requeue(delivery).await,
    }
}

/// Trims the content cache to `max_entries` once every `EVICT_EVERY` analyses this process
/// wrote (a failure is only logged: the next trim catches up).
async fn evict_now_and_then(shared: &Shared, max_entries: i64) {
    let writes = shared
        .content_writes
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    if writes.is_multiple_of(EVICT_EVERY)
        && let Err(e) = shared.store.evict_content(max_entries).await
    {
        tracing::warn!(kind = "error", error = %e, "content cache eviction failed");
    }
}

/// Runs the pipeline on the job's image: fetched from its URL, or its uploaded bytes read from
/// the store (never written to disk) and analysed as fetched bytes are, with the same decode
/// limits; reading them is reported as the `fetch` stage.
async fn analyze(
    shared: &Shared,
    id: JobId,
    source: &Source,
    request: &Request,
    leading: Option<&Leading>,
    stored_url: Option<imgmeta_store::UrlEntry>,
) -> Result<JobResult, AnalysisError> {
    let digest = match (source, leading) {
        (Source::Url(url), Some(_)) => {
            // An entry that became fresh after this job was admitted answers it: the origin is
            // not asked again.
            let stored = match stored_url {
                Some(entry) if Leading::answers(&entry, &request.tasks) => {
                    match Leading::stored(entry) {
                        Some(fresh) => return shared.analyzer.answer_fresh(&fresh, request),
                        None => None,
                    }
                }
                entry => entry.and_then(Leading::revalidating),
            };
            return shared
                .analyzer
                .analyze_url_revalidating(url, request, stored.as_ref())
                .await;
        }
        (Source::Url(url), None) => return shared.analyzer.analyze_url(url, request).await,
        (Source::Upload(digest), _) => digest,
    };
    let started = Instant::now();
    let input = shared
        .store
        .job_input(id, digest)
        .instrument(tracing::info_span!("fetch", image.source = "upload"))
        .await
        .map_err(|e| {
            // A database blip is retried like a network one; anything else is ours.
            let code = if e.is_retryable() {
                ErrorCode::ServiceUnavailable
            } else {
                ErrorCode::Internal
            };
            AnalysisError::new(code, format!("reading the uploaded image: {e}"))
        })?;
    // Gone only when the job was purged (and so cancelled) since the claim: this run's outcome
    // will not be stored.
    let input = input.ok_or_else(|| {
        AnalysisError::new(
            ErrorCode::Internal,
            "the uploaded image is no longer stored",
        )
    })?;
    let load_ms = (started.elapsed().as_secs_f64() * 1e6).round() / 1e3;
    shared
        .analyzer
        .analyze_bytes(input.into(), request, load_ms)
        .await
}

/// Claims the job for a new run, or settles the delivery when there is nothing to run. With
/// the URL cache on, the claim also reads the entry a leading run revalidates.
async fn claim(
    shared: &Shared,
    delivery: &JobDelivery,
    id: JobId,
    hand_back: &CancellationToken,
) -> Option<(i32, JobSpec, bool, Option<imgmeta_store::UrlEntry>)> {
    let model = shared
        .url_cache
        .is_some()
        .then(|| shared.analyzer.model_version());
    loop {
        let Some(claim) = persist(hand_back, || {
            shared.store.claim_leading(
                id,
                &shared.worker_id,
                shared.lease,
                shared.max_attempts,
                model.as_deref(),
            )
        })
        .await
        else {
            if !hand_back.is_cancelled() {
                settle_requeue(delivery).await;
            }
            return None;
        };
        match claim {
            Claim::Claimed {
                attempt,
                spec,
                redact_gps,
                stored_url,
            } => return Some((attempt, spec, redact_gps, stored_url)),
            Claim::Finished(status) => {
                tracing::info!(
                    status = status.as_str(),
                    "message for a finished job; dropping it"
                );
            }
            Claim::NotFound => {
                tracing::warn!(kind = "error", "message for an unknown job; dropping it");
            }
            Claim::Busy { lease_until } if delivery.redelivered => {
                // The broker gave this message back because the worker holding it vanished,
                // which may still hold the lease. Wait for the lease to end, then run it; a
                // job that kills worker after worker therefore climbs the queue's delivery
                // limit and is dead-lettered as poison.
                let wait = (lease_until - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default();
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "redelivered while leased; waiting for the lease"
                );
                tokio::select! {
                    _ = hand_back.cancelled() => return None,
                    _ = tokio::time::sleep(wait.min(shared.lease) + Duration::from_millis(100)) => continue,
                }
            }
            Claim::Busy { .. } => {
                // A duplicate of a message whose job another worker is running: that worker
                // settles the job; should it vanish, the reconciler re-queues it.
                tracing::info!("job is running elsewhere; dropping the duplicate message");
            }
        }
        settle_ack(delivery).await;
        return None;
    }
}

/// Runs a database write until it succeeds, riding out database restarts without returning
/// the message (which would count towards the delivery limit). `None` at shutdown, or when the
/// database rejects the statement itself.
async fn persist<T, F, Fut>(hand_back: &CancellationToken, mut write: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut backoff = Duration::from_millis(100);
    loop {
        match write().await {
            Ok(value) => return Some(value),
            Err(err) if err.is_retryable() => {
                tracing::warn!(kind = "error", error = %err, retry_in_ms = backoff.as_millis() as u64, "database unavailable; retrying");
            }
            Err(err) => {
                // A statement the database rejects will be rejected again: a bug, not a blip.
                tracing::error!(kind = "error", error = %err, "database error; giving up on this delivery");
                return None;
            }
        }
        tokio::select! {
            _ = hand_back.cancelled() => return None,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

/// Hands a claimed job back at shutdown: queued again with a fresh message in the outbox.
async fn release(shared: &Shared, delivery: &JobDelivery, id: JobId, attempt: i32) {
    match shared.store.release(id, attempt).await {
        Ok(_) => {
            tracing::info!("shutting down; job handed back");
            settle_ack(delivery).await;
        }
        // The message returns to the queue with the connection instead.
        Err(err) => tracing::warn!(kind = "error", error = %err, "could not release the job"),
    }
}

async fn renew(store: Store, id: JobId, attempt: i32, lease: Duration, lost: CancellationToken) {
    let mut tick = tokio::time::interval(lease / 3);
    tick.tick().await;
    loop {
        tick.tick().await;
        match store.renew_lease(id, attempt, lease).await {
            Ok(true) => {}
            Ok(false) => {
                lost.cancel();
                return;
            }
            // A database blip: keep working and try again on the next tick.
            Err(err) => tracing::warn!(kind = "error", error = %err, "lease renewal failed"),
        }
    }
}

async fn settle_requeue(delivery: &JobDelivery) {
    if let Err(err) = delivery.requeue().await {
        tracing::warn!(kind = "error", error = %err, "requeue failed");
    }
}

async fn settle_ack(delivery: &JobDelivery) {
    if let Err(err) = delivery.ack().await {
        // The broker will redeliver; the claim makes the repeat harmless.
        tracing::warn!(kind = "error", error = %err, "ack failed");
    }
}

/// Counts the job among those running in this process while alive.
struct InFlight;

impl InFlight {
    fn start() -> Self {
        metrics::gauge!(imgmeta_telemetry::JOBS_IN_FLIGHT).increment(1.0);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        metrics::gauge!(imgmeta_telemetry::JOBS_IN_FLIGHT).decrement(1.0);
    }
}

fn record(outcome: &Outcome) {
    match outcome {
        Outcome::Succeeded(..) => metrics::counter!(imgmeta_telemetry::JOBS_SUCCEEDED).increment(1),
        Outcome::Failed(error) => {
            metrics::counter!(imgmeta_telemetry::JOBS_FAILED, "code" => error.code.as_str())
                .increment(1)
        }
        // A deferral is counted as a retry with its code, so dashboards see busy hosts.
        Outcome::Retry { error, .. } | Outcome::Defer { error, .. } => {
            metrics::counter!(imgmeta_telemetry::JOBS_RETRIED, "code" => error.code.as_str())
                .increment(1)
        }
    }
}
