//! Sending webhooks: every API process takes the deliveries that are due from the store, signs
//! them with the account's secrets (Standard Webhooks) and posts them through the
//! [`WebhookTransport`] seam (the fetcher's destination rules), then records each attempt:
//! 2xx delivered, `410` gone, anything else retried with backoff until the retry horizon.
//!
//! A delivery's body is the event envelope `{"type", "timestamp", "data"}` with the job or batch
//! resource as `GET` shows it, fixed at the first attempt so every retry sends the same bytes
//! under the same `webhook-id`.

use crate::JobResource;
use crate::routes::batches::BatchResource;
use axum::body::Bytes;
use chrono::Utc;
use imgmeta_domain::{DeliveryStatus, ErrorBody, ErrorCode, WebhookEvent, WebhookUrl};
use imgmeta_store::{AttemptOutcome, DueDelivery, JobLookup, Store, StoreError};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Posts one webhook: `headers` and the JSON `body` to `url` within `timeout`, answering the
/// receiver's HTTP status, or why no answer came (a refused destination, a broken connection,
/// a timeout) with its stable code. The binary implements it with the fetcher, so a webhook
/// goes only where an image fetch could go.
pub trait WebhookTransport: Send + Sync {
    fn post<'a>(
        &'a self,
        url: &'a WebhookUrl,
        headers: Vec<(&'static str, String)>,
        body: Bytes,
        timeout: Duration,
    ) -> Pin<Box<dyn Future<Output = Result<u16, ErrorBody>> + Send + 'a>>;
}

/// How deliveries are sent and retried.
#[derive(Debug, Clone, Copy)]
pub struct WebhookPolicy {
    pub timeout: Duration,
    /// The wait before the first retry; each later one is four times longer, at most
    /// [`MAX_RETRY_WAIT`].
    pub retry_base: Duration,
    /// How long after its event a delivery may still be retried.
    pub retry_for: Duration,
    /// Most attempts in flight in this process.
    pub concurrency: usize,
}

/// The longest wait between two attempts.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(8 * 3600);

/// How long to wait after a failed attempt `attempt` (1-based): `base · 4^(attempt−1)`, capped.
/// With the 5 s default: 5 s, 20 s, 80 s, 5 min, 21 min, 85 min, 5.7 h, then every 8 h, which
/// spends a 24 h horizon in about 10 attempts.
pub fn retry_wait(base: Duration, attempt: i32) -> Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1))
        .unwrap_or(0)
        .min(20);
    base.checked_mul(4u32.saturating_pow(exponent))
        .unwrap_or(MAX_RETRY_WAIT)
        .min(MAX_RETRY_WAIT)
}

/// How long idle senders wait before looking for due deliveries again.
const IDLE_POLL: Duration = Duration::from_millis(250);

/// Sends due deliveries until `shutdown`, at most `policy.concurrency` at a time: each attempt
/// runs on its own, and a slot it frees is filled at once, so a receiver that takes its whole
/// timeout holds one slot, not a round of them.
pub async fn send_webhooks(
    store: Store,
    transport: Arc<dyn WebhookTransport>,
    policy: WebhookPolicy,
    shutdown: CancellationToken,
) {
    // An attempt that never records its outcome (this process died) comes due again after the
    // hold, under the same webhook-id.
    let hold = policy.timeout + Duration::from_secs(30);
    let slots = Arc::new(tokio::sync::Semaphore::new(policy.concurrency.max(1)));
    while !shutdown.is_cancelled() {
        let free = slots.available_permits();
        if free == 0 {
            // Every slot is busy: wait for one to free (or the shutdown).
            tokio::select! {
                () = shutdown.cancelled() => break,
                permit = slots.clone().acquire_owned() => drop(permit),
            }
            continue;
        }
        let due = match store
            .take_due_deliveries(i64::try_from(free).unwrap_or(16), hold)
            .await
        {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(error = %err, "taking due webhook deliveries failed");
                sleep_or_stop(&shutdown, Duration::from_secs(1)).await;
                continue;
            }
        };
        let full = due.len() == free;
        for delivery in due {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                break;
            };
            let (store, transport) = (store.clone(), transport.clone());
            tokio::spawn(async move {
                attempt(&store, transport.as_ref(), &policy, delivery).await;
                drop(slot);
            });
        }
        if !full {
            sleep_or_stop(&shutdown, IDLE_POLL).await;
        }
    }
    // Let the attempts in flight record their outcomes (each is bounded by the timeout).
    let all = u32::try_from(policy.concurrency.max(1)).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(policy.timeout, slots.acquire_many(all)).await;
}

