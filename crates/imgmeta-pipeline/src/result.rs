//! The job result document: `result.image`, `result.objects`, `result.dream`,
//! `result.artifacts` and `result.timings_ms`; the artifacts' bytes travel beside it, never inside the JSON.

use crate::artifacts::{Artifact, ArtifactInfo};
use crate::cache::CacheInfo;
use serde::Serialize;

/// One image's analysis. A part is `null` when its task was not asked for.
#[derive(Debug, Clone, Serialize)]
pub struct JobResult {
    /// The metadata crate's `ImageMetadata` document.
    pub image: Option<serde_json::Value>,
    /// The detector's `result.objects` document.
    pub objects: Option<serde_json::Value>,
    /// What the `dream` task did (its parameters, sizes and objective per octave), present
    /// only for dream jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dream: Option<serde_json::Value>,
    /// The images the job made (`annotate`, `dream`), present only when it made some.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactInfo>,
    /// How the content cache answered, for processes that have one (the API shows it as the
    /// job's `cache`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<CacheInfo>,
    pub timings_ms: Timings,
    /// The artifacts' bytes, in the order of `artifacts`.
    #[serde(skip)]
    pub files: Vec<Artifact>,
    /// What the caches keep of this analysis (the widest one, unredacted), for a job that
    /// could use them; never part of the document.
    #[serde(skip)]
    pub kept: Option<Kept>,
}

/// The analysis a job made or found, as the URL cache keeps it.
#[derive(Debug, Clone)]
pub struct Kept {
    /// The SHA-256 of the image's bytes.
    pub sha256: String,
    pub analysis: imgmeta_domain::analysis::Analysis,
    /// The origin's caching headers when the image came from a URL.
    pub caching: Option<imgmeta_fetch::OriginCaching>,
    /// Made by this run (not found in a cache): with [`crate::Analyzer::caller_keeps_analyses`]
    /// the caller writes it to the content cache, in its own commit of the job.
    pub fresh: bool,
}

/// Milliseconds spent in each stage; `null` for stages that did not run.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Timings {
    pub fetch: f64,
    pub decode: f64,
    pub metadata: Option<f64>,
    pub objects: Option<f64>,
    /// Present only for jobs that drew an annotated image.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotate: Option<f64>,
    /// Present only for dream jobs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dream: Option<f64>,
    /// Present only for jobs that made a preview.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub preview: Option<f64>,
}
