//! Job rows: submission (with its outbox message, idempotency key and the daily quotas it is
//! charged to), lookup, listing, cancellation and purging, always within one account.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{
    AccountId, DreamOptions, ErrorBody, ErrorCode, ImageUrl, JobId, JobSpec, JobStatus, MinScore,
    Source, TaskSet, Upload, UploadDigest, WebhookUrl,
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
    /// When the result was erased (on request or by the retention sweep).
    pub purged_at: Option<DateTime<Utc>>,
    /// The error of the latest run that failed in a way worth retrying (shown while the job
    /// waits for its next run, and kept afterwards).
    pub last_error: Option<ErrorBody>,
}

/// Who a job belongs to: every query about a job names its account.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub account: AccountId,
    /// The key that submitted it; `None` when authentication is disabled.
    pub key_id: Option<i64>,
}

/// A job about to be accepted.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub id: JobId,
    pub owner: Owner,
    pub spec: JobSpec,
    /// The uploaded image when `spec.source` is an upload (with that digest), stored as the
    /// job's input in the transaction that accepts it; `None` for a URL job.
    pub input: Option<Upload>,
    pub idempotency: Option<Idempotency>,
    /// The W3C `traceparent` of the span that accepted the job, when traces are exported.
    pub trace_parent: Option<String>,
    /// How the job is admitted: queued with a message, answered at once from the URL cache, or
    /// joining the URL's single flight.
    pub admission: JobAdmission,
}

/// How a new job enters: the usual way, or through the URL cache.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum JobAdmission {
    /// Queued with its message in the outbox.
    #[default]
    Queued,
    /// Recorded already ended, with no message and no run: succeeded with `result`, or failed
    /// with `error` (a URL's remembered error; `result` then holds only how the cache
    /// answered).
    Answered {
        result: serde_json::Value,
        error: Option<ErrorBody>,
    },
    /// Queued under the URL cache key's single flight: it leads the flight (and gets a
    /// message) if none is under way, else it follows the leading job and waits for its commit.
    Flight(String),
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
    /// The key's or the account's daily quota is used up; nothing was recorded.
    QuotaExceeded,
}

/// A job looked up within an account.
// Returned once per request and matched at once, never stored: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum JobLookup {
    Found(JobRecord),
    /// No such job in the account; `foreign` when the id exists in another account (for the
    /// security log only: the client must not be able to tell).
    NotFound {
        foreign: bool,
    },
}

/// The outcome of a cancellation request.
#[derive(Debug, Clone, PartialEq)]
pub enum Cancelled {
    Cancelled(JobRecord),
    AlreadyFinished(JobRecord),
    NotFound { foreign: bool },
}

/// The outcome of a purge request.
#[allow(clippy::large_enum_variant)] // as for JobLookup
#[derive(Debug, Clone, PartialEq)]
pub enum PurgeOutcome {
    /// The tombstone: status kept (a live job is cancelled first), result erased.
    Purged(JobRecord),
    NotFound {
        foreign: bool,
    },
}

/// Which of an account's jobs a list holds. Every field narrows it; the default is all.
#[derive(Debug, Clone, Default)]
pub struct JobFilter {
    pub status: Option<JobStatus>,
    /// Jobs whose detections include this label (an index scan over the detections).
    pub label: Option<String>,
    /// Jobs created strictly after this instant.
    pub created_after: Option<chrono::DateTime<chrono::Utc>>,
    /// The items of this batch.
    pub batch: Option<imgmeta_domain::BatchId>,
    /// The page after this job (the previous page's `next_before`).
    pub before: Option<JobId>,
}

/// A page of an account's jobs, newest first.
#[derive(Debug, Clone)]
pub struct JobPage {
    /// The jobs, without their results.
    pub jobs: Vec<JobRecord>,
    /// Pass as `before` for the next page; `None` on the last page.
    pub next_before: Option<JobId>,
}

/// The columns [`decode_job`] reads, as a macro so queries stay `&'static str` (sqlx only
/// accepts dynamic SQL strings explicitly marked as audited).
macro_rules! job_columns {
    () => {
        "id, url, input_sha256, input_bytes, tasks, min_score, dream, bypass_cache, webhook_url, \
         status, attempts, created_at, started_at, finished_at, error_code, error_message, result, purged_at, \
         last_error_code, last_error_message"
    };
}
pub(crate) use job_columns;

