//! The content cache's seam and rules: an analysis of some bytes (their metadata, and their
//! objects down to a score floor) is kept under the bytes' SHA-256 and the detector's version,
//! and any later job whose image has the same bytes, whichever its URL, upload or account,
//! takes its answer from there without decoding or running the detector.
//!
//! The cache holds only what the bytes are, never who asked: GPS redaction and the job's
//! `min_score` are applied to each answer. One entry serves every `min_score` at or above the
//! floor, because class-wise greedy NMS followed by a score filter keeps exactly the boxes that
//! filtering first would (a box is only ever suppressed by a higher-scoring one), and the
//! `max_detections` cap keeps the highest scores either way.

use std::future::Future;
use std::pin::Pin;

pub use imgmeta_domain::analysis::{CacheInfo, OBJECTS_FLOOR};

/// What the cache holds for one image's bytes.
#[derive(Debug, Clone, Default)]
pub struct CachedAnalysis {
    /// `result.image`, unredacted.
    pub image: Option<serde_json::Value>,
    /// `result.objects` with every detection scoring at least [`OBJECTS_FLOOR`].
    pub objects: Option<serde_json::Value>,
    /// Seconds since the analysis was made.
    pub age_s: f64,
}

/// A boxed future, as the cache's implementations are async and live in other crates.
pub type CacheFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where analyses are kept (PostgreSQL, implemented by the worker's store). A failing cache is
/// a slower service, never a failed job: `get` answers `None` and `put` forgets.
pub trait ContentCache: Send + Sync + 'static {
    fn get<'a>(
        &'a self,
        sha256: &'a str,
        model: &'a str,
    ) -> CacheFuture<'a, Option<CachedAnalysis>>;
    fn put<'a>(
        &'a self,
        sha256: &'a str,
        model: &'a str,
        analysis: &'a CachedAnalysis,
    ) -> CacheFuture<'a, ()>;
}
