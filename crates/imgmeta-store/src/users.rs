//! Users: sign-up (a new account, the user's hidden session key and the user, in one
//! transaction), lookup by e-mail address for login, and password changes, which end the
//! user's other sessions in the same transaction.

use crate::accounts::NewAccount;
use crate::keys::to_i32;
use crate::{Store, StoreError};
use chrono::{DateTime, Utc};
use imgmeta_domain::{AccountId, Email, ScopeSet, UserId};
use sqlx::Row;
use sqlx::postgres::PgRow;

/// A user about to be created, with the account it creates and its session key (whose secret
/// the caller generated and threw away; only the hash is kept, as for any key).
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: UserId,
    pub email: Email,
    /// An argon2id PHC string.
    pub password_hash: String,
    pub account: NewAccount,
    pub session_key: NewSessionKey,
}

/// The hidden key a user's sessions authenticate as: every scope, the given limits.
#[derive(Debug, Clone)]
pub struct NewSessionKey {
    pub prefix: String,
    pub hash: [u8; 32],
    pub rate_per_minute: u32,
    pub daily_quota: u32,
}

/// A user as the API shows it (never the password hash).
#[derive(Debug, Clone, PartialEq)]
pub struct UserRecord {
    pub id: UserId,
    pub email: String,
    pub account_id: AccountId,
    pub created_at: DateTime<Utc>,
    /// When the address was verified: always `None`, verification is out of scope (the hook
    /// where it would go).
    pub email_verified_at: Option<DateTime<Utc>>,
}

/// The outcome of a sign-up.
#[derive(Debug, Clone, PartialEq)]
pub enum SignUp {
    Created(UserRecord),
    /// A user with this address exists; nothing was created.
    EmailTaken,
    /// The session key's prefix is taken (one chance in 62^8): the caller draws another key.
    KeyPrefixTaken,
}

/// What a login checks: the user and its password hash.
#[derive(Debug, Clone, PartialEq)]
pub struct UserLogin {
    pub user: UserRecord,
    pub password_hash: String,
}

/// The columns [`decode_user`] reads, of `users u`.
macro_rules! user_columns {
    () => {
        "u.id AS user_id, u.email, u.account_id, u.created_at AS user_created_at, u.email_verified_at"
    };
}
pub(crate) use user_columns;

impl Store {
    /// Creates the account, the session key and the user in one transaction.
    pub async fn create_user(&self, new: &NewUser) -> Result<SignUp, StoreError> {
        let mut tx = self.pool.begin().await?;
        let taken: bool =
            sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)")
                .bind(new.email.as_str())
                .fetch_one(&mut *tx)
                .await?;
        if taken {
            return Ok(SignUp::EmailTaken);
        }
        let account = AccountId::new();
        sqlx::query(
            "INSERT INTO accounts (id, name, daily_quota, retention_days, redact_gps)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(account.as_uuid())
        .bind(new.account.name.as_str())
        .bind(to_i32(new.account.daily_quota))
        .bind(to_i32(
            new.account
                .retention_days
                .clamp(1, crate::accounts::MAX_RETENTION_DAYS),
        ))
        .bind(new.account.redact_gps)
        .execute(&mut *tx)
        .await?;
        let key = &new.session_key;
        let key_id: Option<i64> = sqlx::query_scalar(
            "INSERT INTO api_keys (prefix, key_hash, name, rate_per_minute, daily_quota,
                                   account_id, scopes, kind)
             VALUES ($1, $2, 'session', $3, $4, $5, $6, 'session')
             ON CONFLICT (prefix) DO NOTHING
             RETURNING id",
        )
        .bind(&key.prefix)
        .bind(&key.hash[..])
        .bind(to_i32(key.rate_per_minute))
        .bind(to_i32(key.daily_quota))
        .bind(account.as_uuid())
        .bind(ScopeSet::all().as_strs())
        .fetch_optional(&mut *tx)
        .await?;
        let Some(key_id) = key_id else {
            tx.rollback().await?;
            return Ok(SignUp::KeyPrefixTaken);
        };
        // A concurrent sign-up with the same address waits on the unique index, then finds it
        // taken here.
        let row = sqlx::query(concat!(
            "INSERT INTO users AS u (id, account_id, email, password_hash, session_key_id)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (email) DO NOTHING
             RETURNING ",
            user_columns!()
        ))
        .bind(new.id.as_uuid())
        .bind(account.as_uuid())
        .bind(new.email.as_str())
        .bind(&new.password_hash)
        .bind(key_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(SignUp::EmailTaken);
        };
        let user = decode_user(&row)?;
        tx.commit().await?;
        Ok(SignUp::Created(user))
    }

    /// The user with this (normalised) address and its password hash, for a login.
    pub async fn find_user_by_email(&self, email: &Email) -> Result<Option<UserLogin>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            user_columns!(),
            ", u.password_hash FROM users u WHERE u.email = $1"
        ))
        .bind(email.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(UserLogin {
                user: decode_user(&row)?,
                password_hash: row.try_get("password_hash")?,
            })
        })
        .transpose()
    }

    /// The password hash of a user, for a password change to check the current one.
    pub async fn user_password_hash(&self, user: UserId) -> Result<Option<String>, StoreError> {
        Ok(
            sqlx::query_scalar("SELECT password_hash FROM users WHERE id = $1")
                .bind(user.as_uuid())
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Replaces the user's password hash and ends every other session of the user (all but
    /// the one whose token hashes to `keep`), in one transaction; how many were ended.
    pub async fn change_password(
        &self,
        user: UserId,
        password_hash: &str,
        keep: &[u8; 32],
    ) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE users SET password_hash = $2, password_changed_at = now() WHERE id = $1",
        )
        .bind(user.as_uuid())
        .bind(password_hash)
        .execute(&mut *tx)
        .await?;
        let ended = sqlx::query("DELETE FROM sessions WHERE user_id = $1 AND token_hash <> $2")
            .bind(user.as_uuid())
            .bind(&keep[..])
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(ended)
    }
}

pub(crate) fn decode_user(row: &PgRow) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: UserId::from_uuid(row.try_get("user_id")?),
        email: row.try_get("email")?,
        account_id: AccountId::from_uuid(row.try_get("account_id")?),
        created_at: row.try_get("user_created_at")?,
        email_verified_at: row.try_get("email_verified_at")?,
    })
}
