//! The URL cache's tables: entries by normalised URL and model (positive: an analysis with the
//! origin's validators and freshness; negative: a URL's permanent error, kept briefly), the
//! single flights that make N concurrent submissions of one uncached URL cost one fetch and one
//! inference across the deployment, and the models the workers run now.
//!
//! A flight's followers are jobs with `follows` set to the leading job; they have no message.
//! Whatever ends the leading run ends them in the same transaction: its success completes each
//! with its own cut of the analysis, its failure fails them with the same error. A leader that
//! is cancelled hands the flight to its oldest follower; the reconciler's sweep does the same
//! for a flight whose leader ended any other way, so no follower is ever stranded.

use crate::{Store, StoreError};
use imgmeta_domain::analysis::{Analysis, CacheInfo, Cut};
use imgmeta_domain::{ErrorBody, ErrorCode, JobId, MinScore, TaskSet};
use sqlx::Row;
use std::time::Duration;
use uuid::Uuid;

/// A URL cache entry as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct UrlEntry {
    pub model: String,
    /// The bytes' SHA-256 (positive entries).
    pub sha256: Option<String>,
    pub analysis: Analysis,
    /// The URL's permanent error (negative entries).
    pub error: Option<ErrorBody>,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    /// Usable only after a revalidation (`Cache-Control: no-cache`).
    pub must_revalidate: bool,
    pub age_s: f64,
    /// Seconds until it expires; negative once stale.
    pub fresh_for_s: f64,
}

impl UrlEntry {
    pub fn is_fresh(&self) -> bool {
        self.fresh_for_s > 0.0 && !self.must_revalidate
    }
}

/// What the API found for a URL: the newest entry made by a model a worker runs now, and
/// whether a flight for the URL is under way (so a stale entry may be served meanwhile).
#[derive(Debug, Clone, PartialEq)]
pub struct UrlLookup {
    pub entry: Option<UrlEntry>,
    pub in_flight: bool,
    /// The asking account's GPS setting, to cut the answer with.
    pub redact_gps: bool,
}

/// An entry to keep after a successful run.
#[derive(Debug, Clone)]
pub struct NewUrlEntry<'a> {
    pub url_key: &'a str,
    pub model: &'a str,
    pub sha256: &'a str,
    pub analysis: &'a Analysis,
    pub etag: Option<&'a str>,
    pub last_modified: Option<&'a str>,
    pub must_revalidate: bool,
    pub fresh_for: Duration,
}

/// A URL's permanent error to remember for `ttl`.
#[derive(Debug, Clone)]
pub struct NegativeEntry<'a> {
    pub url_key: &'a str,
    pub model: &'a str,
    pub ttl: Duration,
}

/// What ends a leading run besides its own row: the analysis its followers are cut from and the
/// entry to keep (none when the origin forbade storing).
#[derive(Debug, Clone, Default)]
pub struct FlightEnd<'a> {
    pub analysis: Option<&'a Analysis>,
    pub entry: Option<NewUrlEntry<'a>>,
}

/// Hits on one entry, tallied by an API process since its last write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlHits {
    pub url_key: String,
    pub model: String,
    pub hits: i64,
}

/// `imgmeta cache stats` for the URL cache.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct UrlCacheStats {
    pub entries: i64,
    pub negative: i64,
    pub stale: i64,
    pub bytes: i64,
    pub hits: i64,
    pub flights: i64,
    pub waiting: i64,
}

/// The bounds the sweep keeps the URL cache within.
#[derive(Debug, Clone, Copy)]
pub struct UrlCacheBounds {
    pub max_entries: i64,
    pub max_bytes: i64,
    /// Entries expired longer than this are dropped (nothing serves them any more).
    pub max_stale: Duration,
}

/// Whether a failure says something about the URL itself (so every request for it would fail
/// the same way for a while), as opposed to this run or this service.
pub fn is_negative(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::HttpStatus
            | ErrorCode::NotAnImage
            | ErrorCode::UnsupportedFormat
            | ErrorCode::DecodeFailed
            | ErrorCode::ImageTooLarge
            | ErrorCode::TooLarge
            | ErrorCode::TooManyRedirects
    )
}

