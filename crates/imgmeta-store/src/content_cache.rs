//! The content cache's table: analyses of image bytes by SHA-256 and model, shared by every
//! account, bounded by a row count with the least recently used entries evicted first.

use crate::{Store, StoreError};
use sqlx::Row;

/// One entry: the parts of an analysis it holds, and its age.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedContent {
    pub image: Option<serde_json::Value>,
    pub objects: Option<serde_json::Value>,
    pub age_s: f64,
}

/// An analysis for the content cache, written with the job that made it
/// ([`Store::complete_leading`]).
#[derive(Debug, Clone, Copy)]
pub struct NewContent<'a> {
    pub sha256: &'a str,
    pub model: &'a str,
    pub image: Option<&'a serde_json::Value>,
    pub objects: Option<&'a serde_json::Value>,
}

/// What `imgmeta cache stats` shows.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CacheStats {
    pub entries: i64,
    pub bytes: i64,
    pub hits: i64,
}

impl Store {
    /// The entry for `sha256` under `model`, counting the hit.
    pub async fn cached_content(
        &self,
        sha256: &str,
        model: &str,
    ) -> Result<Option<CachedContent>, StoreError> {
        let row = sqlx::query(
            "UPDATE content_cache SET hits = hits + 1, hit_at = now()
             WHERE sha256 = $1 AND model = $2
             RETURNING image, objects,
                       EXTRACT(EPOCH FROM now() - created_at)::float8 AS age_s",
        )
        .bind(sha256)
        .bind(model)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(CachedContent {
                image: row.try_get("image")?,
                objects: row.try_get("objects")?,
                age_s: row.try_get("age_s")?,
            })
        })
        .transpose()
    }

    /// Keeps an analysis: the parts given replace those held, the others stay (an entry made by
    /// a metadata-only job gains its objects later).
    pub async fn keep_content(
        &self,
        sha256: &str,
        model: &str,
        image: Option<&serde_json::Value>,
        objects: Option<&serde_json::Value>,
    ) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO content_cache (sha256, model, image, objects) VALUES ($1, $2, $3, $4)
             ON CONFLICT (sha256, model) DO UPDATE
             SET image = COALESCE(EXCLUDED.image, content_cache.image),
                 objects = COALESCE(EXCLUDED.objects, content_cache.objects),
                 created_at = now(), hit_at = now()",
        )
        .bind(sha256)
        .bind(model)
        .bind(image)
        .bind(objects)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Keeps the `max_entries` most recently used entries and removes the rest; how many went.
    pub async fn evict_content(&self, max_entries: i64) -> Result<u64, StoreError> {
        Ok(sqlx::query(
            "DELETE FROM content_cache WHERE (sha256, model) IN (
                 SELECT sha256, model FROM content_cache
                 ORDER BY hit_at DESC, sha256 OFFSET $1)",
        )
        .bind(max_entries)
        .execute(&self.pool)
        .await?
        .rows_affected())
    }

    /// Empties the cache; the number of entries removed.
    pub async fn purge_content_cache(&self) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM content_cache")
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    /// Forgets the analyses of one image's bytes, under every model; how many went.
    pub async fn purge_content(&self, sha256: &str) -> Result<u64, StoreError> {
        Ok(sqlx::query("DELETE FROM content_cache WHERE sha256 = $1")
            .bind(sha256)
            .execute(&self.pool)
            .await?
            .rows_affected())
    }

    pub async fn content_cache_stats(&self) -> Result<CacheStats, StoreError> {
        let row = sqlx::query(
            "SELECT count(*) AS entries,
                    COALESCE(sum(pg_column_size(image) + pg_column_size(objects)), 0)::int8 AS bytes,
                    COALESCE(sum(hits), 0)::int8 AS hits
             FROM content_cache",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(CacheStats {
            entries: row.try_get("entries")?,
            bytes: row.try_get("bytes")?,
            hits: row.try_get("hits")?,
        })
    }
}
