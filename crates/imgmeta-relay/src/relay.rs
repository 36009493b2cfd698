//! The outbox relay: due messages → RabbitMQ (confirmed) → deleted from the outbox.

use futures::future::join_all;
use imgmeta_queue::{JobMessage, Lane, Publisher};
use imgmeta_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

/// Messages published per round: their confirms are awaited together, so a round costs two
/// statements and about one broker round trip however many it holds (a batch's messages come by
/// the hundred thousand).
const BATCH: i64 = 1000;
/// How long taken messages stay hidden from other relays while being published: longer than
/// a publish may take (its confirm timeout is 10 s), short enough that the batch of a relay
/// killed mid-publish is soon picked up by another.
const HOLD: Duration = Duration::from_secs(15);
/// Sleep after the first round that found nothing due, doubled after each further empty
/// round up to [`IDLE_POLL_MAX`]. The relay does not LISTEN because a NOTIFY in every
/// submission takes a global lock at commit, which would cap submit throughput. Rows this
/// process commits wake its relay at once (the store's in-process signal), so the poll only
/// bounds how long another process's rows wait when that process's own relay is gone, and
/// an idle deployment's relays cost each database a statement per second, not twenty.
const IDLE_POLL: Duration = Duration::from_millis(50);
const IDLE_POLL_MAX: Duration = Duration::from_secs(1);

/// Whether the last publishing round reached the broker; the API consults it to decide when
/// to bound the outbox backlog.
#[derive(Debug, Clone)]
pub struct BrokerHealth(Arc<AtomicBool>);

impl Default for BrokerHealth {
    /// Unknown counts as down until the first confirmed publish, so the backlog bound holds
    /// from the first request of a process that starts while the broker is away.
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(false)))
    }
}

impl BrokerHealth {
    pub fn is_up(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    fn set(&self, up: bool) {
        if self.0.swap(up, Ordering::Relaxed) != up {
            if up {
                tracing::info!("broker reachable again; publishing the outbox");
            } else {
                tracing::warn!(
                    kind = "error",
                    "broker unreachable; submissions wait in the outbox"
                );
            }
        }
    }
}

/// Publishes the outbox until `shutdown`.
pub async fn relay(
    store: Store,
    publisher: Arc<Publisher>,
    health: BrokerHealth,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    // The previous round's confirmed messages being deleted from the outbox while this round
    // takes and publishes the next ones (at most one such write in flight).
    let mut marking: Option<tokio::task::JoinHandle<()>> = None;
    let mut idle = IDLE_POLL;
    while !shutdown.is_cancelled() {
        // A relay that cannot reach the broker takes no messages: taking them would only hide
        // them (until released after the back-off) from relays that can publish them.
        if !health.is_up() {
            if publisher.ping().await.is_ok() {
                health.set(true);
            } else {
                pause(&shutdown, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        }
        let round = std::time::Instant::now();
        let due = match store.take_due_messages(BATCH, HOLD).await {
            Ok(due) => due,
            Err(err) => {
                tracing::warn!(kind = "error", error = %err, "relay cannot read the outbox");
                pause(&shutdown, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        if due.is_empty() {
            backoff = Duration::from_millis(100);
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = tokio::time::sleep(idle) => idle = (idle * 2).min(IDLE_POLL_MAX),
                // New rows: poll promptly again until the outbox drains.
                () = store.outbox_signalled() => idle = IDLE_POLL,
            }
            continue;
        }
        idle = IDLE_POLL;
        let taken = round.elapsed();
        let results = join_all(due.iter().map(|m| {
            // The publish joins the trace of the submission that owes the message.
            let span = tracing::info_span!("publish", job.id = %m.job_id);
            imgmeta_telemetry::context::adopt_parent(&span, m.trace_parent.as_deref());
            let message = JobMessage { job_id: m.job_id };
            let publisher = &publisher;
            // Batch items go to the bulk queue, where workers keep a slot free for the rest.
            let lane = if m.bulk {
                Lane::Bulk
            } else {
                Lane::Interactive
            };
            async move {
                publisher
                    .publish_in(lane, &message, m.trace_parent.as_deref())
                    .await
            }
            .instrument(span)
        }))
        .await;
        let published = round.elapsed();
        let (confirmed, failed): (Vec<_>, Vec<_>) =
            due.into_iter().zip(&results).partition(|(_, r)| r.is_ok());
        let confirmed: Vec<_> = confirmed.into_iter().map(|(m, _)| m).collect();
        let failed: Vec<_> = failed.into_iter().map(|(m, _)| m).collect();
        if let Some(Err(err)) = results.iter().find(|r| r.is_err()) {
            tracing::debug!(error = %err, failed = failed.len(), "publishing failed");
        }
        health.set(!confirmed.is_empty() || results.is_empty());
        // The confirmed messages stay hidden (held) until deleted, so the next round never
        // takes them again: their deletion overlaps the next round instead of delaying it.
        if let Some(previous) = marking.take() {
            let _ = previous.await;
        }
        let waited = round.elapsed();
        if !confirmed.is_empty() {
            let store = store.clone();
            marking = Some(tokio::spawn(async move {
                if let Err(err) = store.mark_published(&confirmed).await {
                    // Published again after the hold: a duplicate, which is harmless.
                    tracing::warn!(kind = "error", error = %err, "cannot mark messages published");
                }
            }));
        }
        tracing::debug!(
            messages = results.len(),
            take_ms = taken.as_millis() as u64,
            publish_ms = (published - taken).as_millis() as u64,
            mark_wait_ms = (waited - published).as_millis() as u64,
            "relay round"
        );
        if !failed.is_empty() {
            if let Err(err) = store.release_messages(&failed, backoff).await {
                tracing::warn!(kind = "error", error = %err, "cannot release unpublished messages");
            }
            pause(&shutdown, backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        } else {
            backoff = Duration::from_millis(100);
        }
    }
    if let Some(last) = marking {
        let _ = last.await;
    }
}

async fn pause(shutdown: &CancellationToken, duration: Duration) {
    tokio::select! {
        _ = shutdown.cancelled() => {}
        _ = tokio::time::sleep(duration) => {}
    }
}
