//! The login throttle, shared by every API process: failed logins counted per subject (an
//! e-mail address, a client address) within a sliding window. An attempt is recorded as a
//! failure *before* its password is checked, under a lock on its subjects, and deleted when it
//! succeeds: attempts in flight count, so no number of concurrent guesses gets past the limit.

use crate::{Store, StoreError};
use std::time::Duration;

/// One thing attempts are counted against: the SHA-256 of what it is (the caller decides),
/// with the number of failures allowed within the window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleSubject {
    pub hash: [u8; 32],
    pub max_failures: u32,
}

/// The outcome of starting a login attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginAttempt {
    /// Go ahead and check the password; the attempt is recorded as a failure until
    /// [`Store::login_succeeded`] or [`Store::forget_login_attempt`] says otherwise.
    Admitted(AttemptIds),
    /// Refused: subject `subject` (its index in the list given) has too many recent failures;
    /// the oldest one that counts leaves the window after `retry_after_secs`.
    Throttled {
        subject: usize,
        retry_after_secs: u64,
    },
}

/// The rows an admitted attempt wrote, one per subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttemptIds(Vec<i64>);

/// The advisory-lock class of throttle subjects (the two-integer key space, apart from the
/// one-bigint space other locks use): "ilgn".
const LOCK_CLASS: i32 = 0x696c_676e;

impl Store {
    /// Starts a login attempt counted against every subject in `subjects`: refused when any
    /// already has its maximum of failures within `window`, else recorded against each.
    pub async fn begin_login_attempt(
        &self,
        subjects: &[ThrottleSubject],
        window: Duration,
    ) -> Result<LoginAttempt, StoreError> {
        let mut tx = self.pool.begin().await?;
        // Locks taken in one order everywhere, so two attempts sharing subjects cannot deadlock.
        let mut locks: Vec<i32> = subjects
            .iter()
            .map(|s| i32::from_be_bytes([s.hash[0], s.hash[1], s.hash[2], s.hash[3]]))
            .collect();
        locks.sort_unstable();
        locks.dedup();
        for lock in locks {
            sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
                .bind(LOCK_CLASS)
                .bind(lock)
                .execute(&mut *tx)
                .await?;
        }
        let mut refusal: Option<(usize, u64)> = None;
        for (index, subject) in subjects.iter().enumerate() {
            // The failure that must leave the window before one more attempt is allowed: the
            // max_failures-th most recent one.
            let secs_left: Option<f64> = sqlx::query_scalar(
                "SELECT extract(epoch FROM at + make_interval(secs => $2) - clock_timestamp())::float8
                 FROM login_failures
                 WHERE subject = $1 AND at > clock_timestamp() - make_interval(secs => $2)
                 ORDER BY at DESC OFFSET $3 LIMIT 1",
            )
            .bind(&subject.hash[..])
            .bind(window.as_secs_f64())
            .bind(i64::from(subject.max_failures.max(1)) - 1)
            .fetch_optional(&mut *tx)
            .await?;
            if let Some(secs) = secs_left {
                let secs = secs.ceil().max(1.0) as u64;
                if refusal.is_none_or(|(_, longest)| secs > longest) {
                    refusal = Some((index, secs));
                }
            }
        }
        if let Some((subject, retry_after_secs)) = refusal {
            tx.rollback().await?;
            return Ok(LoginAttempt::Throttled {
                subject,
                retry_after_secs,
            });
        }
        let hashes: Vec<Vec<u8>> = subjects.iter().map(|s| s.hash.to_vec()).collect();
        let ids: Vec<i64> = sqlx::query_scalar(
            "INSERT INTO login_failures (subject) SELECT unnest($1::bytea[]) RETURNING id",
        )
        .bind(&hashes)
        .fetch_all(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(LoginAttempt::Admitted(AttemptIds(ids)))
    }

    /// The attempt succeeded: its rows are deleted, and so are the earlier failures counted
    /// against `clear` (the account's: a user who logs in starts afresh, while a client
    /// address's failures stay, so logging in to one's own account cannot erase them).
    pub async fn login_succeeded(
        &self,
        attempt: &AttemptIds,
        clear: Option<&ThrottleSubject>,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE id = ANY($1) OR subject = $2")
            .bind(&attempt.0)
            .bind(clear.map(|s| s.hash.to_vec()))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The attempt could not be decided (the database or the hashing failed): it does not
    /// count as a failure.
    pub async fn forget_login_attempt(&self, attempt: &AttemptIds) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM login_failures WHERE id = ANY($1)")
            .bind(&attempt.0)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