async fn sleep_or_stop(shutdown: &CancellationToken, wait: Duration) {
    tokio::select! {
        () = shutdown.cancelled() => {}
        () = tokio::time::sleep(wait) => {}
    }
}

/// One attempt of one delivery, its outcome recorded (a failure to record is logged: the
/// delivery then comes due again after its hold).
async fn attempt(
    store: &Store,
    transport: &dyn WebhookTransport,
    policy: &WebhookPolicy,
    delivery: DueDelivery,
) {
    let outcome = match send(store, transport, policy, &delivery).await {
        Ok(outcome) => outcome,
        Err(err) => {
            tracing::warn!(error = %err, webhook.id = %delivery.webhook_id(), "webhook attempt failed on the store");
            AttemptOutcome::Retry {
                status: None,
                error: "internal: the delivery could not be prepared".to_owned(),
                after: retry_wait(policy.retry_base, delivery.attempt),
            }
        }
    };
    match store
        .record_delivery_attempt(delivery.seq, delivery.attempt, &outcome, policy.retry_for)
        .await
    {
        Ok(None) => {
            tracing::debug!(webhook.id = %delivery.webhook_id(), "the delivery had already ended")
        }
        Ok(Some(status)) => {
            let label = match (&outcome, status) {
                (AttemptOutcome::Delivered { .. }, _) => "delivered",
                (AttemptOutcome::Gone { .. }, _) => "gone",
                (_, DeliveryStatus::Pending) => "retry",
                _ => "failed",
            };
            metrics::counter!(imgmeta_telemetry::WEBHOOK_ATTEMPTS, "event" => delivery.event.as_str(), "outcome" => label)
                .increment(1);
            if label == "delivered" {
                let delay = (Utc::now() - delivery.created_at).num_milliseconds().max(0);
                metrics::histogram!(imgmeta_telemetry::WEBHOOK_DELAY, "event" => delivery.event.as_str())
                    .record(delay as f64 / 1000.0);
            }
            let (http_status, error) = match &outcome {
                AttemptOutcome::Delivered { status } | AttemptOutcome::Gone { status } => {
                    (Some(*status), None)
                }
                AttemptOutcome::Retry { status, error, .. }
                | AttemptOutcome::Failed { status, error } => (*status, Some(error.as_str())),
            };
            tracing::info!(
                kind = "analytics",
                event = "webhook_attempt",
                webhook.id = %delivery.webhook_id(),
                webhook.event = delivery.event.as_str(),
                attempt = delivery.attempt,
                outcome = label,
                http.status = http_status,
                error = error.map(imgmeta_auth::clean),
                "webhook attempt"
            );
        }
        Err(err) => {
            tracing::warn!(error = %err, webhook.id = %delivery.webhook_id(), "recording a webhook attempt failed")
        }
    }
}

