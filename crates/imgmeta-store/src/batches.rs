//! Batches: an upload of many items recorded in one transaction, written in chunks (multi-row
//! inserts from arrays) so that a million lines never sit in memory; each item a queued job with
//! its message, each bad line a rejection with its line number. The batch's counters are kept
//! by the jobs table's triggers (see the migration), so progress is one row read.

use crate::StoreError;
use crate::jobs::{Owner, decode_job, job_columns};
use crate::url_cache::parse_code;
use chrono::{DateTime, Utc};
use imgmeta_domain::{
    AccountId, BatchDefaults, BatchId, BatchItem, BatchStatus, ErrorBody, JobId, JobStatus,
    MinScore, Rejected, TaskSet, WebhookUrl,
};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// Items (or rejections) written per statement.
const CHUNK: usize = 2_000;

/// A batch about to be uploaded.
#[derive(Debug, Clone)]
pub struct NewBatch {
    pub id: BatchId,
    pub owner: Owner,
    pub defaults: BatchDefaults,
    /// The client's `Idempotency-Key`; the request's digest is known only once the whole
    /// upload was read, so [`BatchUpload::finish`] records it.
    pub idempotency_key: Option<String>,
    /// Where `batch.completed` is reported, signed.
    pub webhook_url: Option<WebhookUrl>,
}

/// Counts of a batch's items by status.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BatchCounts {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub failed: i64,
    pub cancelled: i64,
    pub rejected: i64,
    pub total: i64,
}

impl BatchCounts {
    /// Items that have ended (rejected lines never started).
    pub fn ended(&self) -> i64 {
        self.succeeded + self.failed + self.cancelled
    }
}

/// A stored batch.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRecord {
    pub id: BatchId,
    pub status: BatchStatus,
    pub tasks: TaskSet,
    pub min_score: MinScore,
    pub counts: BatchCounts,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    /// Seconds since the batch was created, by the database's clock (for rates and ETAs).
    pub age_s: f64,
    pub webhook_url: Option<WebhookUrl>,
}

/// What beginning an upload found.
#[derive(Debug)]
pub enum BatchBegun {
    Started(BatchUpload),
    /// The account already has a batch under this `Idempotency-Key`: the original, and the
    /// digest of the request that made it.
    Existing {
        batch: BatchRecord,
        request_digest: Option<String>,
    },
}

/// How an upload ended.
// Returned once per upload and matched at once, never stored: boxing would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum BatchFinished {
    Created(BatchRecord),
    /// The items would overrun the key's or the account's daily quota; nothing was recorded.
    QuotaExceeded {
        items: i64,
    },
}

/// One upload in progress: an open transaction and the chunks not yet written. Dropping it
/// without [`BatchUpload::finish`] rolls everything back.
pub struct BatchUpload {
    tx: sqlx::Transaction<'static, sqlx::Postgres>,
    id: BatchId,
    owner: Owner,
    items: Vec<(i32, BatchItem)>,
    rejections: Vec<(i32, Rejected)>,
    accepted: i64,
    rejected: i64,
    /// The store's outbox signal, raised once the items' messages are committed.
    outbox_wake: std::sync::Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for BatchUpload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BatchUpload")
            .field("id", &self.id)
            .field("accepted", &self.accepted)
            .field("rejected", &self.rejected)
            .finish_non_exhaustive()
    }
}

/// One line of `GET /v1/batches/{id}/results`.
#[derive(Debug, Clone)]
pub enum BatchLine {
    Job {
        line: i32,
        external_id: Option<String>,
        job: Box<crate::JobRecord>,
    },
    Rejected {
        line: i32,
        external_id: Option<String>,
        error: ErrorBody,
    },
}

impl BatchLine {
    pub fn line(&self) -> i32 {
        match self {
            Self::Job { line, .. } | Self::Rejected { line, .. } => *line,
        }
    }
}

