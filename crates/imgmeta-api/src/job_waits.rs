//! Requests waiting for their job's end (`POST /img` holds the connection until then): one task
//! per API process reads those of all the awaited jobs that have ended, in one statement every
//! [`POLL`], and hands each its job. A viral burst's followers, which end in one commit
//! with their leader, are all woken by the same round, however many they are; each request
//! waiting on its own would poll with a growing pause and see the end up to that pause late.

use imgmeta_domain::JobId;
use imgmeta_store::{JobRecord, Store};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

/// How often the awaited jobs are checked while any request waits.
const POLL: Duration = Duration::from_millis(20);
/// Pause after a failed check (the database unreachable): waiting requests run into their own
/// deadlines meanwhile and answer with the job as last read.
const RETRY: Duration = Duration::from_millis(500);

type Waiters<T> = HashMap<JobId, Vec<oneshot::Sender<T>>>;

/// The jobs this process's requests wait for; clones share them.
pub type JobWaits = Waits<JobRecord>;

/// Requests waiting for a `T` by job id (a [`JobRecord`] outside the tests).
pub struct Waits<T> {
    waiters: Arc<Mutex<Waiters<T>>>,
    /// Wakes the task when the first request starts waiting.
    added: Arc<Notify>,
}

impl<T> Clone for Waits<T> {
    fn clone(&self) -> Self {
        Self {
            waiters: self.waiters.clone(),
            added: self.added.clone(),
        }
    }
}

impl<T> Default for Waits<T> {
    fn default() -> Self {
        Self {
            waiters: Arc::default(),
            added: Arc::default(),
        }
    }
}

impl<T> std::fmt::Debug for Waits<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JobWaits")
            .field(
                "jobs",
                &self.waiters.lock().map_or(0, |waiters| waiters.len()),
            )
            .finish()
    }
}

impl<T: Clone> Waits<T> {
    fn lock(&self) -> std::sync::MutexGuard<'_, Waiters<T>> {
        // A panic while holding the lock leaves the map consistent (every change is one call).
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Job `id` once it has ended, as [`watch`]'s round read it; `None` when `timeout` passed
    /// first. The caller must own the job (the id is the one its own submission created).
    pub(crate) async fn wait(&self, id: JobId, timeout: Duration) -> Option<T> {
        let (tx, rx) = oneshot::channel();
        self.lock().entry(id).or_default().push(tx);
        self.added.notify_one();
        // A timed-out request's sender is dropped by the next round (it sees the receiver gone).
        tokio::time::timeout(timeout, rx).await.ok()?.ok()
    }

    /// The awaited jobs, dropping those no request waits for any more.
    fn awaited(&self) -> Vec<JobId> {
        let mut waiters = self.lock();
        waiters.retain(|_, senders| {
            senders.retain(|tx| !tx.is_closed());
            !senders.is_empty()
        });
        waiters.keys().copied().collect()
    }

    /// Hands each ended job to the requests waiting for it.
    fn wake(&self, ended: impl IntoIterator<Item = (JobId, T)>) {
        let mut waiters = self.lock();
        for (id, job) in ended {
            for tx in waiters.remove(&id).unwrap_or_default() {
                let _ = tx.send(job.clone());
            }
        }
    }
}

/// Checks the awaited jobs every [`POLL`] while any request waits, idle otherwise, until
/// `shutdown`.
pub async fn watch(store: Store, waits: JobWaits, shutdown: CancellationToken) {
    loop {
        let awaited = waits.awaited();
        let pause = if awaited.is_empty() {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = waits.added.notified() => {}
            }
            // Let the job's own work begin: nothing has ended a moment after it was submitted.
            POLL
        } else {
            match store.ended_among(&awaited).await {
                Ok(ended) => {
                    waits.wake(ended.into_iter().map(|job| (job.id, job)));
                    POLL
                }
                Err(error) => {
                    tracing::warn!(kind = "error", error = %error, "cannot check the jobs requests wait for");
                    RETRY
                }
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(pause) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_woken_job_wakes_every_request_waiting_for_it_and_no_other() {
        let waits = Waits::<u32>::default();
        let (a, b) = (JobId::new(), JobId::new());
        let first = tokio::spawn({
            let waits = waits.clone();
            async move { waits.wait(a, Duration::from_secs(5)).await }
        });
        let second = tokio::spawn({
            let waits = waits.clone();
            async move { waits.wait(a, Duration::from_secs(5)).await }
        });
        let other = tokio::spawn({
            let waits = waits.clone();
            async move { waits.wait(b, Duration::from_millis(300)).await }
        });
        while waits.lock().get(&a).map_or(0, Vec::len) < 2 || !waits.lock().contains_key(&b) {
            tokio::task::yield_now().await;
        }
        waits.wake([(a, 7)]);
        assert_eq!(first.await.unwrap(), Some(7));
        assert_eq!(second.await.unwrap(), Some(7));
        // b was never woken: its request runs into its timeout.
        assert_eq!(other.await.unwrap(), None);
        // ...and the next round forgets it.
        assert!(waits.awaited().is_empty());
    }
}
