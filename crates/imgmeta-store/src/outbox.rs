//! The outbox of messages owed to the broker, and the sweeps that keep every live job moving:
//! expired leases, messages that went missing, and dead-lettered messages.

use crate::{Store, StoreError};
use imgmeta_domain::{ErrorCode, JobId};
use std::time::Duration;

/// One message owed to the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    pub id: i64,
    pub job_id: JobId,
    /// The job's trace context, sent along as the message's `traceparent` header.
    pub trace_parent: Option<String>,
    /// A batch item's message, for the bulk queue.
    pub bulk: bool,
    /// Taken more than [`LATE_AFTER`] after it was owed (the broker was away, or the outbox
    /// backed up): its publication is written on the job, for the stale-message sweep. Never
    /// for a batch item, whose sweep goes by the bulk queue's depth instead.
    pub late: bool,
}

/// A message published within this time of being owed counts as published when it was owed
/// (`jobs.published_at`, or the job's creation), so the common case writes nothing on the job.
/// Short beside the stale-message ages (`IMGMETA_REPUBLISH_*`: 15 min, or 30 s with an empty
/// queue, where a job still queued has a message in flight to a worker or none), long enough
/// that a batch's items, created when its upload began, are not late for the upload's length.
pub const LATE_AFTER: Duration = Duration::from_secs(60);

/// What a sweep of expired leases did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Jobs queued again (with a new message in the outbox).
    pub requeued: u64,
    /// Jobs that had used up their attempts and were failed as `poison`.
    pub poisoned: u64,
}

