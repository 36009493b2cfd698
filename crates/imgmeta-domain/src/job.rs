//! Job identity, the analysis tasks a job asks for, its score threshold and its lifecycle status.

use crate::{DreamOptions, ErrorCode, Source, ValidationError};
use serde::{Deserialize, Serialize};

/// A job's identifier: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct JobId(uuid::Uuid);

impl JobId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| ValidationError::new(ErrorCode::InvalidJobId, "job id must be a UUID"))
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for JobId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for JobId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// One kind of analysis a job may ask for.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    Metadata,
    Objects,
    /// The image with its detections drawn, as the artifact `annotated.jpg` (or `.png`); it
    /// reports `result.objects` too.
    Annotate,
    /// DeepDream with the detector's network, as the artifact `dream.jpg` and
    /// `result.dream`; its parameters are the job's `"dream"` options.
    Dream,
    /// The upright image, its longest side at most [`PREVIEW_MAX_SIDE`] pixels, as the
    /// artifact `preview.jpg` (or `.png`): for viewers that draw the boxes themselves (the
    /// console), since `result.objects` boxes are in the upright image's pixels.
    Preview,
}

/// The longest side of a `preview` artifact, in pixels.
pub const PREVIEW_MAX_SIDE: u32 = 1280;

impl Task {
    /// What a job runs when it names no tasks.
    pub const DEFAULT: [Task; 2] = [Task::Metadata, Task::Objects];

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        match raw {
            "metadata" => Ok(Self::Metadata),
            "objects" => Ok(Self::Objects),
            "annotate" => Ok(Self::Annotate),
            "dream" => Ok(Self::Dream),
            "preview" => Ok(Self::Preview),
            other => Err(ValidationError::new(
                ErrorCode::InvalidTask,
                format!(
                    "unknown task {other:?}; known tasks are \"metadata\", \"objects\", \"annotate\", \"dream\" and \"preview\""
                ),
            )),
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Metadata => "metadata",
            Self::Objects => "objects",
            Self::Annotate => "annotate",
            Self::Dream => "dream",
            Self::Preview => "preview",
        }
    }

    /// Whether the task needs the detector's network loaded.
    pub fn needs_detector(self) -> bool {
        matches!(self, Self::Objects | Self::Annotate | Self::Dream)
    }

    /// Whether the task runs detection and reports `result.objects`.
    pub fn reports_objects(self) -> bool {
        matches!(self, Self::Objects | Self::Annotate)
    }
}

/// A non-empty, duplicate-free, ordered set of tasks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct TaskSet(Vec<Task>);

impl TaskSet {
    pub fn all() -> Self {
        Self(Task::DEFAULT.to_vec())
    }

    pub fn parse<S: AsRef<str>>(raw: &[S]) -> Result<Self, ValidationError> {
        let mut tasks = raw
            .iter()
            .map(|s| Task::parse(s.as_ref()))
            .collect::<Result<Vec<_>, _>>()?;
        if tasks.is_empty() {
            return Err(ValidationError::new(
                ErrorCode::InvalidTask,
                "tasks must name at least one task",
            ));
        }
        tasks.sort();
        tasks.dedup();
        Ok(Self(tasks))
    }

    pub fn contains(&self, task: Task) -> bool {
        self.0.contains(&task)
    }

    pub fn iter(&self) -> impl Iterator<Item = Task> + '_ {
        self.0.iter().copied()
    }

    pub fn as_strs(&self) -> Vec<&'static str> {
        self.0.iter().map(|t| t.as_str()).collect()
    }
}

impl<'de> Deserialize<'de> for TaskSet {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Vec::<String>::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

/// The minimum detection confidence a job reports, in 0..=1.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Serialize)]
#[serde(transparent)]
pub struct MinScore(f32);

impl MinScore {
    pub const DEFAULT: MinScore = MinScore(0.25);

    pub fn parse(value: f64) -> Result<Self, ValidationError> {
        if value.is_finite() && (0.0..=1.0).contains(&value) {
            Ok(Self(value as f32))
        } else {
            Err(ValidationError::new(
                ErrorCode::InvalidMinScore,
                format!("min_score must be a number between 0 and 1, got {value}"),
            ))
        }
    }

    pub fn value(self) -> f32 {
        self.0
    }
}

impl Default for MinScore {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl<'de> Deserialize<'de> for MinScore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = f64::deserialize(d)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

/// Where a job is in its life. `queued` and `running` are live; the rest are terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(raw: &str) -> Option<Self> {
        Some(match raw {
            "queued" => Self::Queued,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            _ => return None,
        })
    }

    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// What a job asks for: everything a worker needs to run it, and nothing else (an upload's
/// bytes are stored beside it, as the job's input).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// Flattened: a URL job's spec serialises as `{"url", "tasks", "min_score"}`, as before
    /// uploads existed, so idempotency digests stored then still match.
    #[serde(flatten)]
    pub source: Source,
    pub tasks: TaskSet,
    pub min_score: MinScore,
    /// The `dream` task's options as the client gave them (absent: the defaults). Left out of
    /// the serialised spec when absent, so specs and idempotency digests of jobs that do not
    /// dream read as they did before dreams existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dream: Option<DreamOptions>,
    /// The client asked for a fresh analysis (`"cache": "bypass"` or `Cache-Control:
    /// no-cache`): the content cache is neither read nor written for this job. Left out of the
    /// serialised spec when false, as `dream` is.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bypass_cache: bool,
    /// Where the job's end (`job.succeeded`, `job.failed`) is reported, signed; left out of
    /// the serialised spec when absent, as `dream` is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook_url: Option<crate::WebhookUrl>,
}

/// A submission's `"cache"` field: `"use"` (the default) or `"bypass"`.
pub fn parse_cache_mode(raw: Option<&str>) -> Result<bool, ValidationError> {
    match raw {
        None | Some("use") => Ok(false),
        Some("bypass") => Ok(true),
        Some(other) => Err(ValidationError::new(
            ErrorCode::InvalidCacheMode,
            format!(
                "\"cache\" is \"use\" or \"bypass\", got {:?}",
                other.chars().take(40).collect::<String>()
            ),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_tasks_are_rejected_with_invalid_task() {
        assert_eq!(
            TaskSet::parse(&["metadata", "faces"]).unwrap_err().code,
            ErrorCode::InvalidTask
        );
        assert_eq!(
            TaskSet::parse::<&str>(&[]).unwrap_err().code,
            ErrorCode::InvalidTask
        );
    }

    #[test]
    fn task_sets_are_sorted_and_deduplicated() {
        let set = TaskSet::parse(&["objects", "metadata", "objects"]).unwrap();
        assert_eq!(set.as_strs(), vec!["metadata", "objects"]);
    }

    #[test]
    fn min_score_outside_unit_interval_is_rejected() {
        for bad in [-0.01, 1.01, f64::NAN, f64::INFINITY] {
            assert_eq!(
                MinScore::parse(bad).unwrap_err().code,
                ErrorCode::InvalidMinScore
            );
        }
        assert_eq!(MinScore::parse(0.0).unwrap().value(), 0.0);
        assert_eq!(MinScore::parse(1.0).unwrap().value(), 1.0);
    }

    #[test]
    fn malformed_job_ids_are_rejected() {
        assert_eq!(
            JobId::parse("nope").unwrap_err().code,
            ErrorCode::InvalidJobId
        );
        let id = JobId::new();
        assert_eq!(JobId::parse(&id.to_string()).unwrap(), id);
    }
}
