//! Webhooks: each account's signing secret (and the one it replaced, during the overlap), and
//! the deliveries the triggers of the `…_webhooks.sql` migration write when a job ends or a
//! batch completes: taken by senders with a hold (at least once: a sender that dies lets the
//! delivery come due again, under the same id), their body fixed at the first attempt, every
//! attempt's outcome recorded.

use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{AccountId, BatchId, DeliveryStatus, JobId, WebhookEvent};
use sqlx::Row;
use sqlx::postgres::PgRow;
use std::time::Duration;

/// The secrets that sign an account's deliveries now: the current one, and the ones it
/// replaced whose overlap lasts, newest first (at most [`MAX_PREVIOUS_SECRETS`]).
#[derive(Clone, PartialEq, Eq)]
pub struct WebhookSecrets {
    pub current: Vec<u8>,
    pub previous: Vec<Vec<u8>>,
}

/// Most replaced secrets that still sign beside the current one.
pub const MAX_PREVIOUS_SECRETS: usize = 4;

impl std::fmt::Debug for WebhookSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookSecrets")
            .field("previous", &self.previous.len())
            .finish_non_exhaustive()
    }
}

/// A delivery due for an attempt (its attempt already counted).
#[derive(Debug, Clone, PartialEq)]
pub struct DueDelivery {
    /// The row, for recording the outcome.
    pub seq: i64,
    /// The `webhook-id`: the same on every attempt.
    pub id: uuid::Uuid,
    pub account: AccountId,
    pub event: WebhookEvent,
    pub job: Option<JobId>,
    pub batch: Option<BatchId>,
    pub url: String,
    /// The payload fixed by an earlier attempt; `None` on the first.
    pub body: Option<String>,
    /// This attempt's number (1 for the first).
    pub attempt: i32,
    pub created_at: DateTime<Utc>,
}

/// The `webhook-id` of delivery `id`, as sent and as listed.
fn webhook_id(id: uuid::Uuid) -> String {
    format!("msg_{}", id.simple())
}

impl DueDelivery {
    pub fn webhook_id(&self) -> String {
        webhook_id(self.id)
    }
}

impl DeliveryRecord {
    pub fn webhook_id(&self) -> String {
        webhook_id(self.id)
    }
}

/// How one attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The receiver answered 2xx.
    Delivered { status: u16 },
    /// The receiver answered `410 Gone`: never tried again.
    Gone { status: u16 },
    /// Worth another attempt after `after` (an HTTP status other than 2xx and 410, or no answer).
    Retry {
        status: Option<u16>,
        error: String,
        after: Duration,
    },
    /// Not worth another attempt (the destination is refused by policy).
    Failed { status: Option<u16>, error: String },
}

/// A delivery as its account sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryRecord {
    pub seq: i64,
    pub id: uuid::Uuid,
    pub event: WebhookEvent,
    pub job: Option<JobId>,
    pub batch: Option<BatchId>,
    pub url: String,
    pub status: DeliveryStatus,
    pub attempts: i32,
    /// When the next attempt is due, while the delivery is pending.
    pub next_attempt_at: Option<DateTime<Utc>>,
    pub last_status: Option<u16>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which of an account's deliveries a list holds; every field narrows it.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    pub status: Option<DeliveryStatus>,
    pub event: Option<WebhookEvent>,
    pub job: Option<JobId>,
    pub batch: Option<BatchId>,
    /// The page after this one (the previous page's last `seq`).
    pub before: Option<i64>,
}

macro_rules! delivery_columns {
    () => {
        "seq, id, account_id, event, job_id, batch_id, url, status, attempts, next_attempt_at, body,
         last_status, last_error, created_at, finished_at"
    };
}

fn corrupt(row: &PgRow, reason: String) -> StoreError {
    StoreError::Corrupt {
        id: row.try_get("id").unwrap_or_default(),
        reason,
    }
}

fn decode_event(row: &PgRow) -> Result<WebhookEvent, StoreError> {
    let raw: String = row.try_get("event")?;
    WebhookEvent::parse(&raw).ok_or_else(|| corrupt(row, format!("unknown event {raw:?}")))
}

fn decode_status(raw: Option<i32>) -> Option<u16> {
    raw.and_then(|s| u16::try_from(s).ok())
}

