//! Handling one delivery: claim, run with a renewed lease, store the outcome, then settle.

use crate::outcome::{Outcome, decide};
use imgmeta_domain::JobId;
use imgmeta_pipeline::{Analyzer, Request};
use imgmeta_queue::JobDelivery;
use imgmeta_store::{Claim, Store};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub(crate) struct Shared {
    pub store: Store,
    pub analyzer: Arc<Analyzer>,
    pub worker_id: String,
    pub lease: Duration,
}

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
    run(shared, &delivery, message.job_id, hand_back)
        .instrument(span)
        .await;
}

async fn run(shared: &Shared, delivery: &JobDelivery, id: JobId, hand_back: CancellationToken) {
    let claim = match shared
        .store
        .claim(id, &shared.worker_id, shared.lease)
        .await
    {
        Ok(claim) => claim,
        Err(err) => {
            tracing::warn!(kind = "error", error = %err, "cannot claim; handing the message back");
            // Give the database a moment before the message comes round again.
            tokio::time::sleep(Duration::from_secs(1)).await;
            settle_requeue(delivery).await;
            return;
        }
    };
    let (attempt, spec) = match claim {
        Claim::Claimed { attempt, spec } => (attempt, spec),
        Claim::Finished(status) => {
            tracing::info!(
                status = status.as_str(),
                "duplicate message for a finished job; dropping it"
            );
            settle_ack(delivery).await;
            return;
        }
        Claim::Busy { lease_until } => {
            // Another worker runs it. If that worker dies, its lease expires and the
            // reconciler re-queues the job with a fresh message, so this copy is not needed.
            tracing::info!(%lease_until, "job is running elsewhere; dropping the duplicate message");
            settle_ack(delivery).await;
            return;
        }
        Claim::NotFound => {
            tracing::warn!(kind = "error", "message for an unknown job; dropping it");
            settle_ack(delivery).await;
            return;
        }
    };
    tracing::Span::current().record("attempt", attempt);
    tracing::info!(image.url_host = %spec.url.host_str(), "job started");
    let started = Instant::now();

    // The lease is renewed while the job runs; losing it (a newer run took over, or the job
    // was cancelled) stops this run, since its result could no longer be stored.
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
    };
    let result = tokio::select! {
        result = shared.analyzer.analyze_url(&spec.url, &request) => Some(result),
        _ = lost_lease.cancelled() => None,
        _ = hand_back.cancelled() => {
            renewer.abort();
            release(shared, delivery, id, attempt).await;
            return;
        }
    };
    renewer.abort();
    let Some(result) = result else {
        tracing::warn!("lease lost; abandoning this run");
        settle_ack(delivery).await;
        return;
    };
    let duration_ms = started.elapsed().as_millis() as u64;
    let stored = match decide(result) {
        Outcome::Succeeded(result) => {
            let stored = shared.store.complete(id, attempt, &result).await;
            if let Ok(true) = stored {
                tracing::info!(
                    kind = "analytics",
                    event = "job_succeeded",
                    duration_ms,
                    "job succeeded"
                );
            }
            stored
        }
        Outcome::Failed(error) => {
            let stored = shared.store.fail(id, attempt, &error).await;
            if let Ok(true) = stored {
                tracing::info!(kind = "analytics", event = "job_failed", code = %error.code, duration_ms, message = %error.message, "job failed");
            }
            stored
        }
    };
    match stored {
        Ok(true) => settle_ack(delivery).await,
        Ok(false) => {
            tracing::warn!(
                "run no longer owns the job (superseded or cancelled); result discarded"
            );
            settle_ack(delivery).await;
        }
        Err(err) => {
            // The outcome is not committed: the job stays claimed until its lease expires,
            // then the reconciler re-queues it. The message goes back meanwhile.
            tracing::error!(kind = "error", error = %err, "cannot store the outcome");
            settle_requeue(delivery).await;
        }
    }
}

/// Hands a claimed job back at shutdown: it becomes queued again and its message returns.
async fn release(shared: &Shared, delivery: &JobDelivery, id: JobId, attempt: i32) {
    match shared.store.release(id, attempt).await {
        Ok(_) => tracing::info!("shutting down; job handed back"),
        Err(err) => {
            tracing::warn!(kind = "error", error = %err, "could not release the job; its lease will expire")
        }
    }
    settle_requeue(delivery).await;
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

async fn settle_ack(delivery: &JobDelivery) {
    if let Err(err) = delivery.ack().await {
        // The broker will redeliver; the claim makes the repeat harmless.
        tracing::warn!(kind = "error", error = %err, "ack failed");
    }
}

async fn settle_requeue(delivery: &JobDelivery) {
    if let Err(err) = delivery.requeue().await {
        tracing::warn!(kind = "error", error = %err, "requeue failed");
    }
}
