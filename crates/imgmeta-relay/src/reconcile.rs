//! The reconciler: expired leases, used-up attempts and lost messages.

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
}

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
        if let Ok(depth) = publisher.queue_depth().await {
            metrics::gauge!(imgmeta_telemetry::QUEUE_DEPTH).set(f64::from(depth));
        }
        match store.republish_stale(500, config.republish_after).await {
            Ok(0) => {}
            Ok(n) => tracing::warn!(jobs = n, "queued jobs without progress republished"),
            Err(err) => tracing::warn!(kind = "error", error = %err, "cannot republish stale jobs"),
        }
    }
}
