//! Records the jobs the URL cache answers at once in groups ([`Store::insert_answered`]): every
//! request hands its job to one task, which takes all the jobs waiting whenever it is free. At
//! a trickle each job goes alone, as soon as it comes; under a viral burst one statement records
//! the dozens that arrived while the previous one ran.

use imgmeta_store::{NewJob, Store, StoreError, Submitted};
use tokio::sync::{mpsc, oneshot};

/// Most jobs one statement records.
const MAX_GROUP: usize = 256;
/// Jobs that may wait for the task before a request waits to hand its job over.
const QUEUE: usize = 4_096;

struct Pending {
    job: NewJob,
    reply: oneshot::Sender<Result<Submitted, StoreError>>,
}

/// The handle requests use; clones share the task, which ends when the last one is dropped.
#[derive(Clone)]
pub struct AnsweredWriter {
    store: Store,
    queue: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for AnsweredWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnsweredWriter")
            .field("waiting", &(QUEUE - self.queue.capacity()))
            .finish()
    }
}

impl AnsweredWriter {
    /// Starts the task (on the current tokio runtime), with a database connection of its own:
    /// waiting in the shared pool's queue behind every request would make each group wait
    /// for dozens of other statements.
    pub fn spawn(store: Store) -> Self {
        let (queue, jobs) = mpsc::channel(QUEUE);
        tokio::spawn(run(store.with_own_pool(1), jobs));
        Self { store, queue }
    }

    /// Records an answered job ([`imgmeta_store::is_answered`]) as `Store::insert_job` would:
    /// `Created`, or `QuotaExceeded` when the key's or account's quota has no room for it.
    pub async fn insert(&self, job: NewJob) -> Result<Submitted, StoreError> {
        let id = job.id;
        let (reply, answer) = oneshot::channel();
        if let Err(mpsc::error::SendError(pending)) = self.queue.send(Pending { job, reply }).await
        {
            // The task is gone (the process is stopping): record it here.
            return self.store.insert_job(&pending.job).await;
        }
        answer.await.unwrap_or_else(|_| {
            Err(StoreError::Corrupt {
                id: id.as_uuid(),
                reason: "the task recording answered jobs stopped before answering".to_owned(),
            })
        })
    }
}

async fn run(store: Store, mut queue: mpsc::Receiver<Pending>) {
    let mut group = Vec::with_capacity(MAX_GROUP);
    while queue.recv_many(&mut group, MAX_GROUP).await > 0 {
        record(&store, std::mem::take(&mut group)).await;
    }
}

/// One statement for the group; when it does not fit some quota (or fails), each job on its
/// own, so each gets exactly the answer `insert_job` gives it.
async fn record(store: &Store, group: Vec<Pending>) {
    let (jobs, replies): (Vec<NewJob>, Vec<_>) =
        group.into_iter().map(|p| (p.job, p.reply)).unzip();
    match store.insert_answered(&jobs).await {
        Ok(Some(records)) => {
            for (reply, record) in replies.into_iter().zip(records) {
                // A request that went away meanwhile still has its job recorded.
                let _ = reply.send(Ok(Submitted::Created(record)));
            }
            return;
        }
        Ok(None) => {}
        Err(error) => tracing::warn!(
            kind = "error",
            jobs = jobs.len(),
            error = %error,
            "recording a group of answered jobs failed; recording them one by one"
        ),
    }
    for (job, reply) in jobs.iter().zip(replies) {
        let _ = reply.send(store.insert_job(job).await);
    }
}
