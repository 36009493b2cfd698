//! Runs of a job: claiming it with a new attempt number and a lease, renewing the lease, and
//! ending the run (success, failure, retry later, or handing it back). Every write names the
//! run's attempt, so a stale run can never overwrite a newer one.

use crate::jobs::decode_spec;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{ErrorBody, JobId, JobSpec, JobStatus};
use sqlx::Row;
use std::time::Duration;

/// What happened when a worker tried to claim a job for a run.
// Returned once per claim and matched at once, never stored: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller now owns run number `attempt` until its lease expires. `redact_gps`: the
    /// job's account stores no GPS coordinates. `stored_url`: when the job leads its URL's
    /// flight and the claim named a model, the URL cache's positive entry for that URL and
    /// model (what a conditional fetch revalidates), read by the claim itself.
    Claimed {
        attempt: i32,
        spec: JobSpec,
        redact_gps: bool,
        stored_url: Option<crate::UrlEntry>,
    },
    /// The job already ended; a late or duplicate message can be dropped.
    Finished(JobStatus),
    /// Another run holds a valid lease on it.
    Busy { lease_until: DateTime<Utc> },
    /// No such job (it was never committed, or was deleted).
    NotFound,
}

impl Store {
    /// Claims a queued job (or one whose previous run's lease expired) for a new run.
    ///
    /// A run whose lease expired is taken over only while the job has attempts left; a job whose
    /// every run ended with its worker gone is failed as `poison` instead.
    pub async fn claim(
        &self,
        id: JobId,
        worker_id: &str,
        lease: Duration,
        max_attempts: i32,
    ) -> Result<Claim, StoreError> {
        self.claim_leading(id, worker_id, lease, max_attempts, None)
            .await
    }

    /// [`Store::claim`], also reading, in the same statement, the URL cache entry under
    /// `model` of the flight the job leads (`Claim::Claimed::stored_url`).
    pub async fn claim_leading(
        &self,
        id: JobId,
        worker_id: &str,
        lease: Duration,
        max_attempts: i32,
        model: Option<&str>,
    ) -> Result<Claim, StoreError> {
        let claimed = sqlx::query(concat!(
            "WITH claimed AS (
                 UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(),
                        lease_until = now() + $2, worker_id = $3, updated_at = now()
                 WHERE id = $1 AND (status = 'queued'
                       OR (status = 'running' AND lease_until < now() AND attempts < $4))
                 RETURNING attempts, url, input_sha256, input_bytes, tasks, min_score, dream,
                           bypass_cache, webhook_url, id,
                           (SELECT redact_gps FROM accounts WHERE accounts.id = jobs.account_id)
                               AS redact_gps
             )
             SELECT claimed.*, ",
            crate::url_cache::entry_columns!(),
            "
             FROM claimed
             LEFT JOIN url_flights f ON f.leader_job = claimed.id AND $5::text IS NOT NULL
             LEFT JOIN url_cache c ON c.url_key = f.url_key AND c.model = $5
                                  AND c.error_code IS NULL"
        ))
        .bind(id.as_uuid())
        .bind(lease)
        .bind(worker_id)
        .bind(max_attempts)
        .bind(model)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = claimed {
            let redact_gps: Option<bool> = row.try_get("redact_gps")?;
            let stored_url = match row.try_get::<Option<String>, _>("model")? {
                Some(_) => Some(crate::url_cache::decode_entry(&row)?),
                None => None,
            };
            return Ok(Claim::Claimed {
                attempt: row.try_get("attempts")?,
                spec: decode_spec(&row)?,
                // Unknowable only if the account vanished: then store nothing personal.
                redact_gps: redact_gps.unwrap_or(true),
                stored_url,
            });
        }
        let poisoned = sqlx::query(
            "UPDATE jobs SET status = 'failed', error_code = $2,
                    error_message = 'the job stopped its worker on each of its ' || attempts || ' attempts',
                    finished_at = now(), lease_until = NULL, updated_at = now()
             WHERE id = $1 AND status = 'running' AND lease_until < now() AND attempts >= $3",
        )
        .bind(id.as_uuid())
        .bind(imgmeta_domain::ErrorCode::Poison.as_str())
        .bind(max_attempts)
        .execute(&self.pool)
        .await?;
        if poisoned.rows_affected() == 1 {
            return Ok(Claim::Finished(JobStatus::Failed));
        }
        let current = sqlx::query("SELECT status, lease_until FROM jobs WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = current else {
            return Ok(Claim::NotFound);
        };
        let status = crate::jobs::decode_status(id, &row)?;
        if status.is_terminal() {
            return Ok(Claim::Finished(status));
        }
        let lease_until: Option<DateTime<Utc>> = row.try_get("lease_until")?;
        Ok(Claim::Busy {
            lease_until: lease_until.unwrap_or_else(Utc::now),
        })
    }

    /// Extends the lease of run `attempt`; false when that run no longer owns the job.
    pub async fn renew_lease(
        &self,
        id: JobId,
        attempt: i32,
        lease: Duration,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = now() + $3, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .bind(lease)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends run `attempt` as failed; false when that run no longer owns the job.
    pub async fn fail(
        &self,
        id: JobId,
        attempt: i32,
        error: &ErrorBody,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', error_code = $3, error_message = $4,
                    finished_at = now(), lease_until = NULL, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .bind(error.code.as_str())
        .bind(&error.message)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Ends run `attempt` with a transient error and schedules another run after `delay`: the
    /// job is queued again and its next message waits in the outbox until then.
    pub async fn retry_later(
        &self,
        id: JobId,
        attempt: i32,
        error: &ErrorBody,
        delay: Duration,
    ) -> Result<bool, StoreError> {
        self.requeue(id, attempt, error, delay, None).await
    }

    /// Queues run `attempt`'s job again after `delay`, keeping `error` as its last error, with
    /// its next message in the outbox in the same transaction. With `free_for`, the run is given
    /// back (not counted among the job's attempts) while the job is younger than that. False
    /// when that run no longer owns the job.
    pub(crate) async fn requeue(
        &self,
        id: JobId,
        attempt: i32,
        error: &ErrorBody,
        delay: Duration,
        free_for: Option<Duration>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', lease_until = NULL, worker_id = NULL,
                    attempts = attempts - CASE WHEN created_at > now() - $5 THEN 1 ELSE 0 END,
                    last_error_code = $3, last_error_message = $4, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .bind(error.code.as_str())
        .bind(&error.message)
        // No free time: the comparison with NULL is never true, so the run counts.
        .bind(free_for)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO outbox (job_id, available_at) VALUES ($1, now() + $2)")
            .bind(id.as_uuid())
            .bind(delay)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.outbox_written();
        Ok(true)
    }

    /// Hands run `attempt` back at shutdown: the job is queued again with a new message in the
    /// outbox (so the delivery can be acknowledged rather than returned, which would count
    /// towards the broker's delivery limit). The interrupted attempt does not count.
    pub async fn release(&self, id: JobId, attempt: i32) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_until = NULL,
                    worker_id = NULL, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            tx.rollback().await?;
            return Ok(false);
        }
        sqlx::query("INSERT INTO outbox (job_id) VALUES ($1)")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.outbox_written();
        Ok(true)
    }
}
