//! The reconciler: jobs whose worker vanished (lease expired) are queued again and republished.

use imgmeta_queue::{JobMessage, Publisher};
use imgmeta_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Every worker runs one; the store hands each expired job to exactly one of them.
pub(crate) async fn run(
    store: Store,
    publisher: Arc<Publisher>,
    lease: Duration,
    shutdown: CancellationToken,
) {
    // Jitter spreads the sweeps of many workers apart.
    let period = lease / 2 + Duration::from_millis(rand::random_range(0..1000));
    let mut tick = tokio::time::interval(period);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let ids = match store.requeue_expired(100).await {
            Ok(ids) => ids,
            Err(err) => {
                tracing::warn!(kind = "error", error = %err, "reconciler cannot read expired leases");
                continue;
            }
        };
        for id in ids {
            tracing::warn!(job.id = %id, "lease expired; job queued again");
            if let Err(err) = publisher.publish(&JobMessage { job_id: id }).await {
                // The job stays queued; a later sweep of queued jobs without progress picks it up.
                tracing::warn!(kind = "error", job.id = %id, error = %err, "cannot republish a re-queued job");
            }
        }
    }
}
