//! The job resource as clients see it.

use chrono::{DateTime, Utc};
use imgmeta_domain::{ErrorBody, JobId, JobStatus};
use imgmeta_store::JobRecord;
use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct JobResource {
    pub id: JobId,
    pub url: String,
    pub tasks: Vec<&'static str>,
    pub min_score: f32,
    pub status: JobStatus,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<ErrorBody>,
    pub result: Option<serde_json::Value>,
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
            url: job.spec.url.to_string(),
            tasks: job.spec.tasks.as_strs(),
            min_score: job.spec.min_score.value(),
            status: job.status,
            attempts: job.attempts,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
            error: job.error,
            result: with_artifact_urls(job.id, job.result),
            purged_at: job.purged_at,
            last_error: job.last_error,
        }
    }
}

/// A job in a list: everything but the result, which `GET /v1/jobs/{id}` serves.
#[derive(Debug, Clone, Serialize)]
pub struct JobSummary {
    pub id: JobId,
    pub url: String,
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
            url: job.spec.url.to_string(),
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