/// A stored error code; an unknown one (written by a newer release) reads as `internal`.
pub(crate) fn parse_code(code: &str) -> ErrorCode {
    serde_json::from_value(serde_json::Value::String(code.to_owned()))
        .unwrap_or(ErrorCode::Internal)
}

pub(crate) fn decode_entry(row: &sqlx::postgres::PgRow) -> Result<UrlEntry, StoreError> {
    let code: Option<String> = row.try_get("error_code")?;
    let error = match code {
        Some(code) => Some(ErrorBody::new(
            parse_code(&code),
            row.try_get::<Option<String>, _>("error_message")?
                .unwrap_or_default(),
        )),
        None => None,
    };
    Ok(UrlEntry {
        model: row.try_get("model")?,
        sha256: row.try_get("sha256")?,
        analysis: Analysis {
            image: row.try_get("image")?,
            objects: row.try_get("objects")?,
        },
        error,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
        must_revalidate: row.try_get("must_revalidate")?,
        age_s: row.try_get("age_s")?,
        fresh_for_s: row.try_get("fresh_for_s")?,
    })
}

/// The channel purges of URL entries are announced on, in the purging transaction (so the
/// announcement is delivered exactly when the purge commits). The payload is the URL key, or
/// [`ALL_URLS`].
const URL_PURGES: &str = "imgmeta_url_purges";

/// The payload of a purge of every URL entry; no URL key is a single `*`.
const ALL_URLS: &str = "*";

/// NOTIFY's payload must stay under 8,000 bytes; a longer key announces a purge of everything.
const MAX_NOTIFY_PAYLOAD: usize = 7_000;

