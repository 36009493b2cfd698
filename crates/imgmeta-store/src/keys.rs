//! API keys: creation (only the hash is stored) in an existing or a new account, listing,
//! revocation, lookup by public prefix (all of these for `kind = 'api'` keys only: users'
//! hidden session keys, made by `users.rs`, are never listed, revoked or accepted as Bearer
//! keys), and admission of a request against the key's token
//! bucket (the daily quotas are charged when a job is accepted: see `jobs.rs`).

use crate::accounts::NewAccount;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{AccountId, ScopeSet};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// The account a new key joins.
#[derive(Debug, Clone)]
pub enum KeyAccount {
    Existing(AccountId),
    /// A new account, created in the same transaction as the key.
    New(NewAccount),
}

/// A key about to be stored. The caller generated it and shows it once; we keep its hash.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub prefix: String,
    pub hash: [u8; 32],
    pub name: String,
    pub rate_per_minute: u32,
    pub daily_quota: u32,
    pub scopes: ScopeSet,
    pub account: KeyAccount,
}

/// A stored key as operators see it (never the secret, never the hash).
#[derive(Debug, Clone, PartialEq)]
pub struct ApiKeyRecord {
    pub id: i64,
    pub prefix: String,
    pub name: String,
    pub account_id: AccountId,
    pub scopes: ScopeSet,
    pub rate_per_minute: u32,
    pub daily_quota: u32,
    /// Accepted submissions with this key today (UTC).
    pub used_today: u32,
    pub created_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// What authentication needs to know about the key a prefix names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyLookup {
    pub id: i64,
    pub hash: Vec<u8>,
    pub revoked: bool,
    pub account_id: AccountId,
}

/// The outcome of revoking a key within an account.
#[derive(Debug, Clone, PartialEq)]
pub enum Revoked {
    Revoked(ApiKeyRecord),
    /// No key with this prefix in the account; `foreign` when one exists in another account.
    NotFound {
        foreign: bool,
    },
}

/// Whether a request may go ahead, with what the `RateLimit-*` headers report.
#[derive(Debug, Clone, PartialEq)]
pub struct Admission {
    pub outcome: AdmissionOutcome,
    /// What the key may do now, read from the row the admission locked: its scopes and its
    /// account's GPS setting. `None` exactly when the outcome is `Revoked`.
    pub key: Option<KeyNow>,
    /// The bucket's size (requests per minute).
    pub limit: u32,
    /// Whole requests left in the bucket after this one.
    pub remaining: u32,
    /// Seconds until the bucket is full again.
    pub reset_secs: u64,
}

/// An admission that may have taken more than its own token ([`Store::admit_leasing`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Lease {
    /// This request's admission; `remaining` excludes the `extra` tokens.
    pub admission: Admission,
    /// Tokens taken beyond this request's, for the key's next requests in this process.
    pub extra: u32,
    /// Whether the key's or its account's daily quota was used up when the tokens were taken.
    pub quota_used_up: bool,
}

/// The parts of a key that can change while it is in use, as its admission read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyNow {
    pub scopes: ScopeSet,
    /// The account's GPS setting.
    pub redact_gps: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdmissionOutcome {
    Allowed,
    /// The bucket is empty; a token is back after `retry_after_secs`.
    RateLimited {
        retry_after_secs: u64,
    },
    /// The day's quota is used up; it renews at the next UTC midnight.
    QuotaExceeded {
        retry_after_secs: u64,
    },
    /// The key was revoked (or deleted) since it was looked up.
    Revoked,
}

macro_rules! key_columns {
    () => {
        "id, prefix, name, account_id, scopes, rate_per_minute, daily_quota, created_at, revoked_at,
         CASE WHEN quota_day = (now() AT TIME ZONE 'UTC')::date THEN quota_used ELSE 0 END
             AS used_today"
    };
}

