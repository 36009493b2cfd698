//! Job rows: submission, lookup, claiming a run, renewing its lease and recording its outcome.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{
    ErrorBody, ErrorCode, ImageUrl, JobId, JobSpec, JobStatus, MinScore, TaskSet,
};
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::time::Duration;

/// A job as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    pub id: JobId,
    pub spec: JobSpec,
    pub status: JobStatus,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<ErrorBody>,
    pub result: Option<serde_json::Value>,
}

/// A job about to be accepted.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub spec: JobSpec,
}

/// What happened when a worker tried to claim a job for a run.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The caller now owns run number `attempt` until its lease expires.
    Claimed { attempt: i32, spec: JobSpec },
    /// The job already ended; a late or duplicate message can be dropped.
    Finished(JobStatus),
    /// Another worker holds a valid lease on it.
    Busy { lease_until: DateTime<Utc> },
    /// No such job (it was never committed, or was deleted).
    NotFound,
}

/// The columns [`decode_job`] reads, as a macro so queries stay `&'static str` (sqlx only
/// accepts dynamic SQL strings explicitly marked as audited).
macro_rules! job_columns {
    () => {
        "id, url, tasks, min_score, status, attempts, created_at, started_at, \
         finished_at, error_code, error_message, result"
    };
}

impl Store {
    /// Records a new queued job.
    pub async fn insert_job(&self, job: &NewJob) -> Result<JobRecord, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO jobs (id, url, tasks, min_score) VALUES ($1, $2, $3, $4) RETURNING ",
            job_columns!()
        ))
        .bind(job.id.as_uuid())
        .bind(job.spec.url.as_str())
        .bind(job.spec.tasks.as_strs())
        .bind(job.spec.min_score.value())
        .fetch_one(&self.pool)
        .await?;
        decode_job(&row)
    }

    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_job).transpose()
    }

    /// Claims a queued job (or one whose previous run's lease expired) for a new run.
    pub async fn claim(
        &self,
        id: JobId,
        worker_id: &str,
        lease: Duration,
    ) -> Result<Claim, StoreError> {
        let claimed = sqlx::query(
            "UPDATE jobs SET status = 'running', attempts = attempts + 1, started_at = now(),
                    lease_until = now() + $2, worker_id = $3, updated_at = now()
             WHERE id = $1 AND (status = 'queued' OR (status = 'running' AND lease_until < now()))
             RETURNING attempts, url, tasks, min_score, id",
        )
        .bind(id.as_uuid())
        .bind(lease)
        .bind(worker_id)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = claimed {
            return Ok(Claim::Claimed {
                attempt: row.try_get("attempts")?,
                spec: decode_spec(&row)?,
            });
        }
        let current = sqlx::query("SELECT status, lease_until FROM jobs WHERE id = $1")
            .bind(id.as_uuid())
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = current else {
            return Ok(Claim::NotFound);
        };
        let status = decode_status(id, &row)?;
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

    /// Stores the result of run `attempt`; false when that run no longer owns the job
    /// (a newer run took over, or the job was cancelled), in which case nothing is written.
    pub async fn complete(
        &self,
        id: JobId,
        attempt: i32,
        result: &serde_json::Value,
    ) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'succeeded', result = $3, finished_at = now(),
                    lease_until = NULL, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .bind(result)
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
}

fn decode_status(id: JobId, row: &PgRow) -> Result<JobStatus, StoreError> {
    let raw: String = row.try_get("status")?;
    JobStatus::parse(&raw).ok_or_else(|| StoreError::Corrupt {
        id: id.as_uuid(),
        reason: format!("unknown status {raw:?}"),
    })
}

fn decode_spec(row: &PgRow) -> Result<JobSpec, StoreError> {
    let id: uuid::Uuid = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::Corrupt { id, reason };
    let url: String = row.try_get("url")?;
    let tasks: Vec<String> = row.try_get("tasks")?;
    let min_score: f32 = row.try_get("min_score")?;
    Ok(JobSpec {
        url: ImageUrl::parse(&url).map_err(|e| corrupt(e.message))?,
        tasks: TaskSet::parse(&tasks).map_err(|e| corrupt(e.message))?,
        min_score: MinScore::parse(f64::from(min_score)).map_err(|e| corrupt(e.message))?,
    })
}

fn decode_job(row: &PgRow) -> Result<JobRecord, StoreError> {
    let id = JobId::from_uuid(row.try_get("id")?);
    let error_code: Option<String> = row.try_get("error_code")?;
    let error = match error_code {
        None => None,
        Some(code) => {
            let code: ErrorCode = serde_json::from_value(serde_json::Value::String(code.clone()))
                .map_err(|_| StoreError::Corrupt {
                id: id.as_uuid(),
                reason: format!("unknown error code {code:?}"),
            })?;
            let message: Option<String> = row.try_get("error_message")?;
            Some(ErrorBody::new(code, message.unwrap_or_default()))
        }
    };
    Ok(JobRecord {
        id,
        spec: decode_spec(row)?,
        status: decode_status(id, row)?,
        attempts: row.try_get("attempts")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        error,
        result: row.try_get("result")?,
    })
}

impl Store {
    /// Removes a job that was recorded but never handed to the broker; only while still queued.
    pub async fn withdraw_queued(&self, id: JobId) -> Result<bool, StoreError> {
        let done =
            sqlx::query("DELETE FROM jobs WHERE id = $1 AND status = 'queued' AND attempts = 0")
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

impl Store {
    /// Hands run `attempt` back at shutdown: the job is queued again for another worker.
    pub async fn release(&self, id: JobId, attempt: i32) -> Result<bool, StoreError> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', lease_until = NULL, worker_id = NULL, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Re-queues up to `limit` running jobs whose lease expired (their worker died or hung) and
    /// returns their ids, to be published again. Concurrent callers never get the same job.
    pub async fn requeue_expired(&self, limit: i64) -> Result<Vec<JobId>, StoreError> {
        let ids: Vec<uuid::Uuid> = sqlx::query_scalar(
            "UPDATE jobs SET status = 'queued', lease_until = NULL, worker_id = NULL, updated_at = now()
             WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_until < now()
                          ORDER BY lease_until LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING id",
        )
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        Ok(ids.into_iter().map(JobId::from_uuid).collect())
    }
}