async fn notify_purge(tx: &mut sqlx::PgConnection, url_key: &str) -> Result<(), StoreError> {
    let payload = match url_key.len() <= MAX_NOTIFY_PAYLOAD {
        true => url_key,
        false => ALL_URLS,
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(URL_PURGES)
        .bind(payload)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// A purge of URL entries, as announced to listeners.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UrlPurge {
    /// One URL's entries.
    Url(String),
    /// Every entry.
    All,
    /// The listening connection was lost (and is being made again): purges may have been
    /// missed, so a listener forgets everything it holds.
    Lost,
}

/// Purges of URL entries as they commit, on any process of the deployment.
pub struct UrlPurges(sqlx::postgres::PgListener);

impl UrlPurges {
    /// The next purge; [`UrlPurge::Lost`] when the connection dropped (the next call connects
    /// again and listens on).
    pub async fn next(&mut self) -> Result<UrlPurge, StoreError> {
        Ok(match self.0.try_recv().await? {
            None => UrlPurge::Lost,
            Some(n) if n.payload() == ALL_URLS => UrlPurge::All,
            Some(n) => UrlPurge::Url(n.payload().to_owned()),
        })
    }
}

macro_rules! entry_columns {
    () => {
        "model, sha256, image, objects, error_code, error_message, etag, last_modified,
         must_revalidate, EXTRACT(EPOCH FROM now() - stored_at)::float8 AS age_s,
         EXTRACT(EPOCH FROM expires_at - now())::float8 AS fresh_for_s"
    };
}
pub(crate) use entry_columns;

impl Store {
    /// Records that a worker runs `model` now; the API answers only from entries of models
    /// announced within the last three minutes.
    pub async fn announce_model(&self, model: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO models_seen (model) VALUES ($1)
             ON CONFLICT (model) DO UPDATE SET seen_at = now()",
        )
        .bind(model)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The API's lookup: the newest entry for `url_key` made by a model a worker runs now,
    /// whether a flight for it is under way, and `account`'s GPS setting. One statement, and a
    /// read only: a viral URL's entry is one row that every submission would otherwise lock to
    /// count its hit, so hits are tallied in the API and written by [`Store::count_url_hits`].
    pub async fn lookup_url(
        &self,
        url_key: &str,
        account: imgmeta_domain::AccountId,
    ) -> Result<UrlLookup, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT EXISTS (SELECT 1 FROM url_flights WHERE url_key = $1) AS in_flight,
                    COALESCE((SELECT redact_gps FROM accounts WHERE id = $2), true) AS account_redacts,
                    e.* FROM (SELECT 1) one LEFT JOIN (SELECT ",
            entry_columns!(),
            " FROM url_cache
               WHERE url_key = $1
                 AND model IN (SELECT model FROM models_seen
                               WHERE seen_at > now() - interval '3 minutes')
               ORDER BY stored_at DESC LIMIT 1) e ON true"
        ))
        .bind(url_key)
        .bind(account.as_uuid())
        .fetch_one(&self.pool)
        .await?;
        let in_flight: bool = row.try_get("in_flight")?;
        let redact_gps: bool = row.try_get("account_redacts")?;
        let model: Option<String> = row.try_get("model")?;
        let entry = match model {
            Some(_) => Some(decode_entry(&row)?),
            None => None,
        };
        Ok(UrlLookup {
            entry,
            in_flight,
            redact_gps,
        })
    }

    /// Adds tallied hits to their entries and marks them used now (the sweep evicts the least
    /// recently used first). One statement for any number of entries; an entry purged or
    /// replaced meanwhile is skipped.
    pub async fn count_url_hits(&self, hits: &[UrlHits]) -> Result<(), StoreError> {
        if hits.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = hits.iter().map(|h| h.url_key.as_str()).collect();
        let models: Vec<&str> = hits.iter().map(|h| h.model.as_str()).collect();
        let counts: Vec<i64> = hits.iter().map(|h| h.hits).collect();
        sqlx::query(
            "UPDATE url_cache c SET hits = c.hits + t.hits, hit_at = now()
             FROM unnest($1::text[], $2::text[], $3::int8[]) AS t(url_key, model, hits)
             WHERE (c.url_key, c.model) = (t.url_key, t.model)",
        )
        .bind(keys)
        .bind(models)
        .bind(counts)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The worker's lookup before a leading run: the positive entry for `url_key` under its own
    /// `model`, whose validators make the fetch conditional.
    pub async fn url_entry(
        &self,
        url_key: &str,
        model: &str,
    ) -> Result<Option<UrlEntry>, StoreError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            entry_columns!(),
            " FROM url_cache WHERE url_key = $1 AND model = $2 AND error_code IS NULL"
        ))
        .bind(url_key)
        .bind(model)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| decode_entry(&row)).transpose()
    }

    /// Ends run `attempt` as succeeded (as [`Store::complete`]) and, in the same transaction,
    /// keeps its artifacts, the URL cache entry and the content cache entry (`content`: an
    /// analysis this run made) and completes the run's followers with their cuts of the
    /// analysis (or, with nothing to share, hands the flight over): how many followers it
    /// completed, or `None` (and nothing written) when that run no longer owns the job. The
    /// job, both entries and the end of the flight are one statement; the followers, when the
    /// flight counted any, one more read and one update.
    pub async fn complete_leading(
        &self,
        id: JobId,
        attempt: i32,
        result: &serde_json::Value,
        artifacts: &[crate::NewArtifact<'_>],
        end: Option<&FlightEnd<'_>>,
        content: Option<&crate::NewContent<'_>>,
    ) -> Result<Option<u64>, StoreError> {
        let mut tx = self.pool.begin().await?;
        let shared = end.and_then(|e| e.analysis);
        let entry = end.and_then(|e| e.entry.as_ref());
        let row = sqlx::query(
            "WITH done AS (
                 UPDATE jobs SET status = 'succeeded', result = $3, finished_at = now(),
                        lease_until = NULL, updated_at = now()
                 WHERE id = $1 AND attempts = $2 AND status = 'running'
                 RETURNING id
             ), url AS (
                 INSERT INTO url_cache (url_key, model, sha256, image, objects, etag,
                                        last_modified, must_revalidate, expires_at, bytes)
                 SELECT $4, $5, $6, $7, $8, $9, $10, $11, now() + $12,
                        COALESCE(octet_length($7::text), 0) + COALESCE(octet_length($8::text), 0)
                 FROM done WHERE $4::text IS NOT NULL
                 ON CONFLICT (url_key, model) DO UPDATE SET
                     sha256 = EXCLUDED.sha256, image = EXCLUDED.image,
                     objects = EXCLUDED.objects, error_code = NULL, error_message = NULL,
                     etag = EXCLUDED.etag, last_modified = EXCLUDED.last_modified,
                     must_revalidate = EXCLUDED.must_revalidate, stored_at = now(),
                     expires_at = EXCLUDED.expires_at, hit_at = now(), bytes = EXCLUDED.bytes
             ), content AS (
                 INSERT INTO content_cache (sha256, model, image, objects)
                 SELECT $13, $14, $15, $16 FROM done WHERE $13::text IS NOT NULL
                 ON CONFLICT (sha256, model) DO UPDATE
                 SET image = COALESCE(EXCLUDED.image, content_cache.image),
                     objects = COALESCE(EXCLUDED.objects, content_cache.objects),
                     created_at = now(), hit_at = now()
             ), flight AS (
                 DELETE FROM url_flights
                 WHERE leader_job = $1 AND $17 AND EXISTS (SELECT 1 FROM done)
                 RETURNING followers
             )
             SELECT EXISTS (SELECT 1 FROM done) AS done,
                    (SELECT followers FROM flight) AS followers",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .bind(result)
        .bind(entry.map(|e| e.url_key))
        .bind(entry.map(|e| e.model))
        .bind(entry.map(|e| e.sha256))
        .bind(entry.and_then(|e| e.analysis.image.as_ref()))
        .bind(entry.and_then(|e| e.analysis.objects.as_ref()))
        .bind(entry.and_then(|e| e.etag))
        .bind(entry.and_then(|e| e.last_modified))
        .bind(entry.is_some_and(|e| e.must_revalidate))
        .bind(entry.map(|e| e.fresh_for))
        .bind(content.map(|c| c.sha256))
        .bind(content.map(|c| c.model))
        .bind(content.and_then(|c| c.image))
        .bind(content.and_then(|c| c.objects))
        .bind(shared.is_some())
        .fetch_one(&mut *tx)
        .await?;
        if !row.try_get::<bool, _>("done")? {
            return Ok(None);
        }
        crate::artifacts::insert_artifacts(&mut tx, id, artifacts).await?;
        let followers: Option<i32> = row.try_get("followers")?;
        // The arm below that hands the flight over, whose new leader's message wakes the relay.
        let hands_over = end.is_some() && shared.is_none();
        let completed = match (end, shared, followers) {
            // Joins were counted on the flight's newest row, which the delete waited for: the
            // followers are committed and this statement's fresh snapshot sees them.
            (_, Some(analysis), Some(n)) if n > 0 => {
                complete_followers(&mut tx, id, analysis).await?
            }
            // A flight that ends with nothing to share passes to its oldest follower.
            (Some(_), None, _) => hand_over(&mut tx, id.as_uuid()).await.map(|_| 0)?,
            _ => 0,
        };
        tx.commit().await?;
        if hands_over {
            self.outbox_written();
        }
        Ok(Some(completed))
    }

    /// Ends run `attempt` as failed (as [`Store::fail`]) and fails its followers with the same
    /// error in the same transaction, remembering the URL's error for a while when `negative`
    /// is given. False when that run no longer owns the job.
    pub async fn fail_leading(
        &self,
        id: JobId,
        attempt: i32,
        error: &ErrorBody,
        negative: Option<&NegativeEntry<'_>>,
    ) -> Result<bool, StoreError> {
        let mut tx = self.pool.begin().await?;
        let done = sqlx::query(
            "UPDATE jobs SET status = 'failed', error_code = $3, error_message = $4,
                    finished_at = now(), lease_until = NULL, updated_at = now()
             WHERE id = $1 AND attempts = $2 AND status = 'running'",
        )
        .bind(id.as_uuid())
        .bind(attempt)
        .bind(error.code.as_str())
        .bind(&error.message)
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() != 1 {
            return Ok(false);
        }
        if let Some(negative) = negative {
            sqlx::query(
                "INSERT INTO url_cache (url_key, model, error_code, error_message, expires_at,
                                        bytes)
                 VALUES ($1, $2, $3, $4, now() + $5, octet_length($4))
                 ON CONFLICT (url_key, model) DO UPDATE SET
                     sha256 = NULL, image = NULL, objects = NULL, etag = NULL,
                     last_modified = NULL, must_revalidate = false,
                     error_code = EXCLUDED.error_code, error_message = EXCLUDED.error_message,
                     stored_at = now(), expires_at = EXCLUDED.expires_at, hit_at = now(),
                     bytes = EXCLUDED.bytes",
            )
            .bind(negative.url_key)
            .bind(negative.model)
            .bind(error.code.as_str())
            .bind(&error.message)
            .bind(negative.ttl)
            .execute(&mut *tx)
            .await?;
        }
        fail_followers(&mut tx, id, error).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Hands the flight led by `leader` (cancelled or purged) to its oldest follower, which
    /// gets a message and runs; without followers the flight ends.
    pub async fn hand_over_flight(&self, leader: JobId) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await?;
        hand_over(&mut tx, leader.as_uuid()).await?;
        tx.commit().await?;
        self.outbox_written();
        Ok(())
    }

    /// The reconciler's safety net: flights whose leader ended without ending them (a job
    /// failed as poison at its claim, or a cancellation between two statements) are handed
    /// over or failed, and followers of a flight that no longer exists are released as plain
    /// jobs with a message. How many jobs it moved.
    pub async fn sweep_flights(&self) -> Result<u64, StoreError> {
        let ended = sqlx::query(
            "SELECT f.leader_job, j.status, j.error_code, j.error_message
             FROM url_flights f JOIN jobs j ON j.id = f.leader_job
             WHERE j.status IN ('succeeded', 'failed', 'cancelled')
             LIMIT 100",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut moved = 0;
        for row in ended {
            let leader: Uuid = row.try_get("leader_job")?;
            let status: String = row.try_get("status")?;
            let mut tx = self.pool.begin().await?;
            // Another process's sweep may have taken it meanwhile.
            let locked = sqlx::query("SELECT 1 FROM url_flights WHERE leader_job = $1 FOR UPDATE")
                .bind(leader)
                .fetch_optional(&mut *tx)
                .await?;
            if locked.is_none() {
                continue;
            }
            if status == "failed" {
                let code: Option<String> = row.try_get("error_code")?;
                let error = ErrorBody::new(
                    code.as_deref().map_or(ErrorCode::Internal, parse_code),
                    row.try_get::<Option<String>, _>("error_message")?
                        .unwrap_or_default(),
                );
                moved += fail_followers(&mut tx, JobId::from_uuid(leader), &error).await?;
            } else {
                moved += hand_over(&mut tx, leader).await?;
            }
            tx.commit().await?;
        }
        let orphans = sqlx::query(
            "WITH orphan AS (
                 UPDATE jobs SET follows = NULL, published_at = now(), updated_at = now()
                 WHERE follows IS NOT NULL AND status = 'queued'
                   AND NOT EXISTS (SELECT 1 FROM url_flights f WHERE f.leader_job = jobs.follows)
                   AND created_at < now() - interval '30 seconds'
                 RETURNING id
             )
             INSERT INTO outbox (job_id) SELECT id FROM orphan",
        )
        .execute(&self.pool)
        .await?;
        let moved = moved + orphans.rows_affected();
        if moved > 0 {
            self.outbox_written();
        }
        Ok(moved)
    }

    /// Forgets every entry for `url_key` (under every model) and the content entries of the
    /// bytes it served; how many URL entries went.
    pub async fn purge_url(&self, url_key: &str) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM url_cache WHERE url_key = $1 RETURNING sha256")
            .bind(url_key)
            .fetch_all(&mut *tx)
            .await?;
        let digests: Vec<String> = gone
            .iter()
            .filter_map(|r| r.try_get::<Option<String>, _>("sha256").ok().flatten())
            .collect();
        sqlx::query("DELETE FROM content_cache WHERE sha256 = ANY($1)")
            .bind(&digests)
            .execute(&mut *tx)
            .await?;
        notify_purge(&mut tx, url_key).await?;
        tx.commit().await?;
        Ok(gone.len() as u64)
    }

    /// Empties the URL cache; how many entries went.
    pub async fn purge_url_cache(&self) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await?;
        let gone = sqlx::query("DELETE FROM url_cache")
            .execute(&mut *tx)
            .await?
            .rows_affected();
        notify_purge(&mut tx, ALL_URLS).await?;
        tx.commit().await?;
        Ok(gone)
    }

    /// Listens for purges of URL entries, so an API process can forget its copies of them
    /// (`crate::UrlPurges`). Holds one connection of the pool.
    pub async fn url_purges(&self) -> Result<UrlPurges, StoreError> {
        let mut listener = sqlx::postgres::PgListener::connect_with(&self.pool).await?;
        listener.listen(URL_PURGES).await?;
        Ok(UrlPurges(listener))
    }

    /// Drops entries expired longer than `max_stale`, then the least recently used ones past
    /// the row and byte bounds; how many went.
    pub async fn sweep_url_cache(&self, bounds: &UrlCacheBounds) -> Result<u64, StoreError> {
        let expired = sqlx::query("DELETE FROM url_cache WHERE expires_at < now() - $1")
            .bind(bounds.max_stale)
            .execute(&self.pool)
            .await?
            .rows_affected();
        let evicted = sqlx::query(
            "DELETE FROM url_cache WHERE (url_key, model) IN (
                 SELECT url_key, model FROM (
                     SELECT url_key, model,
                            row_number() OVER (ORDER BY hit_at DESC, url_key) AS n,
                            sum(bytes) OVER (ORDER BY hit_at DESC, url_key) AS total
                     FROM url_cache) ranked
                 WHERE n > $1 OR total > $2)",
        )
        .bind(bounds.max_entries)
        .bind(bounds.max_bytes)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(expired + evicted)
    }

    pub async fn url_cache_stats(&self) -> Result<UrlCacheStats, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) FILTER (WHERE error_code IS NULL) AS entries,
                    count(*) FILTER (WHERE error_code IS NOT NULL) AS negative,
                    count(*) FILTER (WHERE expires_at <= now()) AS stale,
                    COALESCE(sum(bytes), 0)::int8 AS bytes,
                    COALESCE(sum(hits), 0)::int8 AS hits,
                    (SELECT count(*) FROM url_flights) AS flights,
                    (SELECT count(*) FROM jobs WHERE follows IS NOT NULL
                                              AND status = 'queued') AS waiting
             FROM url_cache",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(UrlCacheStats {
            entries: row.try_get("entries")?,
            negative: row.try_get("negative")?,
            stale: row.try_get("stale")?,
            bytes: row.try_get("bytes")?,
            hits: row.try_get("hits")?,
            flights: row.try_get("flights")?,
            waiting: row.try_get("waiting")?,
        })
    }
}