async fn send(
    store: &Store,
    transport: &dyn WebhookTransport,
    policy: &WebhookPolicy,
    delivery: &DueDelivery,
) -> Result<AttemptOutcome, StoreError> {
    let failed = |error: String| AttemptOutcome::Failed {
        status: None,
        error,
    };
    let Ok(url) = WebhookUrl::parse(&delivery.url) else {
        return Ok(failed(
            "invalid_webhook_url: the stored URL does not parse".to_owned(),
        ));
    };
    let Some(secrets) = store.webhook_secrets(delivery.account).await? else {
        return Ok(failed(format!(
            "{}: the account has no signing secret",
            ErrorCode::WebhookSecretMissing
        )));
    };
    let body = match &delivery.body {
        Some(body) => body.clone(),
        None => {
            let Some(payload) = payload(store, delivery).await? else {
                return Ok(failed(
                    "the job or batch the event is about no longer exists".to_owned(),
                ));
            };
            store.fix_delivery_body(delivery.seq, &payload).await?
        }
    };
    let id = delivery.webhook_id();
    let timestamp = Utc::now().timestamp();
    let keys: Vec<&[u8]> = std::iter::once(&secrets.current)
        .chain(&secrets.previous)
        .map(Vec::as_slice)
        .collect();
    let signature = imgmeta_auth::webhook_signature_header(&keys, &id, timestamp, body.as_bytes());
    let headers = vec![
        ("webhook-id", id),
        ("webhook-timestamp", timestamp.to_string()),
        ("webhook-signature", signature),
    ];
    let retry = |status: Option<u16>, error: String| AttemptOutcome::Retry {
        status,
        error,
        after: retry_wait(policy.retry_base, delivery.attempt),
    };
    Ok(
        match transport
            .post(&url, headers, Bytes::from(body), policy.timeout)
            .await
        {
            Ok(status) if (200..300).contains(&status) => AttemptOutcome::Delivered { status },
            Ok(410) => AttemptOutcome::Gone { status: 410 },
            Ok(status) => retry(
                Some(status),
                format!(
                    "the receiver answered {status} (2xx expected; redirects are not followed)"
                ),
            ),
            // A refused certificate may be renewed within the day: retried, unlike an image's.
            Err(refusal) if refusal.code.is_retryable() || refusal.code == ErrorCode::TlsFailed => {
                retry(None, format!("{}: {}", refusal.code, refusal.message))
            }
            Err(refusal) => failed(format!("{}: {}", refusal.code, refusal.message)),
        },
    )
}

/// The event envelope with the job or batch as `GET` shows it now; `None` if it is gone.
async fn payload(store: &Store, delivery: &DueDelivery) -> Result<Option<String>, StoreError> {
    let data = match (delivery.event, delivery.job, delivery.batch) {
        (WebhookEvent::JobSucceeded | WebhookEvent::JobFailed, Some(job), _) => {
            match store.get_job(delivery.account, job).await? {
                JobLookup::Found(record) => serde_json::to_value(JobResource::from(record)),
                JobLookup::NotFound { .. } => return Ok(None),
            }
        }
        (WebhookEvent::BatchCompleted, _, Some(batch)) => {
            match store.get_batch(delivery.account, batch).await? {
                Ok(record) => serde_json::to_value(BatchResource::from(record)),
                Err(_) => return Ok(None),
            }
        }
        _ => return Ok(None),
    }
    .expect("resources serialise");
    let envelope = serde_json::json!({
        "type": delivery.event.as_str(),
        "timestamp": delivery.created_at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "data": data,
    });
    Ok(Some(envelope.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_wait_four_times_longer_each_time_up_to_eight_hours() {
        let base = Duration::from_secs(5);
        let waits: Vec<u64> = (1..=10).map(|a| retry_wait(base, a).as_secs()).collect();
        assert_eq!(
            waits,
            [5, 20, 80, 320, 1280, 5120, 20480, 28800, 28800, 28800]
        );
        let total: u64 = waits.iter().take(9).sum();
        assert!(
            (20 * 3600..26 * 3600).contains(&total),
            "nine waits span about a day: {total} s"
        );
        assert_eq!(retry_wait(base, 0), base);
        assert_eq!(retry_wait(base, i32::MAX), MAX_RETRY_WAIT);
    }
}
