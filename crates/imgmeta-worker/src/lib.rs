//! The worker: consumes job messages, claims each job in PostgreSQL, runs the pipeline and
//! stores the outcome, acknowledging a message only after the outcome is committed.
//!
//! Any number of workers on any number of hosts may run; PostgreSQL decides which one runs a
//! job (the claim), RabbitMQ only wakes them up.

mod dead_letters;
mod job;
mod outcome;
mod url_cache;

pub use url_cache::UrlCachePolicy;

pub use imgmeta_config::TestHooks;
use imgmeta_pipeline::Analyzer;
use imgmeta_queue::{Broker, Deliveries, Topology};
use imgmeta_store::Store;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// How a worker process runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    pub broker: Broker,
    pub topology: Topology,
    /// Jobs run at once; also the broker prefetch.
    pub concurrency: u16,
    /// How long a claim lasts without renewal.
    pub lease: Duration,
    /// How long a stopping worker lets jobs in flight finish before handing them back.
    pub shutdown_grace: Duration,
    /// Most runs a job gets; transient failures retry until then.
    pub max_attempts: i32,
    /// Backoff before the first retry, doubling per attempt.
    pub retry_base: Duration,
    pub test_hooks: TestHooks,
    /// The URL cache's rules; `None` when the cache is off.
    pub url_cache: Option<UrlCachePolicy>,
    /// Most entries the content cache keeps (least recently used evicted); `None` when off.
    pub content_cache_max_entries: Option<i64>,
}

/// A worker process's job loop.
pub struct Worker {
    config: WorkerConfig,
    store: Store,
    analyzer: Arc<Analyzer>,
    worker_id: String,
}

