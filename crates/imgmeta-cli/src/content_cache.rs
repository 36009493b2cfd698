//! The pipeline's content cache, kept in PostgreSQL so every worker of the deployment shares
//! it. A database error makes a lookup a miss and a write a no-op (logged): the job is
//! analysed as if there were no cache.

use imgmeta_pipeline::{CacheFuture, CachedAnalysis, ContentCache};
use imgmeta_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Evicts the least recently used entries once every this many writes.
const EVICT_EVERY: u64 = 64;

struct StoredCache {
    store: Store,
    max_entries: i64,
    writes: AtomicU64,
}

impl ContentCache for StoredCache {
    fn get<'a>(
        &'a self,
        sha256: &'a str,
        model: &'a str,
    ) -> CacheFuture<'a, Option<CachedAnalysis>> {
        Box::pin(async move {
            match self.store.cached_content(sha256, model).await {
                Ok(found) => found.map(|c| CachedAnalysis {
                    image: c.image,
                    objects: c.objects,
                    age_s: c.age_s,
                }),
                Err(e) => {
                    tracing::warn!(kind = "error", error = %e, "content cache lookup failed; analysing");
                    None
                }
            }
        })
    }

    fn put<'a>(
        &'a self,
        sha256: &'a str,
        model: &'a str,
        analysis: &'a CachedAnalysis,
    ) -> CacheFuture<'a, ()> {
        Box::pin(async move {
            let kept = self
                .store
                .keep_content(
                    sha256,
                    model,
                    analysis.image.as_ref(),
                    analysis.objects.as_ref(),
                )
                .await;
            if let Err(e) = kept {
                tracing::warn!(kind = "error", error = %e, "content cache write failed");
                return;
            }
            if self
                .writes
                .fetch_add(1, Ordering::Relaxed)
                .is_multiple_of(EVICT_EVERY)
                && let Err(e) = self.store.evict_content(self.max_entries).await
            {
                tracing::warn!(kind = "error", error = %e, "content cache eviction failed");
            }
        })
    }
}

/// `imgmeta cache stats`: both caches' entries, JSON bytes and hits, the flights under way
/// and the jobs waiting on them, as one JSON line.
pub async fn stats(settings: &imgmeta_config::Settings) -> anyhow::Result<()> {
    let store = crate::serve::migrate(settings).await?;
    let content = store.content_cache_stats().await?;
    let url = store.url_cache_stats().await?;
    println!(
        "{}",
        serde_json::json!({
            "url": url,
            "content": content,
        })
    );
    Ok(())
}

/// What `imgmeta cache purge` forgets.
pub enum Purge {
    All,
    /// One URL's entries (under every model) and the analyses of the bytes it served.
    Url(String),
    /// The analyses of one image's bytes, under every model.
    Sha256(String),
}

/// `imgmeta cache purge`: prints how many entries went from each cache.
pub async fn purge(settings: &imgmeta_config::Settings, target: Purge) -> anyhow::Result<()> {
    let store = crate::serve::migrate(settings).await?;
    let (url, content) = match target {
        Purge::All => (
            store.purge_url_cache().await?,
            store.purge_content_cache().await?,
        ),
        Purge::Url(raw) => {
            let url = imgmeta_domain::ImageUrl::parse(&raw)
                .map_err(|e| anyhow::anyhow!("--url: {}", e.message))?;
            (store.purge_url(&url.cache_key()).await?, 0)
        }
        Purge::Sha256(sha) => {
            let sha = sha.trim().to_ascii_lowercase();
            anyhow::ensure!(
                sha.len() == 64 && sha.bytes().all(|b| b.is_ascii_hexdigit()),
                "--sha256 takes the 64 hex digits of an image's SHA-256 (result.image.hashes.sha256)"
            );
            (0, store.purge_content(&sha).await?)
        }
    };
    println!(
        "{}",
        serde_json::json!({ "removed": url + content, "url_entries": url, "content_entries": content })
    );
    Ok(())
}

/// The shared cache, or none when `max_entries` is 0.
pub fn shared(store: Store, max_entries: i64) -> Option<Arc<dyn ContentCache>> {
    (max_entries > 0).then(|| {
        Arc::new(StoredCache {
            store,
            max_entries,
            writes: AtomicU64::new(0),
        }) as Arc<dyn ContentCache>
    })
}