/// The waiting followers of `leader`, locked, with what each asked for; the flight is ended
/// first, so no new follower can join it once this transaction commits.
async fn take_followers(
    tx: &mut sqlx::PgConnection,
    leader: Uuid,
) -> Result<Vec<(Uuid, TaskSet, MinScore, bool)>, StoreError> {
    let led = sqlx::query("DELETE FROM url_flights WHERE leader_job = $1")
        .bind(leader)
        .execute(&mut *tx)
        .await?;
    // Followers only ever join a flight (the sweep releases any left without one).
    if led.rows_affected() == 0 {
        return Ok(Vec::new());
    }
    waiting_followers(tx, leader).await
}

/// The queued followers of `leader`, whose flight this transaction has ended, locked, with
/// what each asked for.
async fn waiting_followers(
    tx: &mut sqlx::PgConnection,
    leader: Uuid,
) -> Result<Vec<(Uuid, TaskSet, MinScore, bool)>, StoreError> {
    let rows = sqlx::query(
        "SELECT j.id, j.tasks, j.min_score, COALESCE(a.redact_gps, true) AS redact_gps
         FROM jobs j LEFT JOIN accounts a ON a.id = j.account_id
         WHERE j.follows = $1 AND j.status = 'queued'
         ORDER BY j.id FOR UPDATE OF j",
    )
    .bind(leader)
    .fetch_all(&mut *tx)
    .await?;
    rows.iter()
        .map(|row| {
            let id: Uuid = row.try_get("id")?;
            let corrupt = |e: imgmeta_domain::ValidationError| StoreError::Corrupt {
                id,
                reason: e.message,
            };
            let tasks: Vec<String> = row.try_get("tasks")?;
            let min_score: f32 = row.try_get("min_score")?;
            Ok((
                id,
                TaskSet::parse(&tasks).map_err(corrupt)?,
                MinScore::parse(f64::from(min_score)).map_err(corrupt)?,
                row.try_get("redact_gps")?,
            ))
        })
        .collect()
}

