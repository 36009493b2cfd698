//! Job rows: submission (with its outbox message and idempotency key), lookup, cancellation.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{
    ErrorBody, ErrorCode, ImageUrl, JobId, JobSpec, JobStatus, MinScore, TaskSet,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

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
    pub idempotency: Option<Idempotency>,
    /// The W3C `traceparent` of the span that accepted the job, when traces are exported.
    pub trace_parent: Option<String>,
}

/// A client's idempotency key and a digest of the request it came with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Idempotency {
    pub key: String,
    pub request_digest: String,
}

/// The outcome of a submission.
#[derive(Debug, Clone, PartialEq)]
pub enum Submitted {
    /// A new job was recorded, with its message in the outbox.
    Created(JobRecord),
    /// The idempotency key was used before with the same request: the original job.
    Existing(JobRecord),
    /// The idempotency key was used before with a different request.
    KeyReused,
}

/// The outcome of a cancellation request.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    Cancelled(JobRecord),
    AlreadyFinished(JobRecord),
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
    /// Records a new queued job and, in the same transaction, the message owed to the broker,
    /// so an accepted job can never lack a message. A repeated idempotency key returns the
    /// original job instead (or `KeyReused` if the request differs).
    pub async fn insert_job(&self, job: &NewJob) -> Result<Submitted, StoreError> {
        let (key, digest) = match &job.idempotency {
            Some(i) => (Some(i.key.as_str()), Some(i.request_digest.as_str())),
            None => (None, None),
        };
        // One statement, so one round trip and an implicit transaction: the outbox row exists
        // exactly when the job row does.
        let inserted = sqlx::query(concat!(
            "WITH job AS (
                 INSERT INTO jobs (id, url, tasks, min_score, idempotency_key, request_digest,
                                   trace_parent)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
                 RETURNING *
             ), message AS (
                 INSERT INTO outbox (job_id) SELECT id FROM job
             )
             SELECT ",
            job_columns!(),
            " FROM job"
        ))
        .bind(job.id.as_uuid())
        .bind(job.spec.url.as_str())
        .bind(job.spec.tasks.as_strs())
        .bind(job.spec.min_score.value())
        .bind(key)
        .bind(digest)
        .bind(job.trace_parent.as_deref())
        .fetch_optional(&self.pool)
        .await?;
        match inserted {
            Some(row) => Ok(Submitted::Created(decode_job(&row)?)),
            None => {
                self.existing_for_key(key.unwrap_or_default(), digest.unwrap_or_default())
                    .await
            }
        }
    }

    async fn existing_for_key(&self, key: &str, digest: &str) -> Result<Submitted, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT request_digest, ",
            job_columns!(),
            " FROM jobs WHERE idempotency_key = $1"
        ))
        .bind(key)
        .fetch_one(&self.pool)
        .await?;
        let stored: Option<String> = row.try_get("request_digest")?;
        if stored.as_deref() == Some(digest) {
            Ok(Submitted::Existing(decode_job(&row)?))
        } else {
            Ok(Submitted::KeyReused)
        }
    }

    /// Cancels a job that has not finished. A worker running it loses its lease at the next
    /// renewal and stops; one that picks up its message skips it.
    pub async fn cancel(&self, id: JobId) -> Result<Cancelled, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL,
                    updated_at = now()
             WHERE id = $1 AND status IN ('queued', 'running')
             RETURNING ",
            job_columns!()
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            sqlx::query("DELETE FROM outbox WHERE job_id = $1")
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?;
            return Ok(Cancelled::Cancelled(decode_job(&row)?));
        }
        Ok(match self.get_job(id).await? {
            Some(job) => Cancelled::AlreadyFinished(job),
            None => Cancelled::NotFound,
        })
    }

    pub async fn get_job(&self, id: JobId) -> Result<Option<JobRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.reads)
        .await?;
        row.as_ref().map(decode_job).transpose()
    }
}

pub(crate) fn decode_status(id: JobId, row: &PgRow) -> Result<JobStatus, StoreError> {
    let raw: String = row.try_get("status")?;
    JobStatus::parse(&raw).ok_or_else(|| StoreError::Corrupt {
        id: id.as_uuid(),
        reason: format!("unknown status {raw:?}"),
    })
}

pub(crate) fn decode_spec(row: &PgRow) -> Result<JobSpec, StoreError> {
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
