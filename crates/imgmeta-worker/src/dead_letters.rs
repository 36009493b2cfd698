//! Dead letters: messages the broker gave up on after its delivery limit (each delivery ended
//! with the worker gone) mark their job as failed with code `poison`, unless the job barely
//! ran: then it was a bystander of another job's crashes and is queued again.

use imgmeta_queue::{Broker, Deliveries, Topology};
use imgmeta_store::{DeadLetter, Store};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub(crate) async fn run(
    store: Store,
    broker: Broker,
    topology: Topology,
    max_attempts: i32,
    shutdown: CancellationToken,
) {
    while !shutdown.is_cancelled() {
        let mut deliveries = match Deliveries::dead(&broker, &topology).await {
            Ok(d) => d,
            Err(_) => {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(2)) => continue,
                }
            }
        };
        loop {
            let next = tokio::select! {
                _ = shutdown.cancelled() => return,
                next = deliveries.next() => next,
            };
            let Some(Ok(delivery)) = next else { break };
            if let Ok(message) = &delivery.message {
                let deliveries_made = delivery.delivery_count.unwrap_or_default();
                loop {
                    match store
                        .dead_lettered(message.job_id, deliveries_made, max_attempts)
                        .await
                    {
                        Ok(DeadLetter::Failed) => {
                            tracing::warn!(kind = "error", job.id = %message.job_id, "poison job dead-lettered and failed");
                            break;
                        }
                        Ok(DeadLetter::Requeued) => {
                            tracing::warn!(kind = "error", job.id = %message.job_id, "dead-lettered bystander of a crashing job queued again");
                            break;
                        }
                        Ok(DeadLetter::Untouched) => break,
                        Err(err) => {
                            tracing::warn!(kind = "error", error = %err, "cannot record a dead letter; retrying");
                            tokio::select! {
                                _ = shutdown.cancelled() => return,
                                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            }
                        }
                    }
                }
            }
            let _ = delivery.ack().await;
        }
    }
}