/// Which lines a results page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFilter {
    All,
    Status(JobStatus),
    Rejected,
}

/// What cancelling a batch found.
#[allow(clippy::large_enum_variant)] // as for BatchFinished
#[derive(Debug, Clone, PartialEq)]
pub enum BatchCancelled {
    /// The batch as it stands now, and how many items this request cancelled.
    Cancelled {
        batch: BatchRecord,
        items: u64,
    },
    NotFound {
        foreign: bool,
    },
}

macro_rules! batch_columns {
    () => {
        "id, status, tasks, min_score, queued, running, succeeded, failed, cancelled, rejected,
         total, created_at, completed_at, webhook_url,
         greatest(EXTRACT(EPOCH FROM now() - created_at)::float8, 0) AS age_s"
    };
}

fn decode_batch(row: &PgRow) -> Result<BatchRecord, StoreError> {
    let id: uuid::Uuid = row.try_get("id")?;
    let corrupt = |reason: String| StoreError::Corrupt { id, reason };
    let status: String = row.try_get("status")?;
    let tasks: Vec<String> = row.try_get("tasks")?;
    let min_score: f32 = row.try_get("min_score")?;
    let count =
        |name: &str| -> Result<i64, StoreError> { Ok(i64::from(row.try_get::<i32, _>(name)?)) };
    Ok(BatchRecord {
        id: BatchId::from_uuid(id),
        status: BatchStatus::parse(&status)
            .ok_or_else(|| corrupt(format!("unknown batch status {status:?}")))?,
        tasks: TaskSet::parse(&tasks).map_err(|e| corrupt(e.message))?,
        min_score: MinScore::parse(f64::from(min_score)).map_err(|e| corrupt(e.message))?,
        counts: BatchCounts {
            queued: count("queued")?,
            running: count("running")?,
            succeeded: count("succeeded")?,
            failed: count("failed")?,
            cancelled: count("cancelled")?,
            rejected: count("rejected")?,
            total: count("total")?,
        },
        created_at: row.try_get("created_at")?,
        completed_at: row.try_get("completed_at")?,
        age_s: row.try_get("age_s")?,
        webhook_url: crate::jobs::decode_webhook_url(row)?,
    })
}

/// Counts `n` accepted items against today's (UTC) quota of row `$1` of `$table`; no row is
/// updated when they do not all fit.
macro_rules! charge_quota_by {
    ($table:literal) => {
        concat!(
            "UPDATE ",
            $table,
            " SET ",
            crate::jobs::charge!("$2"),
            " WHERE id = $1
                AND CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date
                         THEN quota_used ELSE 0 END + $2 <= daily_quota"
        )
    };
}