impl Store {
    /// Stores a new key with a full bucket, creating its account first when asked to (in the
    /// same transaction). `None` if a key with this prefix exists already (one chance in 62^8
    /// per pair of keys): the caller generates another. `Err(StoreError::NoSuchAccount)` when
    /// the existing account named does not exist.
    pub async fn create_api_key(
        &self,
        key: &NewApiKey,
    ) -> Result<Option<ApiKeyRecord>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let account_id = match &key.account {
            KeyAccount::Existing(id) => {
                let exists: bool =
                    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM accounts WHERE id = $1)")
                        .bind(id.as_uuid())
                        .fetch_one(&mut *tx)
                        .await?;
                if !exists {
                    return Err(StoreError::NoSuchAccount);
                }
                *id
            }
            KeyAccount::New(account) => {
                let id = AccountId::new();
                sqlx::query(
                    "INSERT INTO accounts (id, name, daily_quota, retention_days, redact_gps)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(id.as_uuid())
                .bind(account.name.as_str())
                .bind(to_i32(account.daily_quota))
                .bind(to_i32(
                    account
                        .retention_days
                        .clamp(1, crate::accounts::MAX_RETENTION_DAYS),
                ))
                .bind(account.redact_gps)
                .execute(&mut *tx)
                .await?;
                id
            }
        };
        let row = sqlx::query(concat!(
            "INSERT INTO api_keys (prefix, key_hash, name, rate_per_minute, daily_quota,
                                   account_id, scopes)
             VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT (prefix) DO NOTHING
             RETURNING ",
            key_columns!()
        ))
        .bind(&key.prefix)
        .bind(&key.hash[..])
        .bind(&key.name)
        .bind(to_i32(key.rate_per_minute))
        .bind(to_i32(key.daily_quota))
        .bind(account_id.as_uuid())
        .bind(key.scopes.as_strs())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let record = decode_key(&row)?;
        tx.commit().await?;
        Ok(Some(record))
    }

    /// Every key, oldest first, revoked ones included.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE kind = 'api' ORDER BY id"
        ))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_key).collect()
    }

    /// The keys of one account, oldest first, revoked ones included.
    pub async fn list_account_keys(
        &self,
        account: AccountId,
    ) -> Result<Vec<ApiKeyRecord>, StoreError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE account_id = $1 AND kind = 'api' ORDER BY id"
        ))
        .bind(account.as_uuid())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(decode_key).collect()
    }

    /// The key with this id, for `GET /v1/account` (its own key's usage).
    pub async fn get_api_key(&self, id: i64) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            key_columns!(),
            " FROM api_keys WHERE id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.reads)
        .await?;
        row.as_ref().map(decode_key).transpose()
    }

    /// Revokes the key with this prefix if it belongs to `account`. Both outcomes of a miss cost
    /// the same two statements, so a foreign key cannot be told from a missing one by timing.
    pub async fn revoke_account_key(
        &self,
        account: AccountId,
        prefix: &str,
    ) -> Result<Revoked, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE prefix = $1 AND account_id = $2 AND kind = 'api'
             RETURNING ",
            key_columns!()
        ))
        .bind(prefix)
        .bind(account.as_uuid())
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = row {
            return Ok(Revoked::Revoked(decode_key(&row)?));
        }
        let foreign: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM api_keys WHERE prefix = $1 AND kind = 'api')",
        )
        .bind(prefix)
        .fetch_one(&self.pool)
        .await?;
        Ok(Revoked::NotFound { foreign })
    }

    /// Keys not revoked; `imgmeta up` creates one when there are none.
    pub async fn count_active_api_keys(&self) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM api_keys WHERE revoked_at IS NULL AND kind = 'api'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Revokes the key with this prefix; `None` if there is no such key. Revoking twice keeps
    /// the first revocation time.
    pub async fn revoke_api_key(&self, prefix: &str) -> Result<Option<ApiKeyRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "UPDATE api_keys SET revoked_at = coalesce(revoked_at, now())
             WHERE prefix = $1 AND kind = 'api'
             RETURNING ",
            key_columns!()
        ))
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(decode_key).transpose()
    }

    /// The key a presented prefix names, for the caller to compare hashes in constant time.
    pub async fn find_api_key(&self, prefix: &str) -> Result<Option<KeyLookup>, StoreError> {
        let row = sqlx::query(
            "SELECT id, key_hash, revoked_at IS NOT NULL AS revoked, account_id
             FROM api_keys WHERE prefix = $1 AND kind = 'api'",
        )
        .bind(prefix)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(KeyLookup {
                id: row.try_get("id")?,
                hash: row.try_get("key_hash")?,
                revoked: row.try_get("revoked")?,
                account_id: AccountId::from_uuid(row.try_get("account_id")?),
            })
        })
        .transpose()
    }

    /// Takes one token from the key's bucket; nothing is taken when the request is refused. A
    /// submission (`checks_quota`) is refused early when the key's or its account's daily quota
    /// is already used up; the quotas themselves are charged only when a job is accepted.
    pub async fn admit(&self, key_id: i64, checks_quota: bool) -> Result<Admission, StoreError> {
        Ok(self
            .admit_leasing(key_id, checks_quota, 1, 0)
            .await?
            .admission)
    }

    /// [`Store::admit`] for a process that serves a busy key's next requests from tokens it
    /// holds ([`Lease`]): gives back `returned` tokens taken earlier and not used, then takes
    /// up to `want` (at least 1) when the bucket holds a whole one: one for this request, the
    /// rest for the lease. One statement: it locks the key's bucket (its `key_buckets` row),
    /// refills it from the row it locked (the latest version, whoever wrote it), takes the
    /// tokens and commits, so concurrent requests on any number of API replicas share one
    /// bucket and the lock is held for one round trip only. The key's own row, where
    /// statements that create jobs charge its quota under a lock, is only read: an admission
    /// never waits for them.
    pub async fn admit_leasing(
        &self,
        key_id: i64,
        checks_quota: bool,
        want: u32,
        returned: u32,
    ) -> Result<Lease, StoreError> {
        let row = sqlx::query(
            "WITH k AS (
                 SELECT k.id, k.rate_per_minute, k.daily_quota, k.scopes, a.redact_gps,
                        least(b.tokens + $3 + greatest(extract(epoch FROM now() - b.tokens_at)::float8, 0)
                                         * k.rate_per_minute / 60.0,
                              k.rate_per_minute::float8) AS refilled,
                        CASE WHEN k.quota_day = (now() AT TIME ZONE 'UTC')::date THEN k.quota_used
                             ELSE 0 END AS quota_used,
                        CASE WHEN a.quota_day = (now() AT TIME ZONE 'UTC')::date THEN a.quota_used
                             ELSE 0 END >= a.daily_quota AS account_quota_used_up,
                        extract(epoch FROM date_trunc('day', now() AT TIME ZONE 'UTC')
                            + interval '1 day' - (now() AT TIME ZONE 'UTC'))::float8 AS secs_to_midnight
                 FROM api_keys k JOIN accounts a ON a.id = k.account_id
                      JOIN key_buckets b ON b.key_id = k.id
                 WHERE k.id = $1 AND k.revoked_at IS NULL FOR UPDATE OF b
             ), taken AS (
                 UPDATE key_buckets b SET tokens = k.refilled - least(floor(k.refilled), $2),
                                          tokens_at = now()
                 FROM k WHERE b.key_id = k.id
             )
             SELECT *, least(floor(refilled), $2)::int4 AS granted FROM k",
        )
        .bind(key_id)
        .bind(f64::from(want.max(1)))
        .bind(f64::from(returned))
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(Lease {
                admission: Admission {
                    outcome: AdmissionOutcome::Revoked,
                    key: None,
                    limit: 0,
                    remaining: 0,
                    reset_secs: 0,
                },
                extra: 0,
                quota_used_up: false,
            });
        };
        let rate: i32 = row.try_get("rate_per_minute")?;
        let quota: i32 = row.try_get("daily_quota")?;
        let bucket = Bucket {
            rate_per_minute: f64::from(rate),
            tokens: row.try_get("refilled")?,
        };
        let granted: i32 = row.try_get("granted")?;
        let quota_used: i32 = row.try_get("quota_used")?;
        let account_quota_used_up: bool = row.try_get("account_quota_used_up")?;
        let quota_used_up = quota_used >= quota || account_quota_used_up;
        let now = KeyNow {
            scopes: decode_scopes(key_id, &row)?,
            redact_gps: row.try_get("redact_gps")?,
        };
        let secs_to_midnight: f64 = row.try_get("secs_to_midnight")?;
        // The statement took tokens exactly when the bucket held a whole one.
        let (outcome, bucket) = if bucket.tokens < 1.0 {
            let retry = bucket.secs_until(1.0).ceil().max(1.0) as u64;
            (
                AdmissionOutcome::RateLimited {
                    retry_after_secs: retry,
                },
                bucket,
            )
        } else {
            let taken = Bucket {
                tokens: bucket.tokens - f64::from(granted),
                ..bucket
            };
            if checks_quota && quota_used_up {
                // A refused submission still costs a token, so a client cannot hammer at will.
                let retry = secs_to_midnight.ceil().max(1.0) as u64;
                (
                    AdmissionOutcome::QuotaExceeded {
                        retry_after_secs: retry,
                    },
                    taken,
                )
            } else {
                (AdmissionOutcome::Allowed, taken)
            }
        };
        Ok(Lease {
            admission: Admission {
                outcome,
                key: Some(now),
                limit: rate as u32,
                remaining: bucket.tokens.max(0.0).floor() as u32,
                reset_secs: bucket.secs_until(bucket.rate_per_minute).ceil() as u64,
            },
            extra: u32::try_from(granted - 1).unwrap_or(0),
            quota_used_up,
        })
    }
}