/// The job or the batch a delivery is about.
fn decode_subject(row: &PgRow) -> Result<(Option<JobId>, Option<BatchId>), StoreError> {
    Ok((
        row.try_get::<Option<uuid::Uuid>, _>("job_id")?
            .map(JobId::from_uuid),
        row.try_get::<Option<uuid::Uuid>, _>("batch_id")?
            .map(BatchId::from_uuid),
    ))
}

fn decode_record(row: &PgRow) -> Result<DeliveryRecord, StoreError> {
    let status: String = row.try_get("status")?;
    let status = DeliveryStatus::parse(&status)
        .ok_or_else(|| corrupt(row, format!("unknown delivery status {status:?}")))?;
    let (job, batch) = decode_subject(row)?;
    Ok(DeliveryRecord {
        seq: row.try_get("seq")?,
        id: row.try_get("id")?,
        event: decode_event(row)?,
        job,
        batch,
        url: row.try_get("url")?,
        next_attempt_at: match status {
            DeliveryStatus::Pending => Some(row.try_get("next_attempt_at")?),
            _ => None,
        },
        status,
        attempts: row.try_get("attempts")?,
        last_status: decode_status(row.try_get("last_status")?),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        finished_at: row.try_get("finished_at")?,
    })
}

impl Store {
    /// Makes `secret` the account's signing secret. The one it replaces keeps signing (beside
    /// the new one, and beside any replaced earlier whose overlap still lasts) for `overlap`;
    /// returns until when, or `None` for a first secret.
    pub async fn rotate_webhook_secret(
        &self,
        account: AccountId,
        secret: &[u8],
        overlap: Duration,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let old: Option<Vec<u8>> = sqlx::query_scalar(
            "SELECT secret FROM webhook_secrets WHERE account_id = $1 FOR UPDATE",
        )
        .bind(account.as_uuid())
        .fetch_optional(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM webhook_previous_secrets WHERE account_id = $1 AND valid_until <= now()",
        )
        .bind(account.as_uuid())
        .execute(&mut *tx)
        .await?;
        let until = match old {
            Some(old) => Some(
                sqlx::query_scalar(
                    "INSERT INTO webhook_previous_secrets (account_id, secret, valid_until)
                     VALUES ($1, $2, now() + $3) RETURNING valid_until",
                )
                .bind(account.as_uuid())
                .bind(old)
                .bind(overlap)
                .fetch_one(&mut *tx)
                .await?,
            ),
            None => None,
        };
        sqlx::query(
            "INSERT INTO webhook_secrets (account_id, secret) VALUES ($1, $2)
             ON CONFLICT (account_id) DO UPDATE SET secret = EXCLUDED.secret, rotated_at = now()",
        )
        .bind(account.as_uuid())
        .bind(secret)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(until)
    }