impl crate::Store {
    /// Opens an upload: records the batch in a new transaction (nothing is visible until
    /// [`BatchUpload::finish`] commits). A batch already made under the same
    /// `Idempotency-Key` in the account is returned instead; a concurrent upload under the same
    /// key waits for the first to commit or roll back.
    pub async fn begin_batch(&self, new: &NewBatch) -> Result<BatchBegun, StoreError> {
        let mut tx = self.pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO batches (id, account_id, api_key_id, idempotency_key, tasks, min_score,
                                  webhook_url)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (account_id, idempotency_key) WHERE idempotency_key IS NOT NULL
             DO NOTHING",
        )
        .bind(new.id.as_uuid())
        .bind(new.owner.account.as_uuid())
        .bind(new.owner.key_id)
        .bind(new.idempotency_key.as_deref())
        .bind(new.defaults.tasks.as_strs())
        .bind(new.defaults.min_score.value())
        .bind(new.webhook_url.as_ref().map(|w| w.as_str()))
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if inserted == 0 {
            tx.rollback().await?;
            let row = sqlx::query(concat!(
                "SELECT request_digest, ",
                batch_columns!(),
                " FROM batches WHERE account_id = $1 AND idempotency_key = $2"
            ))
            .bind(new.owner.account.as_uuid())
            .bind(new.idempotency_key.as_deref())
            .fetch_one(&self.pool)
            .await?;
            return Ok(BatchBegun::Existing {
                batch: decode_batch(&row)?,
                request_digest: row.try_get("request_digest")?,
            });
        }
        Ok(BatchBegun::Started(BatchUpload {
            tx,
            id: new.id,
            owner: new.owner,
            items: Vec::with_capacity(CHUNK),
            rejections: Vec::new(),
            accepted: 0,
            rejected: 0,
            outbox_wake: self.outbox_wake.clone(),
        }))
    }

    /// The batch `id` if `account` owns it; a miss says whether it exists in another account.
    pub async fn get_batch(
        &self,
        account: AccountId,
        id: BatchId,
    ) -> Result<Result<BatchRecord, bool>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            batch_columns!(),
            " FROM batches WHERE id = $1 AND account_id = $2"
        ))
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .fetch_optional(&self.reads)
        .await?;
        match row {
            Some(row) => Ok(Ok(decode_batch(&row)?)),
            None => Ok(Err(self.batch_exists_anywhere(id).await?)),
        }
    }

    async fn batch_exists_anywhere(&self, id: BatchId) -> Result<bool, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM batches WHERE id = $1)")
                .bind(id.as_uuid())
                .fetch_one(&self.reads)
                .await?,
        )
    }

    /// A page of `account`'s batches, newest first, after the batch `before`; and the cursor
    /// of the next page.
    pub async fn list_batches(
        &self,
        account: AccountId,
        before: Option<BatchId>,
        limit: u32,
    ) -> Result<(Vec<BatchRecord>, Option<BatchId>), StoreError> {
        let limit = limit.clamp(1, 1000);
        let rows = sqlx::query(concat!(
            "SELECT ",
            batch_columns!(),
            " FROM batches WHERE account_id = $1 AND ($2::uuid IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3"
        ))
        .bind(account.as_uuid())
        .bind(before.map(|b| b.as_uuid()))
        .bind(i64::from(limit) + 1)
        .fetch_all(&self.reads)
        .await?;
        let mut batches = rows
            .iter()
            .map(decode_batch)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if batches.len() > limit as usize {
            batches.truncate(limit as usize);
            batches.last().map(|b| b.id)
        } else {
            None
        };
        Ok((batches, next))
    }

    /// Up to `limit` lines of batch `id` after line `after`, in line order: its jobs (with
    /// results) and its rejected lines, as `filter` selects. The caller has checked that the
    /// batch is the account's. Two index range scans, merged here; a page costs the same
    /// wherever it starts.
    pub async fn batch_lines(
        &self,
        id: BatchId,
        after: i32,
        filter: LineFilter,
        limit: u32,
    ) -> Result<Vec<BatchLine>, StoreError> {
        let limit = i64::from(limit.clamp(1, 10_000));
        let mut lines = Vec::new();
        if filter != LineFilter::Rejected {
            let status = match filter {
                LineFilter::Status(s) => Some(s.as_str()),
                _ => None,
            };
            let rows = sqlx::query(concat!(
                "SELECT batch_line, external_id, ",
                job_columns!(),
                " FROM jobs WHERE batch_id = $1 AND batch_line > $2
                   AND ($3::text IS NULL OR status = $3)
                 ORDER BY batch_line LIMIT $4"
            ))
            .bind(id.as_uuid())
            .bind(after)
            .bind(status)
            .bind(limit)
            .fetch_all(&self.reads)
            .await?;
            for row in &rows {
                lines.push(BatchLine::Job {
                    line: row.try_get("batch_line")?,
                    external_id: row.try_get("external_id")?,
                    job: Box::new(decode_job(row)?),
                });
            }
        }
        if matches!(filter, LineFilter::All | LineFilter::Rejected) {
            let rows = sqlx::query(
                "SELECT line, external_id, error_code, error_message FROM batch_rejections
                 WHERE batch_id = $1 AND line > $2 ORDER BY line LIMIT $3",
            )
            .bind(id.as_uuid())
            .bind(after)
            .bind(limit)
            .fetch_all(&self.reads)
            .await?;
            for row in &rows {
                let code: String = row.try_get("error_code")?;
                lines.push(BatchLine::Rejected {
                    line: row.try_get("line")?,
                    external_id: row.try_get("external_id")?,
                    error: ErrorBody::new(
                        parse_code(&code),
                        row.try_get::<String, _>("error_message")?,
                    ),
                });
            }
        }
        lines.sort_by_key(BatchLine::line);
        lines.truncate(limit as usize);
        Ok(lines)
    }

    /// Cancels every item of `account`'s batch `id` that has not started (their messages are
    /// dropped) and marks the batch cancelled; items already running finish. The jobs are
    /// updated before the batch row, in the order every worker's statement takes them (job,
    /// then its batch through the trigger), so a cancel and a worker never wait on each other
    /// in a circle.
    pub async fn cancel_batch(
        &self,
        account: AccountId,
        id: BatchId,
    ) -> Result<BatchCancelled, StoreError> {
        let mut tx = self.pool.begin().await?;
        let items = sqlx::query(
            "WITH cancelled AS (
                 UPDATE jobs SET status = 'cancelled', finished_at = now(), lease_until = NULL,
                                 updated_at = now()
                 WHERE batch_id = $1 AND account_id = $2 AND status = 'queued'
                 RETURNING id
             ), dropped AS (
                 DELETE FROM outbox WHERE job_id IN (SELECT id FROM cancelled)
             )
             SELECT count(*) FROM cancelled",
        )
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .fetch_one(&mut *tx)
        .await?
        .try_get::<i64, _>(0)?;
        let row = sqlx::query(concat!(
            "UPDATE batches SET
                 status = CASE WHEN status = 'running' OR $3 THEN 'cancelled' ELSE status END,
                 completed_at = CASE WHEN queued + running = 0 THEN coalesce(completed_at, now()) END
             WHERE id = $1 AND account_id = $2
             RETURNING ",
            batch_columns!()
        ))
        .bind(id.as_uuid())
        .bind(account.as_uuid())
        .bind(items > 0)
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(match row {
            Some(row) => BatchCancelled::Cancelled {
                batch: decode_batch(&row)?,
                items: u64::try_from(items).unwrap_or(0),
            },
            None => BatchCancelled::NotFound {
                foreign: self.batch_exists_anywhere(id).await?,
            },
        })
    }
}