/// The channel on which PostgreSQL announces a change to what an admission reads besides
/// tokens (migration `20261209000001_admission_changes.sql`).
const ADMISSION_CHANGES: &str = "imgmeta_admission_changes";

/// Changes to keys and accounts that admissions read (revocation, scopes, limits, the GPS
/// setting), as they commit on any process of the deployment.
pub struct AdmissionChanges(sqlx::postgres::PgListener);

impl AdmissionChanges {
    /// Waits for the next change: `true`, or `false` when the connection dropped (changes may
    /// have been missed; the next call connects again and listens on).
    pub async fn next(&mut self) -> Result<bool, StoreError> {
        Ok(self.0.try_recv().await?.is_some())
    }
}

impl Store {
    /// Listens for [`AdmissionChanges`], so an API process can drop the rate-limit leases that
    /// hold what changed. Holds one connection of the pool.
    pub async fn admission_changes(&self) -> Result<AdmissionChanges, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(ADMISSION_CHANGES).await?;
        Ok(AdmissionChanges(listener))
    }
}

/// A token bucket holding up to a minute's worth of requests and refilling continuously.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Bucket {
    rate_per_minute: f64,
    tokens: f64,
}

impl Bucket {
    /// Seconds until the bucket holds `level` tokens.
    fn secs_until(self, level: f64) -> f64 {
        ((level - self.tokens).max(0.0)) * 60.0 / self.rate_per_minute
    }
}

