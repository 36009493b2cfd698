//! The job resource as clients see it.

use chrono::{DateTime, Utc};
use imgmeta_domain::{ErrorBody, JobId, JobStatus, Source};
use imgmeta_store::JobRecord;
use serde::Serialize;

/// Where the job's image comes from: `{"kind": "url", "url"}` or
/// `{"kind": "upload", "bytes", "sha256"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceView {
    Url {
        url: String,
    },
    /// An uploaded image: its size and digest (the bytes themselves are never served back).
    Upload {
        bytes: u64,
        sha256: String,
    },
}

impl From<&Source> for SourceView {
    fn from(source: &Source) -> Self {
        match source {
            Source::Url(url) => Self::Url {
                url: url.to_string(),
            },
            Source::Upload(digest) => Self::Upload {
                bytes: digest.bytes(),
                sha256: digest.sha256().to_owned(),
            },
        }
    }
}

/// A job: what it asked for, where it stands, and its result once it succeeded.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobResource {
    pub id: JobId,
    /// The image's URL; `null` for an uploaded image (kept beside `source` for older clients).
    pub url: Option<String>,
    pub source: SourceView,
    #[schema(value_type = Vec<imgmeta_domain::Task>)]
    pub tasks: Vec<&'static str>,
    pub min_score: f32,
    /// The dream options the job gave, only for jobs that gave some.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub dream: Option<imgmeta_domain::DreamOptions>,
    /// Where the job's end is reported, only for jobs that gave one.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub webhook_url: Option<String>,
    pub status: JobStatus,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    /// Why the job failed (or was cancelled); `null` otherwise.
    pub error: Option<ErrorBody>,
    /// The analysis, once the job succeeded: `image` (dimensions, format, EXIF, GPS, ICC,
    /// hashes, dominant colours), `objects` (detections: `label`, `score`, `box` in the upright
    /// image's pixels), `artifacts` (`name`, `url`, ...) as the tasks asked; `null` until then,
    /// after a purge, and for a key without `jobs:read`.
    #[schema(value_type = Option<Object>)]
    pub result: Option<serde_json::Value>,
    /// How the caches answered a finished job: `{status: "hit" | "miss" | "coalesced" |
    /// "revalidated" | "stale" | "bypass", key: "url" | "content" | null, age_s}`; `null`
    /// until then.
    #[schema(value_type = Option<Object>)]
    pub cache: Option<serde_json::Value>,
    /// When the result was erased (`DELETE ?purge=true` or the account's retention period);
    /// the job stays as a tombstone with `result: null`.
    pub purged_at: Option<DateTime<Utc>>,
    /// The error of the latest run that failed but may be retried: while the job is queued
    /// for its next run this says why (`error` stays `null` until the job finally fails).
    pub last_error: Option<ErrorBody>,
}

/// `result.artifacts[].url`: where each artifact the job made is served.
fn with_artifact_urls(
    id: JobId,
    mut result: Option<serde_json::Value>,
) -> Option<serde_json::Value> {
    let artifacts = result
        .as_mut()
        .and_then(|r| r.get_mut("artifacts"))
        .and_then(|a| a.as_array_mut());
    for artifact in artifacts.into_iter().flatten() {
        if let Some(name) = artifact["name"].as_str().map(str::to_owned) {
            artifact["url"] = format!("/v1/jobs/{id}/artifacts/{name}").into();
        }
    }
    result
}

impl From<JobRecord> for JobResource {
    fn from(job: JobRecord) -> Self {
        Self {
            id: job.id,
            url: job.spec.source.url().map(ToString::to_string),
            source: SourceView::from(&job.spec.source),
            tasks: job.spec.tasks.as_strs(),
            min_score: job.spec.min_score.value(),
            dream: job.spec.dream,
            webhook_url: job.spec.webhook_url.map(|w| w.to_string()),
            status: job.status,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            error: job.error,
            cache: job.result.as_ref().and_then(|r| r.get("cache")).cloned(),
            // A failed job answered from a remembered error holds only its `cache`.
            result: with_artifact_urls(job.id, job.result)
                .map(|mut r| {
                    if let Some(r) = r.as_object_mut() {
                        r.remove("cache");
                    }
                    r
                })
                .filter(|r| r.as_object().is_none_or(|o| !o.is_empty())),
            purged_at: job.purged_at,
            last_error: job.last_error,
        }
    }
}

/// A job in a list: everything but the result, which `GET /v1/jobs/{id}` serves.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct JobSummary {
    pub id: JobId,
    pub url: Option<String>,
    pub source: SourceView,
    #[schema(value_type = Vec<imgmeta_domain::Task>)]
    pub tasks: Vec<&'static str>,
    pub min_score: f32,
    pub status: JobStatus,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<ErrorBody>,
    pub purged_at: Option<DateTime<Utc>>,
    pub last_error: Option<ErrorBody>,
    pub location: String,
}

impl From<JobRecord> for JobSummary {
    fn from(job: JobRecord) -> Self {
        Self {
            location: format!("/v1/jobs/{}", job.id),
            id: job.id,
            url: job.spec.source.url().map(ToString::to_string),
            source: SourceView::from(&job.spec.source),
            tasks: job.spec.tasks.as_strs(),
            min_score: job.spec.min_score.value(),
            status: job.status,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            error: job.error,
            purged_at: job.purged_at,
            last_error: job.last_error,
        }
    }
}

impl JobResource {
    pub fn location(&self) -> String {
        format!("/v1/jobs/{}", self.id)
    }
}