impl Store {
    /// Takes up to `limit` due messages for publishing. They are hidden from other relays for
    /// `hold`; a relay that dies before confirming them just lets them come due again.
    pub async fn take_due_messages(
        &self,
        limit: i64,
        hold: Duration,
    ) -> Result<Vec<OutboxMessage>, StoreError> {
        // id, job, traceparent, bulk, late
        type Taken = (i64, uuid::Uuid, Option<String>, Option<bool>, Option<bool>);
        let rows: Vec<Taken> = sqlx::query_as(
            "UPDATE outbox o SET available_at = now() + $2
                 FROM jobs j
                 WHERE o.id IN (SELECT id FROM outbox WHERE available_at <= now()
                                ORDER BY available_at, id LIMIT $1 FOR UPDATE SKIP LOCKED)
                   AND j.id = o.job_id
                 RETURNING o.id, o.job_id, j.trace_parent, j.batch_id IS NOT NULL,
                           j.batch_id IS NULL
                           AND coalesce(j.published_at, j.created_at) < now() - $3",
        )
        .bind(limit)
        .bind(hold)
        .bind(LATE_AFTER)
        // Planned with the values each time: a plan cached while the outbox was nearly
        // empty would scan all of it once a batch fills it (see `mark_published`).
        .persistent(false)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, job_id, trace_parent, bulk, late)| OutboxMessage {
                id,
                job_id: JobId::from_uuid(job_id),
                trace_parent,
                bulk: bulk.unwrap_or(false),
                late: late.unwrap_or(true),
            })
            .collect())
    }

    /// Forgets messages the broker confirmed, and writes on each late one's job when it was
    /// published, in one statement.
    pub async fn mark_published(&self, messages: &[OutboxMessage]) -> Result<(), StoreError> {
        let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
        let late: Vec<uuid::Uuid> = messages
            .iter()
            .filter(|m| m.late)
            .map(|m| m.job_id.as_uuid())
            .collect();
        // Unnamed statements, planned with their values on every call: PostgreSQL's cached
        // generic plan for `id = ANY($1)`, made while the outbox held a few rows, is a
        // sequential scan, which took 0.4 to 3.5 s per round once a batch put a million rows
        // in it. Without late messages the jobs table is not touched at all (its
        // statement-level triggers would run even for an update of no row).
        let query = match late.is_empty() {
            true => sqlx::query("DELETE FROM outbox WHERE id = ANY($1)").bind(&ids),
            false => sqlx::query(
                "WITH published AS (DELETE FROM outbox WHERE id = ANY($1))
                 UPDATE jobs SET published_at = now() WHERE id = ANY($2)",
            )
            .bind(&ids)
            .bind(&late),
        };
        query.persistent(false).execute(&self.pool).await?;
        Ok(())
    }

    /// Gives back messages this relay could not publish, due again after `delay`, so another
    /// relay (one that reaches the broker) need not wait out the hold.
    pub async fn release_messages(
        &self,
        messages: &[OutboxMessage],
        delay: Duration,
    ) -> Result<(), StoreError> {
        let ids: Vec<i64> = messages.iter().map(|m| m.id).collect();
        sqlx::query("UPDATE outbox SET available_at = now() + $2 WHERE id = ANY($1)")
            .bind(&ids)
            .bind(delay)
            .persistent(false)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Messages waiting in the outbox, counted up to `cap` (so the count stays cheap).
    pub async fn outbox_backlog(&self, cap: i64) -> Result<i64, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT count(*) FROM (SELECT 1 FROM outbox LIMIT $1) AS capped")
                .bind(cap)
                .fetch_one(&self.pool)
                .await?,
        )
    }

    /// Running jobs whose lease expired (their worker died or hung): queued again with a new
    /// message, or failed as `poison` once they have used `max_attempts` runs.
    pub async fn sweep_expired_leases(
        &self,
        limit: i64,
        max_attempts: i32,
    ) -> Result<Sweep, StoreError> {
        let (poisoned, requeued): (i64, i64) = sqlx::query_as(
            "WITH expired AS (
                 SELECT id, attempts FROM jobs
                 WHERE status = 'running' AND lease_until < now()
                 ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED
             ), poisoned AS (
                 UPDATE jobs j SET status = 'failed', error_code = $3,
                        error_message = 'the job stopped its worker on each of its ' || j.attempts || ' attempts',
                        finished_at = now(), lease_until = NULL, updated_at = now()
                 FROM expired e WHERE j.id = e.id AND e.attempts >= $2
                 RETURNING j.id
             ), requeued AS (
                 UPDATE jobs j SET status = 'queued', lease_until = NULL, worker_id = NULL,
                        last_error_code = 'internal', last_error_message = 'the worker running it stopped',
                        updated_at = now()
                 FROM expired e WHERE j.id = e.id AND e.attempts < $2
                 RETURNING j.id
             ), messages AS (
                 INSERT INTO outbox (job_id) SELECT id FROM requeued RETURNING job_id
             )
             SELECT (SELECT count(*) FROM poisoned), (SELECT count(*) FROM messages)",
        )
        .bind(limit)
        .bind(max_attempts)
        .bind(ErrorCode::Poison.as_str())
        .fetch_one(&self.pool)
        .await?;
        if requeued > 0 {
            self.outbox_written();
        }
        Ok(Sweep {
            requeued: requeued as u64,
            poisoned: poisoned as u64,
        })
    }

    /// Queued jobs whose last message was published more than `older_than` ago and that have
    /// no message pending get a new one: a safety net should a message ever go missing in the
    /// broker. Duplicates are harmless (claims are exclusive). A job whose message left the
    /// outbox promptly has no `published_at` (see [`LATE_AFTER`]): its creation stands for it.
    /// `bulk` picks the lane: batch items (which may wait in their queue for hours, so the
    /// caller sweeps them only while the bulk queue is empty) or the other jobs.
    pub async fn republish_stale(
        &self,
        limit: i64,
        older_than: Duration,
        bulk: bool,
    ) -> Result<u64, StoreError> {
        let n: i64 = sqlx::query_scalar(
            "WITH stale AS (
                 SELECT j.id FROM jobs j
                 WHERE j.status = 'queued' AND coalesce(j.published_at, j.created_at) < now() - $2
                   AND (j.batch_id IS NOT NULL) = $3
                   -- A flight's followers have no message of their own: their leader's run
                   -- ends them (the flight machinery hands over a failed or dead leader).
                   AND j.follows IS NULL
                   AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.job_id = j.id)
                 ORDER BY coalesce(j.published_at, j.created_at) LIMIT $1
                 FOR UPDATE SKIP LOCKED
             ), bumped AS (
                 UPDATE jobs j SET published_at = now() FROM stale s WHERE j.id = s.id RETURNING j.id
             ), messages AS (
                 INSERT INTO outbox (job_id) SELECT id FROM bumped RETURNING job_id
             )
             SELECT count(*) FROM messages",
        )
        .bind(limit)
        .bind(older_than)
        .bind(bulk)
        .fetch_one(&self.pool)
        .await?;
        if n > 0 {
            self.outbox_written();
        }
        Ok(n as u64)
    }

    /// A job whose message the broker dead-lettered (its delivery limit ran out, each delivery
    /// ending with the worker gone). If its runs plus this dead letter reach `max_attempts`, it
    /// is the culprit: `failed` with code `poison`. If it ran fewer times it was a bystander, a message
    /// waiting in the prefetch of a worker that another job crashed: it is re-queued with a
    /// fresh message, the dead letter counting as one attempt so this cannot repeat forever.
    /// Jobs already finished, or running under a live lease, are left alone.
    pub async fn dead_lettered(
        &self,
        id: JobId,
        deliveries: i64,
        max_attempts: i32,
    ) -> Result<DeadLetter, StoreError> {
        let (failed, requeued): (i64, i64) = sqlx::query_as(
            "WITH target AS (
                 SELECT id, attempts FROM jobs
                 WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
                 FOR UPDATE
             ), failed AS (
                 UPDATE jobs j SET status = 'failed', error_code = $2, error_message = $3,
                        finished_at = now(), lease_until = NULL, updated_at = now()
                 FROM target t WHERE j.id = t.id AND t.attempts + 1 >= $4
                 RETURNING j.id
             ), requeued AS (
                 UPDATE jobs j SET status = 'queued', attempts = j.attempts + 1,
                        lease_until = NULL, worker_id = NULL, published_at = now(),
                        last_error_code = 'internal',
                        last_error_message = 'its message was in flight on workers that stopped',
                        updated_at = now()
                 FROM target t WHERE j.id = t.id AND t.attempts + 1 < $4
                 RETURNING j.id
             ), messages AS (
                 INSERT INTO outbox (job_id) SELECT id FROM requeued RETURNING job_id
             )
             SELECT (SELECT count(*) FROM failed), (SELECT count(*) FROM messages)",
        )
        .bind(id.as_uuid())
        .bind(ErrorCode::Poison.as_str())
        .bind(format!(
            "the job's message was delivered {deliveries} times and its worker stopped each time"
        ))
        .bind(max_attempts)
        .fetch_one(&self.pool)
        .await?;
        if requeued > 0 {
            self.outbox_written();
        }
        Ok(match (failed, requeued) {
            (1, _) => DeadLetter::Failed,
            (_, 1) => DeadLetter::Requeued,
            _ => DeadLetter::Untouched,
        })
    }
}

/// What recording a dead letter did to its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadLetter {
    /// The job had used its attempts: failed with code `poison`.
    Failed,
    /// A bystander: queued again with a fresh message.
    Requeued,
    /// Finished already, or running under a live lease.
    Untouched,
}