impl BatchUpload {
    pub fn id(&self) -> BatchId {
        self.id
    }

    /// Items accepted so far.
    pub fn accepted(&self) -> i64 {
        self.accepted
    }

    /// Lines rejected so far.
    pub fn rejected(&self) -> i64 {
        self.rejected
    }

    /// Adds line `line` as an item (a queued job with its message), written with its chunk.
    pub async fn item(&mut self, line: i32, item: BatchItem) -> Result<(), StoreError> {
        self.items.push((line, item));
        self.accepted += 1;
        if self.items.len() >= CHUNK {
            self.write_items().await?;
        }
        Ok(())
    }

    /// Records line `line` as rejected.
    pub async fn reject(&mut self, line: i32, rejected: Rejected) -> Result<(), StoreError> {
        self.rejections.push((line, rejected));
        self.rejected += 1;
        if self.rejections.len() >= CHUNK {
            self.write_rejections().await?;
        }
        Ok(())
    }

    async fn write_items(&mut self) -> Result<(), StoreError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let n = self.items.len();
        let (mut ids, mut urls, mut tasks, mut scores, mut lines, mut externals) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (line, item) in self.items.drain(..) {
            ids.push(JobId::new().as_uuid());
            urls.push(item.url.as_str().to_owned());
            tasks.push(item.tasks.as_strs().join(","));
            scores.push(item.min_score.value());
            lines.push(line);
            externals.push(item.external_id);
        }
        sqlx::query(
            "WITH job AS (
                 INSERT INTO jobs (id, url, tasks, min_score, account_id, api_key_id, batch_id,
                                   batch_line, external_id)
                 SELECT t.id, t.url, string_to_array(t.tasks, ','), t.min_score, $7, $8, $9,
                        t.line, t.external_id
                 FROM unnest($1::uuid[], $2::text[], $3::text[], $4::real[], $5::int4[],
                             $6::text[]) AS t(id, url, tasks, min_score, line, external_id)
                 RETURNING id
             )
             INSERT INTO outbox (job_id) SELECT id FROM job",
        )
        .bind(ids)
        .bind(urls)
        .bind(tasks)
        .bind(scores)
        .bind(lines)
        .bind(externals)
        .bind(self.owner.account.as_uuid())
        .bind(self.owner.key_id)
        .bind(self.id.as_uuid())
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    async fn write_rejections(&mut self) -> Result<(), StoreError> {
        if self.rejections.is_empty() {
            return Ok(());
        }
        let n = self.rejections.len();
        let (mut lines, mut externals, mut codes, mut messages) = (
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
            Vec::with_capacity(n),
        );
        for (line, rejected) in self.rejections.drain(..) {
            lines.push(line);
            externals.push(rejected.external_id);
            codes.push(rejected.error.code.as_str());
            messages.push(rejected.error.message);
        }
        sqlx::query(
            "INSERT INTO batch_rejections (batch_id, line, external_id, error_code, error_message)
             SELECT $1, * FROM unnest($2::int4[], $3::text[], $4::text[], $5::text[])",
        )
        .bind(self.id.as_uuid())
        .bind(lines)
        .bind(externals)
        .bind(codes)
        .bind(messages)
        .execute(&mut *self.tx)
        .await?;
        Ok(())
    }

    /// Writes what is left, charges the accepted items to the key's and the account's daily
    /// quotas (all or nothing), records the request's digest, completes a batch with nothing
    /// to run, and commits.
    pub async fn finish(
        mut self,
        request_digest: Option<&str>,
    ) -> Result<BatchFinished, StoreError> {
        self.write_items().await?;
        self.write_rejections().await?;
        let n = self.accepted;
        if n > 0 {
            let n32 = i32::try_from(n).unwrap_or(i32::MAX);
            let key_fits = match self.owner.key_id {
                Some(key) => {
                    sqlx::query(charge_quota_by!("api_keys"))
                        .bind(key)
                        .bind(n32)
                        .execute(&mut *self.tx)
                        .await?
                        .rows_affected()
                        == 1
                }
                None => true,
            };
            let fits = key_fits
                && sqlx::query(charge_quota_by!("accounts"))
                    .bind(self.owner.account.as_uuid())
                    .bind(n32)
                    .execute(&mut *self.tx)
                    .await?
                    .rows_affected()
                    == 1;
            if !fits {
                self.tx.rollback().await?;
                return Ok(BatchFinished::QuotaExceeded { items: n });
            }
        }
        let row = sqlx::query(concat!(
            "UPDATE batches SET
                 request_digest = $2,
                 rejected = $3, total = total + $3,
                 status = CASE WHEN queued + running = 0 THEN 'completed' ELSE status END,
                 completed_at = CASE WHEN queued + running = 0 THEN now() END
             WHERE id = $1
             RETURNING ",
            batch_columns!()
        ))
        .bind(self.id.as_uuid())
        .bind(request_digest)
        .bind(i32::try_from(self.rejected).unwrap_or(i32::MAX))
        .fetch_one(&mut *self.tx)
        .await?;
        let batch = decode_batch(&row)?;
        self.tx.commit().await?;
        if n > 0 {
            self.outbox_wake.notify_one();
        }
        Ok(BatchFinished::Created(batch))
    }
}