pub(crate) fn to_i32(n: u32) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

fn decode_scopes(id: i64, row: &PgRow) -> Result<ScopeSet, StoreError> {
    let scopes: Vec<String> = row.try_get("scopes")?;
    ScopeSet::parse(&scopes).map_err(|e| StoreError::CorruptKey {
        id,
        reason: e.message,
    })
}

fn decode_key(row: &PgRow) -> Result<ApiKeyRecord, StoreError> {
    let id: i64 = row.try_get("id")?;
    let rate: i32 = row.try_get("rate_per_minute")?;
    let quota: i32 = row.try_get("daily_quota")?;
    let used: i32 = row.try_get("used_today")?;
    Ok(ApiKeyRecord {
        id,
        prefix: row.try_get("prefix")?,
        name: row.try_get("name")?,
        account_id: AccountId::from_uuid(row.try_get("account_id")?),
        scopes: decode_scopes(id, row)?,
        rate_per_minute: rate.max(0) as u32,
        daily_quota: quota.max(0) as u32,
        used_today: used.max(0) as u32,
        created_at: row.try_get("created_at")?,
        revoked_at: row.try_get("revoked_at")?,
    })
}

#[cfg(test)]
mod tests {
    use super::Bucket;

    #[test]
    fn the_wait_for_a_token_follows_the_rate() {
        let bucket = Bucket {
            rate_per_minute: 2.0,
            tokens: 0.25,
        };
        assert_eq!(bucket.secs_until(1.0), 22.5);
        assert_eq!(bucket.secs_until(0.1), 0.0);
    }
}
