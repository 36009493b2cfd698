//! The reconciler: expired leases, used-up attempts, lost messages, and the retention sweep
//! that erases results older than their account's retention period.

use imgmeta_queue::Publisher;
use imgmeta_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// How often to sweep (jittered so many processes spread out).
    pub period: Duration,
    /// Runs a job may have; a job whose worker vanished on its last run fails as `poison`.
    pub max_attempts: i32,
    /// A queued job whose message was published this long ago gets a new one.
    pub republish_after: Duration,
    /// The same, sooner, while the jobs queue holds no ready message: every message of a
    /// queued job is then either on a worker (which claims it at once) or gone.
    pub republish_idle_after: Duration,
}

/// How long an ended webhook delivery stays in `GET /v1/webhooks/deliveries`.
pub const DELIVERY_RETENTION: Duration = Duration::from_secs(30 * 86_400);

pub async fn reconcile(
    store: Store,
    publisher: Arc<Publisher>,
    config: ReconcileConfig,
    shutdown: CancellationToken,
) {
    let jitter = Duration::from_millis(rand::random_range(0..500));
    let mut tick = tokio::time::interval(config.period + jitter);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.sweep_expired_leases(500, config.max_attempts).await {
            Ok(sweep) if sweep.requeued + sweep.poisoned > 0 => {
                tracing::warn!(
                    requeued = sweep.requeued,
                    poisoned = sweep.poisoned,
                    "expired leases swept"
                );
            }
            Ok(_) => {}
            Err(err) => tracing::warn!(kind = "error", error = %err, "cannot sweep expired leases"),
        }
        // Gauges for dashboards and autoscaling, refreshed with each sweep.
        if let Ok(backlog) = store.outbox_backlog(1_000_000).await {
            metrics::gauge!(imgmeta_telemetry::OUTBOX_BACKLOG).set(backlog as f64);
        }
        let depths = publisher.queue_depths().await.ok();
        if let Some((interactive, bulk)) = depths {
            metrics::gauge!(imgmeta_telemetry::QUEUE_DEPTH).set(f64::from(interactive + bulk));
        }
        // Single jobs: by the age of their message. Batch items may wait in their queue for
        // hours: they are swept only while the bulk queue holds nothing ready (an item still
        // queued then has a message on its way to a worker, or none), read again just before,
        // and only after the long age (an item's age counts from its upload, so a batch whose
        // messages the relay is publishing right now is not taken for lost).
        let interactive = republish_age(&config, depths.map(|d| d.0));
        for bulk in [false, true] {
            let older_than = match bulk {
                false => interactive,
                true if matches!(publisher.queue_depths().await, Ok((_, 0))) => {
                    config.republish_after
                }
                true => continue,
            };
            match store.republish_stale(500, older_than, bulk).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(jobs = n, bulk, "queued jobs without progress republished"),
                Err(err) => {
                    tracing::warn!(kind = "error", error = %err, "cannot republish stale jobs")
                }
            }
        }
        // Ended webhook deliveries are listed for a month, then forgotten.
        if let Err(err) = store.sweep_deliveries(DELIVERY_RETENTION, 1_000).await {
            tracing::warn!(kind = "error", error = %err, "cannot sweep old webhook deliveries")
        }
        match store.purge_expired(500).await {
            Ok(purged) => {
                for p in purged {
                    metrics::counter!(imgmeta_telemetry::JOBS_PURGED, "reason" => "retention")
                        .increment(p.jobs);
                    tracing::info!(
                        kind = "security",
                        event = "results_purged",
                        reason = "retention",
                        account.id = %p.account,
                        jobs = p.jobs,
                        "results older than the account's retention period purged"
                    );
                }
            }
            Err(err) => {
                tracing::warn!(kind = "error", error = %err, "cannot purge expired results")
            }
        }
    }
}

/// How old a queued job's message must be before the job gets a new one. The broker delivers
/// at most the workers' prefetch, which they claim at once, so with no message ready in the
/// queue a job still queued after the short idle age has lost its message. Reading the depth
/// and the jobs at slightly different moments can only cause a duplicate, which is harmless.
fn republish_age(config: &ReconcileConfig, ready_messages: Option<u32>) -> Duration {
    match ready_messages {
        Some(0) => config.republish_after.min(config.republish_idle_after),
        _ => config.republish_after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_queue_shortens_the_republish_age_and_anything_else_does_not() {
        let config = ReconcileConfig {
            period: Duration::from_secs(5),
            max_attempts: 5,
            republish_after: Duration::from_secs(900),
            republish_idle_after: Duration::from_secs(30),
        };
        assert_eq!(republish_age(&config, Some(0)), Duration::from_secs(30));
        assert_eq!(republish_age(&config, Some(1)), Duration::from_secs(900));
        // Broker unreachable: no evidence that messages are missing.
        assert_eq!(republish_age(&config, None), Duration::from_secs(900));
        let short = ReconcileConfig {
            republish_after: Duration::from_secs(10),
            ..config
        };
        assert_eq!(republish_age(&short, Some(0)), Duration::from_secs(10));
    }
}