impl Worker {
    pub fn new(config: WorkerConfig, store: Store, analyzer: Arc<Analyzer>) -> Self {
        let worker_id = format!(
            "{}-{}-{}",
            hostname(),
            std::process::id(),
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        Self {
            config,
            store,
            analyzer,
            worker_id,
        }
    }

    /// Consumes until `shutdown` is cancelled, reconnecting to the broker whenever the
    /// connection drops. On shutdown it stops taking messages, gives jobs in flight
    /// `shutdown_grace` to finish, and hands the rest back to the broker.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) {
        let shared = Arc::new(job::Shared {
            store: self.store.clone(),
            analyzer: self.analyzer.clone(),
            worker_id: self.worker_id.clone(),
            lease: self.config.lease,
            max_attempts: self.config.max_attempts,
            retry_base: self.config.retry_base,
            hooks: self.config.test_hooks.clone(),
            url_cache: self.config.url_cache,
            content_cache_max_entries: self.config.content_cache_max_entries,
            content_writes: Default::default(),
        });
        let upkeep = self.config.url_cache.map(|policy| {
            tokio::spawn(url_cache::upkeep(
                self.store.clone(),
                self.analyzer.model_version(),
                policy,
                shutdown.clone(),
            ))
        });
        let dead_letters = tokio::spawn(dead_letters::run(
            self.store.clone(),
            self.config.broker.clone(),
            self.config.topology.clone(),
            self.config.max_attempts,
            shutdown.clone(),
        ));
        tracing::info!(worker.id = %self.worker_id, concurrency = self.config.concurrency, "worker started");
        let hand_back = CancellationToken::new();
        let slots = Arc::new(Semaphore::new(usize::from(self.config.concurrency)));
        // Batch items (the bulk queue) may hold all but one of the slots, so an interactive
        // job finds room while a large batch runs; a worker with one slot shares it.
        let bulk_share = bulk_share(self.config.concurrency);
        let bulk_slots = Arc::new(Semaphore::new(usize::from(bulk_share)));
        // A redelivered message may be the one that stopped a worker: it runs alone (write
        // lock), so a job that crashes the process takes no other job's attempt with it.
        let exclusive = Arc::new(tokio::sync::RwLock::new(()));
        let mut in_flight = JoinSet::new();
        let mut backoff = Duration::from_millis(200);
        // Jobs hold their delivery's acker; the connection is kept until they have settled.
        let mut connections = Vec::new();
        'connect: while !shutdown.is_cancelled() {
            let opened = async {
                let jobs = Deliveries::jobs(
                    &self.config.broker,
                    &self.config.topology,
                    self.config.concurrency,
                )
                .await?;
                let bulk =
                    Deliveries::bulk(&self.config.broker, &self.config.topology, bulk_share).await;
                match bulk {
                    Ok(bulk) => Ok((jobs, bulk)),
                    Err(err) => {
                        jobs.close().await;
                        Err(err)
                    }
                }
            }
            .await;
            let (mut deliveries, mut bulk) = match opened {
                Ok(d) => {
                    backoff = Duration::from_millis(200);
                    tracing::info!(
                        "consuming {} and {}",
                        self.config.topology.jobs_queue(),
                        self.config.topology.bulk_queue()
                    );
                    d
                }
                Err(err) => {
                    tracing::warn!(kind = "error", error = %err, retry_in_ms = backoff.as_millis() as u64, "cannot consume; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => break 'connect,
                        _ = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                    continue;
                }
            };
            loop {
                // Reap finished jobs so the set does not grow without bound.
                while in_flight.try_join_next().is_some() {}
                let permit = tokio::select! {
                    _ = shutdown.cancelled() => break,
                    permit = slots.clone().acquire_owned() => permit.expect("semaphore never closed"),
                };
                // Interactive messages first; a bulk one only with a bulk slot free. A branch
                // that loses the race takes nothing from its queue (a stream hands out a
                // message only when its `next` completes), and its bulk slot is given back.
                let (next, bulk_permit) = tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => break,
                    next = deliveries.next() => (next, None),
                    (bulk_permit, next) = async {
                        let bulk_permit = bulk_slots
                            .clone()
                            .acquire_owned()
                            .await
                            .expect("semaphore never closed");
                        (bulk_permit, bulk.next().await)
                    } => (next, Some(bulk_permit)),
                };
                match next {
                    Some(Ok(delivery)) => {
                        let (shared, hand_back) = (shared.clone(), hand_back.clone());
                        let exclusive = exclusive.clone();
                        in_flight.spawn(async move {
                            let suspect = delivery.redelivered
                                || delivery.delivery_count.is_some_and(|n| n > 0);
                            if suspect {
                                let _alone = exclusive.write().await;
                                job::handle(&shared, delivery, hand_back).await;
                            } else {
                                let _shared = exclusive.read().await;
                                job::handle(&shared, delivery, hand_back).await;
                            }
                            drop(bulk_permit);
                            drop(permit);
                        });
                    }
                    Some(Err(err)) => {
                        tracing::warn!(kind = "error", error = %err, "broker connection lost; reconnecting");
                        break;
                    }
                    None => {
                        tracing::warn!(kind = "error", "broker closed the consumer; reconnecting");
                        break;
                    }
                }
            }
            connections.push(deliveries);
            connections.push(bulk);
            // Old connections whose jobs all settled can go.
            if in_flight.is_empty() {
                for old in connections.drain(..) {
                    old.close().await;
                }
            }
        }
        dead_letters.abort();
        if let Some(upkeep) = upkeep {
            upkeep.abort();
        }
        let drained = tokio::time::timeout(self.config.shutdown_grace, async {
            while in_flight.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                jobs = in_flight.len(),
                "jobs still running after the grace period; handing them back"
            );
            hand_back.cancel();
            let settled = tokio::time::timeout(Duration::from_secs(5), async {
                while in_flight.join_next().await.is_some() {}
            })
            .await;
            if settled.is_err() {
                in_flight.abort_all();
                while in_flight.join_next().await.is_some() {}
            }
        }
        // Closing the connection returns every unacknowledged message to the queue.
        for old in connections {
            old.close().await;
        }
        tracing::info!(worker.id = %self.worker_id, "worker stopped");
    }
}

/// How many of a worker's `concurrency` slots batch items may hold at once: all but one, so
/// an interactive job always finds a slot; a worker with a single slot shares it.
fn bulk_share(concurrency: u16) -> u16 {
    concurrency.saturating_sub(1).max(1)
}

/// The host's name for worker ids (from the kernel, so no environment lookup is needed).
fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

#[cfg(test)]
mod tests {
    use super::bulk_share;

    #[test]
    fn batch_items_leave_one_slot_for_interactive_jobs() {
        assert_eq!(bulk_share(1), 1);
        assert_eq!(bulk_share(2), 1);
        assert_eq!(bulk_share(8), 7);
    }
}