    /// The secrets that sign the account's deliveries now; `None` before it has one.
    pub async fn webhook_secrets(
        &self,
        account: AccountId,
    ) -> Result<Option<WebhookSecrets>, StoreError> {
        let row: Option<(Vec<u8>, Vec<Vec<u8>>)> = sqlx::query_as(
            "SELECT s.secret,
                    ARRAY(SELECT p.secret FROM webhook_previous_secrets p
                          WHERE p.account_id = s.account_id AND p.valid_until > now()
                          ORDER BY p.valid_until DESC LIMIT $2)
             FROM webhook_secrets s WHERE s.account_id = $1",
        )
        .bind(account.as_uuid())
        .bind(MAX_PREVIOUS_SECRETS as i64)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(current, previous)| WebhookSecrets { current, previous }))
    }

    /// Whether the account has a signing secret (without reading it).
    pub async fn has_webhook_secret(&self, account: AccountId) -> Result<bool, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM webhook_secrets WHERE account_id = $1)",
        )
        .bind(account.as_uuid())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Takes up to `limit` due deliveries, counting their attempt and hiding them from other
    /// senders for `hold` (an attempt that never records its outcome comes due again then).
    pub async fn take_due_deliveries(
        &self,
        limit: i64,
        hold: Duration,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let rows = sqlx::query(concat!(
            "UPDATE webhook_deliveries SET next_attempt_at = now() + $2, attempts = attempts + 1
             WHERE seq IN (SELECT seq FROM webhook_deliveries
                           WHERE status = 'pending' AND next_attempt_at <= now()
                           ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED)
             RETURNING ",
            delivery_columns!()
        ))
        .bind(limit)
        .bind(hold)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                let (job, batch) = decode_subject(row)?;
                Ok(DueDelivery {
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    account: AccountId::from_uuid(row.try_get("account_id")?),
                    event: decode_event(row)?,
                    job,
                    batch,
                    url: row.try_get("url")?,
                    body: row.try_get("body")?,
                    attempt: row.try_get("attempts")?,
                    created_at: row.try_get("created_at")?,
                })
            })
            .collect()
    }

    /// Fixes a delivery's payload unless an earlier attempt already did; returns the payload
    /// every attempt sends.
    pub async fn fix_delivery_body(&self, seq: i64, body: &str) -> Result<String, StoreError> {
        Ok(sqlx::query_scalar(
            "UPDATE webhook_deliveries SET body = coalesce(body, $2) WHERE seq = $1
             RETURNING body",
        )
        .bind(seq)
        .bind(body)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Records how attempt `attempt` ended; the delivery's status after it, or `None` if it
    /// had already ended or a later attempt has taken it since (this one outlived its hold).
    /// A retry whose time would fall after `created_at + horizon` fails the delivery instead
    /// (its retries are spent).
    pub async fn record_delivery_attempt(
        &self,
        seq: i64,
        attempt: i32,
        outcome: &AttemptOutcome,
        horizon: Duration,
    ) -> Result<Option<DeliveryStatus>, StoreError> {
        let (status, http, error, after) = match outcome {
            AttemptOutcome::Delivered { status } => ("delivered", Some(*status), None, None),
            AttemptOutcome::Gone { status } => ("gone", Some(*status), None, None),
            AttemptOutcome::Retry {
                status,
                error,
                after,
            } => ("pending", *status, Some(error.as_str()), Some(*after)),
            AttemptOutcome::Failed { status, error } => {
                ("failed", *status, Some(error.as_str()), None)
            }
        };
        let stored: Option<String> = sqlx::query_scalar(
            "WITH next AS (
                 SELECT CASE WHEN $2 = 'pending' AND now() + $5 > created_at + $6 THEN 'failed'
                             ELSE $2 END AS status
                 FROM webhook_deliveries WHERE seq = $1
             )
             UPDATE webhook_deliveries d SET
                 status = next.status,
                 last_status = $3,
                 last_error = $4,
                 next_attempt_at = CASE WHEN next.status = 'pending' THEN now() + $5
                                        ELSE d.next_attempt_at END,
                 finished_at = CASE WHEN next.status = 'pending' THEN NULL ELSE now() END
             FROM next
             WHERE d.seq = $1 AND d.status = 'pending' AND d.attempts = $7
             RETURNING d.status",
        )
        .bind(seq)
        .bind(status)
        .bind(http.map(i32::from))
        .bind(error)
        .bind(after.unwrap_or_default())
        .bind(horizon)
        .bind(attempt)
        .fetch_optional(&self.pool)
        .await?;
        stored
            .map(|s| {
                DeliveryStatus::parse(&s).ok_or_else(|| StoreError::Corrupt {
                    id: uuid::Uuid::nil(),
                    reason: format!("unknown delivery status {s:?}"),
                })
            })
            .transpose()
    }

    /// Forgets up to `limit` deliveries that ended more than `older_than` ago; how many.
    pub async fn sweep_deliveries(
        &self,
        older_than: Duration,
        limit: i64,
    ) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM webhook_deliveries WHERE seq IN (
                 SELECT seq FROM webhook_deliveries
                 WHERE status <> 'pending' AND finished_at < now() - $1
                 LIMIT $2)",
        )
        .bind(older_than)
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// A page of the account's deliveries, newest first.
    pub async fn list_deliveries(
        &self,
        account: AccountId,
        filter: &DeliveryFilter,
        limit: i64,
    ) -> Result<Vec<DeliveryRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            delivery_columns!(),
            " FROM webhook_deliveries
             WHERE account_id = $1
               AND ($2::text IS NULL OR status = $2)
               AND ($3::text IS NULL OR event = $3)
               AND ($4::uuid IS NULL OR job_id = $4)
               AND ($5::uuid IS NULL OR batch_id = $5)
               AND ($6::int8 IS NULL OR seq < $6)
             ORDER BY seq DESC LIMIT $7"
        ))
        .bind(account.as_uuid())
        .bind(filter.status.map(DeliveryStatus::as_str))
        .bind(filter.event.map(WebhookEvent::as_str))
        .bind(filter.job.map(|j| j.as_uuid()))
        .bind(filter.batch.map(|b| b.as_uuid()))
        .bind(filter.before)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_record).collect()
    }
}