/// Counts `$n` (an SQL expression) accepted submissions against today's (UTC) quota of an
/// `api_keys` or `accounts` row (they keep their quotas in the same columns), in an
/// `UPDATE … SET`.
macro_rules! charge {
    ($n:literal) => {
        concat!(
            "quota_used = CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date
                               THEN quota_used + ",
            $n,
            " ELSE ",
            $n,
            " END,
             quota_day = (now() AT TIME ZONE 'UTC')::date"
        )
    };
}
pub(crate) use charge;

/// Makes the new job `id` the leader of `url_key`'s flight, with its message, or, when a flight
/// is under way, a follower of its leader (no message: it completes in the leader's commit).
/// The upsert takes the flight's row lock and counts the follower on it, so a leader ending
/// concurrently either sees this follower (its delete waits for the lock and returns the
/// count) or has already ended the flight (and this job starts a new one).
async fn join_flight(
    tx: &mut sqlx::PgConnection,
    url_key: &str,
    id: JobId,
) -> Result<(), StoreError> {
    let leader: uuid::Uuid = sqlx::query_scalar(
        "INSERT INTO url_flights (url_key, leader_job) VALUES ($1, $2)
         ON CONFLICT (url_key) DO UPDATE SET followers = url_flights.followers + 1
         RETURNING leader_job",
    )
    .bind(url_key)
    .bind(id.as_uuid())
    .fetch_one(&mut *tx)
    .await?;
    if leader == id.as_uuid() {
        sqlx::query("INSERT INTO outbox (job_id) VALUES ($1)")
            .bind(id.as_uuid())
            .execute(&mut *tx)
            .await?;
    } else {
        sqlx::query("UPDATE jobs SET follows = $2 WHERE id = $1")
            .bind(id.as_uuid())
            .bind(leader)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}

/// The same columns with the result left out, for lists.
macro_rules! summary_columns {
    () => {
        "id, url, input_sha256, input_bytes, tasks, min_score, dream, bypass_cache, webhook_url, \
         status, attempts, created_at, started_at, finished_at, error_code, error_message, NULL::jsonb AS result, \
         purged_at, last_error_code, last_error_message"
    };
}
pub(crate) use summary_columns;

impl Store {
    /// Records a new queued job and, in the same transaction, the message owed to the broker,
    /// so an accepted job can never lack a message, and charges it to its key's and account's
    /// daily quotas (a job that does not fit is not recorded). An upload's bytes are stored as
    /// the job's input in the same transaction. A repeated idempotency key within the account
    /// returns the original job instead, charging nothing (or `KeyReused` if the request
    /// differs).
    pub async fn insert_job(&self, job: &NewJob) -> Result<Submitted, StoreError> {
        let (key, digest) = match &job.idempotency {
            Some(i) => (Some(i.key.as_str()), Some(i.request_digest.as_str())),
            None => (None, None),
        };
        let (url, upload) = match (&job.spec.source, &job.input) {
            (Source::Url(url), None) => (Some(url.as_str()), None),
            (Source::Upload(digest), Some(input)) if input.digest() == digest => {
                (None, Some(input))
            }
            _ => return Err(StoreError::MismatchedInput(job.id.as_uuid())),
        };
        let account = job.owner.account.as_uuid();
        // One statement records the job, its message and input, and charges both quotas when
        // both have room (the key's row locked before the account's, always, so no two
        // submissions wait for each other; concurrent ones on any number of API replicas
        // cannot overrun a quota). A job joining a URL's flight needs a second statement, in
        // a transaction with the first.
        let mut tx = match job.admission {
            JobAdmission::Flight(_) => Some(self.pool.begin().await?),
            _ => None,
        };
        let query = sqlx::query(concat!(
            "WITH fits AS (
                 SELECT coalesce((SELECT CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date
                                              THEN quota_used ELSE 0 END < daily_quota
                                  FROM api_keys WHERE id = $9 FOR UPDATE), $9::int8 IS NULL)
                    AND coalesce((SELECT CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date
                                              THEN quota_used ELSE 0 END < daily_quota
                                  FROM accounts WHERE id = $8 FOR UPDATE), false) AS ok
             ), job AS (
                 INSERT INTO jobs (id, url, tasks, min_score, idempotency_key, request_digest,
                                   trace_parent, account_id, api_key_id, input_sha256,
                                   input_bytes, dream, bypass_cache, status, result,
                                   error_code, error_message, webhook_url, started_at,
                                   finished_at)
                 SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $13, $14, $15, $16,
                        $17, $18, $20, CASE WHEN $15 = 'queued' THEN NULL ELSE now() END,
                        CASE WHEN $15 = 'queued' THEN NULL ELSE now() END
                 WHERE (SELECT ok FROM fits)
                 ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL
                 DO NOTHING
                 RETURNING *
             ), key_charge AS (
                 UPDATE api_keys SET ",
            charge!("1"),
            " WHERE id = $9 AND EXISTS (SELECT 1 FROM job)
             ), account_charge AS (
                 UPDATE accounts SET ",
            charge!("1"),
            " WHERE id = $8 AND EXISTS (SELECT 1 FROM job)
             ), message AS (
                 INSERT INTO outbox (job_id) SELECT id FROM job WHERE $19 AND status = 'queued'
             ), input AS (
                 INSERT INTO job_inputs (job_id, sha256, bytes)
                 SELECT id, input_sha256, $12 FROM job WHERE $12::bytea IS NOT NULL
             )
             SELECT (SELECT ok FROM fits) AS fits, job.* FROM (SELECT 1) one
             LEFT JOIN (SELECT ",
            // The result (if any) is the one this call sent: not read back.
            summary_columns!(),
            " FROM job) job ON true"
        ))
        .bind(job.id.as_uuid())
        .bind(url)
        .bind(job.spec.tasks.as_strs())
        .bind(job.spec.min_score.value())
        .bind(key)
        .bind(digest)
        .bind(job.trace_parent.as_deref())
        .bind(account)
        .bind(job.owner.key_id)
        .bind(upload.map(|u| u.digest().sha256()))
        .bind(upload.map(|u| i64::try_from(u.digest().bytes()).unwrap_or(i64::MAX)))
        .bind(upload.map(|u| u.content().as_ref()))
        .bind(job.spec.dream.as_ref().map(sqlx::types::Json))
        .bind(job.spec.bypass_cache)
        .bind(match &job.admission {
            JobAdmission::Answered { error: None, .. } => "succeeded",
            JobAdmission::Answered { error: Some(_), .. } => "failed",
            _ => "queued",
        })
        .bind(match &job.admission {
            JobAdmission::Answered { result, .. } => Some(result),
            _ => None,
        })
        .bind(match &job.admission {
            JobAdmission::Answered { error: Some(e), .. } => Some(e.code.as_str()),
            _ => None,
        })
        .bind(match &job.admission {
            JobAdmission::Answered { error: Some(e), .. } => Some(e.message.as_str()),
            _ => None,
        })
        .bind(job.admission == JobAdmission::Queued)
        .bind(job.spec.webhook_url.as_ref().map(|w| w.as_str()));
        let row = match tx.as_mut() {
            Some(tx) => query.fetch_one(&mut **tx).await?,
            None => query.fetch_one(&self.pool).await?,
        };
        let fits: bool = row.try_get("fits")?;
        let created: Option<uuid::Uuid> = row.try_get("id")?;
        let Some(_) = created else {
            if let Some(tx) = tx {
                tx.rollback().await?;
            }
            // Nothing was recorded: either the quota had no room, or the Idempotency-Key was
            // used before (a replay, answered even when the quota is used up).
            if let Some(key) = key
                && let Some(existing) = self
                    .existing_for_key(job.owner.account, key, digest.unwrap_or_default())
                    .await?
            {
                return Ok(existing);
            }
            if fits {
                return Err(StoreError::Corrupt {
                    id: job.id.as_uuid(),
                    reason: "a job with room in its quotas was not recorded".to_owned(),
                });
            }
            return Ok(Submitted::QuotaExceeded);
        };
        let mut record = decode_job(&row)?;
        if let JobAdmission::Answered { result, .. } = &job.admission {
            record.result = Some(result.clone());
        }
        if let Some(mut tx) = tx {
            if let JobAdmission::Flight(url_key) = &job.admission {
                join_flight(&mut tx, url_key, job.id).await?;
            }
            tx.commit().await?;
        }
        if record.status == JobStatus::Queued {
            self.outbox_written();
        }
        Ok(Submitted::Created(record))
    }

    async fn existing_for_key(
        &self,
        account: AccountId,
        key: &str,
        digest: &str,
    ) -> Result<Option<Submitted>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT request_digest, ",
            job_columns!(),
            " FROM jobs WHERE account_id = $1 AND idempotency_key = $2"
        ))
        .bind(account.as_uuid())
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let stored: Option<String> = row.try_get("request_digest")?;
        Ok(Some(if stored.as_deref() == Some(digest) {
            Submitted::Existing(decode_job(&row)?)
        } else {
            Submitted::KeyReused
        }))
    }

    /// Cancels a job of `account` that has not finished. A worker running it loses its lease
    /// at the next renewal and stops; one that picks up its message skips it.
    pub async fn cancel(&self, account: AccountId, id: JobId) -> Result<Cancelled, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL,
                    updated_at = now()
             WHERE id = $1 AND account_id = $2 AND status IN ('queued', 'running')
             RETURNING ",
            job_columns!()
        ))
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            sqlx::query("DELETE FROM outbox WHERE job_id = $1")
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?;
            // Jobs waiting on this one's fetch must not wait for ever.
            self.hand_over_flight(id).await?;
            return Ok(Cancelled::Cancelled(decode_job(&row)?));
        }
        Ok(match self.get_job(account, id).await? {
            JobLookup::Found(job) => Cancelled::AlreadyFinished(job),
            JobLookup::NotFound { foreign } => Cancelled::NotFound { foreign },
        })
    }

    /// Erases a job's result and keeps the row as a tombstone (`purged_at` set). A job still
    /// queued or running is cancelled in the same statement, so no run can store a result
    /// after it. Purging twice keeps the first time.
    pub async fn purge(&self, account: AccountId, id: JobId) -> Result<PurgeOutcome, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE jobs SET
                 status = CASE WHEN status IN ('queued', 'running') THEN 'cancelled' ELSE status END,
                 finished_at = coalesce(finished_at, now()), lease_until = NULL,
                 result = NULL, purged_at = coalesce(purged_at, now()), updated_at = now()
             WHERE id = $1 AND account_id = $2
             RETURNING ",
            job_columns!()
        ))
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            sqlx::query("DELETE FROM outbox WHERE job_id = $1")
                .bind(id.as_uuid())
                .execute(&self.pool)
                .await?;
            self.hand_over_flight(id).await?;
            return Ok(PurgeOutcome::Purged(decode_job(&row)?));
        }
        Ok(PurgeOutcome::NotFound {
            foreign: self.exists_anywhere(id).await?,
        })
    }

    /// The job `id` of `account`. A miss always costs the same two statements, whether the id
    /// exists in another account or nowhere, so the two cannot be told apart by timing.
    pub async fn get_job(&self, account: AccountId, id: JobId) -> Result<JobLookup, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = $1 AND account_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(&self.reads)
        .await?;
        match row {
            Some(row) => Ok(JobLookup::Found(decode_job(&row)?)),
            None => Ok(JobLookup::NotFound {
                foreign: self.exists_anywhere(id).await?,
            }),
        }
    }

    /// Those of `ids` that have reached an end state (succeeded, failed or cancelled), whole:
    /// one indexed statement for any number of jobs, so a process waiting on many jobs (the
    /// followers of a viral URL's flight end in one commit) reads them together.
    pub async fn ended_among(&self, ids: &[JobId]) -> Result<Vec<JobRecord>, StoreError> {
        let ids: Vec<uuid::Uuid> = ids.iter().map(|id| id.as_uuid()).collect();
        let rows = sqlx::query(concat!(
            "SELECT ",
            job_columns!(),
            " FROM jobs WHERE id = ANY($1) AND status IN ('succeeded', 'failed', 'cancelled')"
        ))
        .bind(&ids)
        .fetch_all(&self.reads)
        .await?;
        rows.iter().map(decode_job).collect()
    }

    pub(crate) async fn exists_anywhere(&self, id: JobId) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM jobs WHERE id = $1)")
                .bind(id.as_uuid())
                .fetch_one(&self.reads)
                .await?,
        )
    }

    /// A page of `account`'s jobs matching `filter`, newest first (ids are UUIDv7, so by id).
    pub async fn list_jobs(
        &self,
        account: AccountId,
        filter: &JobFilter,
        limit: u32,
    ) -> Result<JobPage, StoreError> {
        let limit = limit.clamp(1, 1000);
        // With a label the containment test is written out (not `$5 IS NULL OR …`), so that
        // even a generic plan of the prepared statement can use the GIN index.
        macro_rules! page {
            ($label:literal) => {
                concat!(
                    "SELECT ",
                    summary_columns!(),
                    " FROM jobs
                     WHERE account_id = $1 AND ($2::text IS NULL OR status = $2)
                       AND ($3::uuid IS NULL OR id < $3)
                       AND ($5::timestamptz IS NULL OR created_at > $5)
                       AND ($6::uuid IS NULL OR batch_id = $6) ",
                    $label,
                    " ORDER BY id DESC
                     LIMIT $4"
                )
            };
        }
        let query = match filter.label {
            Some(_) => sqlx::query(page!(
                "AND result -> 'objects' -> 'detections'
                     @> jsonb_build_array(jsonb_build_object('label', $7::text))"
            )),
            None => sqlx::query(page!("")),
        };
        let mut query = query
            .bind(account.as_uuid())
            .bind(filter.status.map(|s| s.as_str()))
            .bind(filter.before.map(|b| b.as_uuid()))
            .bind(i64::from(limit) + 1)
            .bind(filter.created_after)
            .bind(filter.batch.map(|b| b.as_uuid()));
        if let Some(label) = &filter.label {
            query = query.bind(label.as_str());
        }
        let rows = query.fetch_all(&self.reads).await?;
        let mut jobs = rows.iter().map(decode_job).collect::<Result<Vec<_>, _>>()?;
        let next_before = if jobs.len() > limit as usize {
            jobs.truncate(limit as usize);
            jobs.last().map(|j| j.id)
        } else {
            None
        };
        Ok(JobPage { jobs, next_before })
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
    let url: Option<String> = row.try_get("url")?;
    let input_sha256: Option<String> = row.try_get("input_sha256")?;
    let input_bytes: Option<i64> = row.try_get("input_bytes")?;
    let tasks: Vec<String> = row.try_get("tasks")?;
    let min_score: f32 = row.try_get("min_score")?;
    let source = match (url, input_sha256, input_bytes) {
        (Some(url), None, None) => {
            Source::Url(ImageUrl::parse(&url).map_err(|e| corrupt(e.message))?)
        }
        (None, Some(sha256), Some(bytes)) => Source::Upload(
            UploadDigest::parse(u64::try_from(bytes).unwrap_or(0), &sha256)
                .map_err(|e| corrupt(e.message))?,
        ),
        _ => return Err(corrupt("a job needs either a url or an input".to_owned())),
    };
    let dream: Option<serde_json::Value> = row.try_get("dream")?;
    Ok(JobSpec {
        source,
        tasks: TaskSet::parse(&tasks).map_err(|e| corrupt(e.message))?,
        min_score: MinScore::parse(f64::from(min_score)).map_err(|e| corrupt(e.message))?,
        dream: dream
            .map(|d| DreamOptions::parse(&d))
            .transpose()
            .map_err(|e| corrupt(e.message))?,
        bypass_cache: row.try_get("bypass_cache")?,
        webhook_url: decode_webhook_url(row)?,
    })
}

