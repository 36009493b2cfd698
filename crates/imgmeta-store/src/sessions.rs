//! Login sessions, looked up by the SHA-256 of their token: creation, lookup (which deletes an
//! ended session and moves a live one's idle expiry forward), logout and the sweep of ended
//! ones. A session authenticates as its user's hidden session key, read with it.

use crate::users::{UserRecord, decode_user, user_columns};
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{AccountId, ScopeSet, UserId};
use sqlx::Row;
use std::time::Duration;

/// How long a session lives: unused, and at most.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionLifetime {
    pub idle: Duration,
    pub max: Duration,
}

/// A live session: its user, the key it authenticates as, and when it ends at the latest.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    pub user: UserRecord,
    pub key: SessionKey,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// The user's hidden session key, as authentication needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKey {
    pub id: i64,
    pub prefix: String,
    pub account_id: AccountId,
    pub scopes: ScopeSet,
    /// The account's GPS setting, read with the key.
    pub redact_gps: bool,
}

/// A live session's idle expiry is written only when it would move by more than this, so a
/// session making many requests writes its row about once a minute, not on every request.
const TOUCH_GRANULARITY_SECS: f64 = 60.0;

impl Store {
    /// Starts a session for `user` under the token hashing to `token_hash`.
    pub async fn create_session(
        &self,
        user: UserId,
        token_hash: &[u8; 32],
        lifetime: SessionLifetime,
    ) -> Result<DateTime<Utc>, StoreError> {
        Ok(sqlx::query_scalar(
            "INSERT INTO sessions (token_hash, user_id, idle_expires_at, expires_at)
             VALUES ($1, $2, least(now() + make_interval(secs => $3), now() + make_interval(secs => $4)),
                     now() + make_interval(secs => $4))
             RETURNING expires_at",
        )
        .bind(&token_hash[..])
        .bind(user.as_uuid())
        .bind(lifetime.idle.as_secs_f64())
        .bind(lifetime.max.as_secs_f64())
        .fetch_one(&self.pool)
        .await?)
    }

    /// The live session whose token hashes to `token_hash`, with its user and key; `None` when
    /// there is none, it has ended (it is then deleted), or its key was revoked by an operator.
    /// Using a session moves its idle expiry forward (never past its absolute expiry).
    pub async fn find_session(
        &self,
        token_hash: &[u8; 32],
        idle: Duration,
    ) -> Result<Option<SessionRecord>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", s.created_at, s.expires_at,
                    s.idle_expires_at > now() AS alive,
                    extract(epoch FROM least(now() + make_interval(secs => $2), s.expires_at)
                                       - s.idle_expires_at)::float8 AS extension_secs,
                    k.id AS key_id, k.prefix, k.scopes, k.revoked_at IS NOT NULL AS key_revoked,
                    a.redact_gps
             FROM sessions s
             JOIN users u ON u.id = s.user_id
             JOIN api_keys k ON k.id = u.session_key_id
             JOIN accounts a ON a.id = u.account_id
             WHERE s.token_hash = $1"
        ))
        .bind(&token_hash[..])
        .bind(idle.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        if !row.try_get::<bool, _>("alive")? {
            sqlx::query("DELETE FROM sessions WHERE token_hash = $1 AND idle_expires_at <= now()")
                .bind(&token_hash[..])
                .execute(&self.pool)
                .await?;
            return Ok(None);
        }
        if row.try_get::<bool, _>("key_revoked")? {
            return Ok(None);
        }
        if row.try_get::<f64, _>("extension_secs")? > TOUCH_GRANULARITY_SECS {
            sqlx::query(
                "UPDATE sessions
                 SET idle_expires_at = least(now() + make_interval(secs => $2), expires_at)
                 WHERE token_hash = $1 AND idle_expires_at > now()",
            )
            .bind(&token_hash[..])
            .bind(idle.as_secs_f64())
            .execute(&self.pool)
            .await?;
        }
        let key_id: i64 = row.try_get("key_id")?;
        let scopes: Vec<String> = row.try_get("scopes")?;
        let user = decode_user(&row)?;
        Ok(Some(SessionRecord {
            key: SessionKey {
                id: key_id,
                prefix: row.try_get("prefix")?,
                account_id: user.account_id,
                scopes: ScopeSet::parse(&scopes).map_err(|e| StoreError::CorruptKey {
                    id: key_id,
                    reason: e.message,
                })?,
                redact_gps: row.try_get("redact_gps")?,
            },
            user,
            created_at: row.try_get("created_at")?,
            expires_at: row.try_get("expires_at")?,
        }))
    }

    /// Ends the session whose token hashes to `token_hash` (logout); whether there was one.
    pub async fn delete_session(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        Ok(sqlx::query("DELETE FROM sessions WHERE token_hash = $1")
            .bind(&token_hash[..])
            .execute(&self.pool)
            .await?
            .rows_affected()
            > 0)
    }

    /// The user's live sessions (for tests and audits).
    pub async fn count_sessions(&self, user: UserId) -> Result<i64, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND idle_expires_at > now()",
        )
        .bind(user.as_uuid())
        .fetch_one(&self.pool)
        .await?)
    }

    /// Deletes up to `limit` ended sessions and up to `limit` login failures older than
    /// `window` (no longer counted by the throttle); how many of each.
    pub async fn sweep_sessions(
        &self,
        window: Duration,
        limit: i64,
    ) -> Result<(u64, u64), StoreError> {
        let sessions = sqlx::query(
            "DELETE FROM sessions WHERE token_hash IN (
                 SELECT token_hash FROM sessions WHERE idle_expires_at <= now() LIMIT $1)",
        )
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        let failures = sqlx::query(
            "DELETE FROM login_failures WHERE id IN (
                 SELECT id FROM login_failures WHERE at <= now() - make_interval(secs => $1)
                 LIMIT $2)",
        )
        .bind(window.as_secs_f64())
        .bind(limit)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok((sessions, failures))
    }
}
