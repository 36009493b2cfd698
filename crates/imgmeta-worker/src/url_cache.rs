//! The worker's side of the URL cache: the conditional fetch of a leading run, what its end
//! keeps (the entry, with the origin's freshness, or the URL's error for a while), and the
//! upkeep every worker shares — announcing its model, ending flights nobody ends, sweeping
//! expired and surplus entries, refreshing the gauges.

use imgmeta_domain::{ErrorBody, ImageUrl, TaskSet};
use imgmeta_pipeline::{Kept, Lifetimes, StoredUrl, Validators};
use imgmeta_store::{FlightEnd, NegativeEntry, NewUrlEntry, Store, UrlCacheBounds, UrlEntry};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the upkeep runs.
const UPKEEP_EVERY: Duration = Duration::from_secs(30);

/// The URL cache's rules, from `IMGMETA_CACHE_*`.
#[derive(Debug, Clone, Copy)]
pub struct UrlCachePolicy {
    pub lifetimes: Lifetimes,
    pub negative_ttl: Duration,
    pub bounds: UrlCacheBounds,
}

/// One leading run's URL cache key and model.
pub(crate) struct Leading {
    pub key: String,
    pub model: String,
}

impl Leading {
    pub fn new(url: &ImageUrl, model: String) -> Self {
        Self {
            key: url.cache_key(),
            model,
        }
    }

    /// Whether the entry the claim read answers the job outright: fresh, positive and covering
    /// the job's tasks.
    pub fn answers(entry: &UrlEntry, tasks: &TaskSet) -> bool {
        entry.is_fresh() && entry.error.is_none() && entry.analysis.covers(tasks)
    }

    /// The entry's analysis with its validators (`None` for an entry without bytes: a
    /// negative one).
    pub fn stored(entry: UrlEntry) -> Option<StoredUrl> {
        Some(StoredUrl {
            analysis: entry.analysis,
            sha256: entry.sha256?,
            validators: Validators {
                etag: entry.etag,
                last_modified: entry.last_modified,
            },
            age_s: entry.age_s,
        })
    }

    /// The stored analysis to revalidate, from the entry the claim read (`None` when the
    /// entry has no validators: a plain fetch, and the content cache may still answer).
    pub fn revalidating(entry: UrlEntry) -> Option<StoredUrl> {
        Self::stored(entry).filter(|stored| !stored.validators.is_empty())
    }

    /// What a successful run keeps: the analysis its followers are cut from, and the entry
    /// unless the origin forbade storing it.
    pub fn end<'a>(&'a self, kept: &'a Kept, policy: &UrlCachePolicy) -> FlightEnd<'a> {
        let entry = kept.caching.as_ref().and_then(|caching| {
            let fresh_for = caching.freshness(&policy.lifetimes)?;
            Some(NewUrlEntry {
                url_key: &self.key,
                model: &self.model,
                sha256: &kept.sha256,
                analysis: &kept.analysis,
                etag: caching.validators.etag.as_deref(),
                last_modified: caching.validators.last_modified.as_deref(),
                must_revalidate: caching.no_cache,
                fresh_for,
            })
        });
        FlightEnd {
            analysis: Some(&kept.analysis),
            entry,
        }
    }

    /// The URL's error to remember, when it says something about the URL itself.
    pub fn negative(
        &self,
        error: &ErrorBody,
        policy: &UrlCachePolicy,
    ) -> Option<NegativeEntry<'_>> {
        (imgmeta_store::is_negative(error.code) && !policy.negative_ttl.is_zero()).then(|| {
            NegativeEntry {
                url_key: &self.key,
                model: &self.model,
                ttl: policy.negative_ttl,
            }
        })
    }
}

/// The upkeep loop, until shutdown.
pub(crate) async fn upkeep(
    store: Store,
    model: String,
    policy: UrlCachePolicy,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(UPKEEP_EVERY);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = store.announce_model(&model).await {
            tracing::warn!(kind = "error", error = %e, "cannot announce the model");
        }
        match store.sweep_flights().await {
            Ok(0) => {}
            Ok(moved) => tracing::info!(moved, "released jobs from flights whose leader ended"),
            Err(e) => tracing::warn!(kind = "error", error = %e, "cannot sweep flights"),
        }
        if let Err(e) = store.sweep_url_cache(&policy.bounds).await {
            tracing::warn!(kind = "error", error = %e, "cannot sweep the URL cache");
        }
        match store.url_cache_stats().await {
            Ok(stats) => {
                metrics::gauge!(imgmeta_telemetry::CACHE_ENTRIES, "kind" => "positive")
                    .set(stats.entries as f64);
                metrics::gauge!(imgmeta_telemetry::CACHE_ENTRIES, "kind" => "negative")
                    .set(stats.negative as f64);
                metrics::gauge!(imgmeta_telemetry::CACHE_BYTES).set(stats.bytes as f64);
                metrics::gauge!(imgmeta_telemetry::CACHE_WAITERS).set(stats.waiting as f64);
            }
            Err(e) => tracing::warn!(kind = "error", error = %e, "cannot read URL cache stats"),
        }
    }
}