/// Completes the waiting followers of `leader`, whose flight this transaction has already
/// ended, with their cuts of `analysis`; how many.
async fn complete_followers(
    tx: &mut sqlx::PgConnection,
    leader: JobId,
    analysis: &Analysis,
) -> Result<u64, StoreError> {
    let followers = waiting_followers(tx, leader.as_uuid()).await?;
    if followers.is_empty() {
        return Ok(0);
    }
    let info = CacheInfo::new("coalesced", Some("url"), 0.0);
    let (ids, results): (Vec<Uuid>, Vec<serde_json::Value>) = followers
        .iter()
        .map(|(id, tasks, min_score, redact_gps)| {
            let cut = Cut {
                tasks,
                min_score: *min_score,
                redact_gps: *redact_gps,
            };
            (*id, analysis.answer(cut, &info))
        })
        .unzip();
    Ok(sqlx::query(
        "UPDATE jobs SET status = 'succeeded', result = r.result, follows = NULL,
                started_at = COALESCE(started_at, now()), finished_at = now(), updated_at = now()
         FROM unnest($1::uuid[], $2::jsonb[]) AS r(id, result)
         WHERE jobs.id = r.id",
    )
    .bind(&ids)
    .bind(&results)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

async fn fail_followers(
    tx: &mut sqlx::PgConnection,
    leader: JobId,
    error: &ErrorBody,
) -> Result<u64, StoreError> {
    let followers = take_followers(tx, leader.as_uuid()).await?;
    if followers.is_empty() {
        return Ok(0);
    }
    let ids: Vec<Uuid> = followers.iter().map(|f| f.0).collect();
    Ok(sqlx::query(
        "UPDATE jobs SET status = 'failed', error_code = $2, error_message = $3, follows = NULL,
                finished_at = now(), updated_at = now()
         WHERE id = ANY($1)",
    )
    .bind(&ids)
    .bind(error.code.as_str())
    .bind(&error.message)
    .execute(&mut *tx)
    .await?
    .rows_affected())
}

/// Moves the flight of `leader` to its oldest waiting follower, which gets a message; the
/// others follow the new leader. Ends the flight when nobody waits. How many jobs moved.
async fn hand_over(tx: &mut sqlx::PgConnection, leader: Uuid) -> Result<u64, StoreError> {
    let next: Option<Uuid> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE follows = $1 AND status = 'queued'
         ORDER BY created_at, id LIMIT 1 FOR UPDATE",
    )
    .bind(leader)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(next) = next else {
        sqlx::query("DELETE FROM url_flights WHERE leader_job = $1")
            .bind(leader)
            .execute(&mut *tx)
            .await?;
        return Ok(0);
    };
    sqlx::query("UPDATE url_flights SET leader_job = $2, started_at = now() WHERE leader_job = $1")
        .bind(leader)
        .bind(next)
        .execute(&mut *tx)
        .await?;
    let moved = sqlx::query(
        "UPDATE jobs SET follows = CASE WHEN id = $2 THEN NULL ELSE $2 END,
                published_at = CASE WHEN id = $2 THEN now() ELSE published_at END,
                updated_at = now()
         WHERE follows = $1 AND status = 'queued'",
    )
    .bind(leader)
    .bind(next)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    sqlx::query("INSERT INTO outbox (job_id) VALUES ($1)")
        .bind(next)
        .execute(&mut *tx)
        .await?;
    Ok(moved)
}
