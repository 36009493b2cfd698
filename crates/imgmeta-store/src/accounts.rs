//! Accounts: creation, lookup by id or name, settings (quota, retention, GPS redaction), usage,
//! and the retention sweep that purges old results.

use crate::{Store, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use imgmeta_domain::{AccountId, Name};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// An account as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct AccountRecord {
    pub id: AccountId,
    pub name: String,
    pub daily_quota: u32,
    pub retention_days: u32,
    pub redact_gps: bool,
    pub created_at: DateTime<Utc>,
    /// Accepted submissions today (UTC), all keys together.
    pub used_today: u32,
    pub day: NaiveDate,
}

/// An account about to be created.
#[derive(Debug, Clone)]
pub struct NewAccount {
    pub name: Name,
    pub daily_quota: u32,
    pub retention_days: u32,
    pub redact_gps: bool,
}

/// Changes to an account's settings; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default)]
pub struct AccountChanges {
    pub name: Option<Name>,
    pub daily_quota: Option<u32>,
    pub retention_days: Option<u32>,
    pub redact_gps: Option<bool>,
}

/// The outcome of looking an account up by id or name.
#[derive(Debug, Clone, PartialEq)]
pub enum AccountLookup {
    Found(AccountRecord),
    NotFound,
    /// Several accounts carry this name; the caller must use an id.
    Ambiguous(Vec<AccountId>),
}

/// How many results the retention sweep purged in one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Purged {
    pub account: AccountId,
    pub jobs: u64,
}

/// The longest retention an account may have, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

macro_rules! account_columns {
    () => {
        "id, name, daily_quota, retention_days, redact_gps, created_at,
         (now() AT TIME ZONE 'UTC')::date AS today,
         CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date THEN quota_used ELSE 0 END
             AS used_today"
    };
}

impl Store {
    pub async fn create_account(&self, account: &NewAccount) -> Result<AccountRecord, StoreError> {
        let row = sqlx::query(concat!(
            "INSERT INTO accounts (id, name, daily_quota, retention_days, redact_gps)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING ",
            account_columns!()
        ))
        .bind(AccountId::new().as_uuid())
        .bind(account.name.as_str())
        .bind(crate::keys::to_i32(account.daily_quota))
        .bind(crate::keys::to_i32(
            account.retention_days.clamp(1, MAX_RETENTION_DAYS),
        ))
        .bind(account.redact_gps)
        .fetch_one(&self.pool)
        .await?;
        decode_account(&row)
    }

    pub async fn get_account(&self, id: AccountId) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE id = $1"
        ))
        .bind(id.as_uuid())
        .fetch_optional(&self.reads)
        .await?;
        row.as_ref().map(decode_account).transpose()
    }

    /// The account a CLI or operator names: an id, else a name that only one account has.
    pub async fn find_account(&self, id_or_name: &str) -> Result<AccountLookup, StoreError> {
        if let Some(id) = AccountId::parse(id_or_name)
            && let Some(account) = self.get_account(id).await?
        {
            return Ok(AccountLookup::Found(account));
        }
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts WHERE name = $1 ORDER BY created_at LIMIT 10"
        ))
        .bind(id_or_name.trim())
        .fetch_all(&self.pool)
        .await?;
        Ok(match rows.len() {
            0 => AccountLookup::NotFound,
            1 => AccountLookup::Found(decode_account(&rows[0])?),
            _ => AccountLookup::Ambiguous(
                rows.iter()
                    .map(|r| Ok(AccountId::from_uuid(r.try_get("id")?)))
                    .collect::<Result<_, StoreError>>()?,
            ),
        })
    }

    /// Every account, oldest first (the built-in one included).
    pub async fn list_accounts(&self) -> Result<Vec<AccountRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            account_columns!(),
            " FROM accounts ORDER BY created_at, id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_account).collect()
    }

    /// Applies `changes`; `None` when there is no such account.
    pub async fn update_account(
        &self,
        id: AccountId,
        changes: &AccountChanges,
    ) -> Result<Option<AccountRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE accounts SET name = coalesce($2, name),
                    daily_quota = coalesce($3, daily_quota),
                    retention_days = coalesce($4, retention_days),
                    redact_gps = coalesce($5, redact_gps)
             WHERE id = $1
             RETURNING ",
            account_columns!()
        ))
        .bind(id.as_uuid())
        .bind(changes.name.as_ref().map(Name::as_str))
        .bind(changes.daily_quota.map(crate::keys::to_i32))
        .bind(
            changes
                .retention_days
                .map(|d| crate::keys::to_i32(d.clamp(1, MAX_RETENTION_DAYS))),
        )
        .bind(changes.redact_gps)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_account).transpose()
    }

    /// Erases the results of finished jobs older than their account's retention period, at
    /// most `per_account` jobs of each account per call, keeping each row as a tombstone.
    pub async fn purge_expired(&self, per_account: i64) -> Result<Vec<Purged>, StoreError> {
        let rows = sqlx::query(
            "WITH expired AS (
                 SELECT j.id FROM accounts a
                 CROSS JOIN LATERAL (
                     SELECT id FROM jobs
                     WHERE account_id = a.id AND purged_at IS NULL AND finished_at IS NOT NULL
                       AND finished_at < now() - make_interval(days => a.retention_days)
                     LIMIT $1
                 ) j
             ), purged AS (
                 UPDATE jobs SET result = NULL, purged_at = now(), updated_at = now()
                 FROM expired WHERE jobs.id = expired.id
                 RETURNING jobs.account_id
             )
             SELECT account_id, count(*) AS jobs FROM purged GROUP BY account_id",
        )
        .bind(per_account)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Purged {
                    account: AccountId::from_uuid(row.try_get("account_id")?),
                    jobs: row.try_get::<i64, _>("jobs")?.max(0) as u64,
                })
            })
            .collect()
    }
}

fn decode_account(row: &PgRow) -> Result<AccountRecord, StoreError> {
    let quota: i32 = row.try_get("daily_quota")?;
    let retention: i32 = row.try_get("retention_days")?;
    let used: i32 = row.try_get("used_today")?;
    Ok(AccountRecord {
        id: AccountId::from_uuid(row.try_get("id")?),
        name: row.try_get("name")?,
        daily_quota: quota.max(0) as u32,
        retention_days: retention.max(0) as u32,
        redact_gps: row.try_get("redact_gps")?,
        created_at: row.try_get("created_at")?,
        used_today: used.max(0) as u32,
        day: row.try_get("today")?,
    })
}