/// The row's `webhook_url` column (jobs and batches keep it alike).
pub(crate) fn decode_webhook_url(row: &PgRow) -> Result<Option<WebhookUrl>, StoreError> {
    row.try_get::<Option<String>, _>("webhook_url")?
        .map(|w| WebhookUrl::parse(&w))
        .transpose()
        .map_err(|e| StoreError::Corrupt {
            id: row.try_get("id").unwrap_or_default(),
            reason: e.message,
        })
}

/// The `{code, message}` stored in the columns `<prefix>_code` and `<prefix>_message`.
fn decode_error(
    id: JobId,
    row: &PgRow,
    code_column: &str,
    message_column: &str,
) -> Result<Option<ErrorBody>, StoreError> {
    let Some(code) = row.try_get::<Option<String>, _>(code_column)? else {
        return Ok(None);
    };
    let parsed: ErrorCode = serde_json::from_value(serde_json::Value::String(code.clone()))
        .map_err(|_| StoreError::Corrupt {
            id: id.as_uuid(),
            reason: format!("unknown error code {code:?}"),
        })?;
    let message: Option<String> = row.try_get(message_column)?;
    Ok(Some(ErrorBody::new(parsed, message.unwrap_or_default())))
}

pub(crate) fn decode_job(row: &PgRow) -> Result<JobRecord, StoreError> {
    let id = JobId::from_uuid(row.try_get("id")?);
    let error = decode_error(id, row, "error_code", "error_message")?;
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
        purged_at: row.try_get("purged_at")?,
        last_error: decode_error(id, row, "last_error_code", "last_error_message")?,
    })
}
