//! The job result document: `result.image`, `result.objects` and `result.timings_ms`.

use imgmeta_metadata::ImageMetadata;
use serde::Serialize;

/// One image's analysis. A part is `null` when its task was not asked for.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    pub image: Option<ImageMetadata>,
    /// The detector's `result.objects` document.
    pub objects: Option<serde_json::Value>,
    pub timings_ms: Timings,
}

/// Milliseconds spent in each stage; `null` for stages that did not run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub fetch: f64,
    pub decode: f64,
    pub metadata: Option<f64>,
    pub objects: Option<f64>,
}
