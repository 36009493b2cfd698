//! Batches: many jobs accepted in one upload. A batch's id, its status, the client's id for
//! each item, and how one line of an upload becomes an item (or the reason it cannot).

use crate::{ErrorCode, ImageUrl, MinScore, Task, TaskSet, ValidationError};
use serde::{Deserialize, Serialize};

/// Most items a JSON batch (`{"items": [...]}`) may hold.
pub const MAX_JSON_ITEMS: usize = 10_000;
/// Most lines an NDJSON batch may hold.
pub const MAX_NDJSON_LINES: usize = 1_000_000;
/// Most bytes one line of an NDJSON batch may hold.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Most characters of an item's `external_id`.
pub const MAX_EXTERNAL_ID_CHARS: usize = 256;

/// A batch's identifier: a UUIDv7, so ids sort by creation time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(transparent)]
pub struct BatchId(uuid::Uuid);

impl BatchId {
    pub fn new() -> Self {
        Self(uuid::Uuid::now_v7())
    }

    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        uuid::Uuid::try_parse(raw)
            .map(Self)
            .map_err(|_| ValidationError::new(ErrorCode::InvalidBatchId, "batch id must be a UUID"))
    }

    pub fn from_uuid(id: uuid::Uuid) -> Self {
        Self(id)
    }

    pub fn as_uuid(&self) -> uuid::Uuid {
        self.0
    }
}

impl Default for BatchId {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Display for BatchId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Where a batch stands: `running` until every item has ended, then `completed`; `cancelled`
/// once its owner cancelled it (items already running still finish).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchStatus {
    Running,
    Completed,
    Cancelled,
}

impl BatchStatus {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "running" => Some(Self::Running),
            "completed" => Some(Self::Completed),
            "cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Cancelled => "cancelled",
        }
    }
}

/// The batch's own options, which each item may override.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchDefaults {
    pub tasks: TaskSet,
    pub min_score: MinScore,
}

impl Default for BatchDefaults {
    fn default() -> Self {
        Self {
            tasks: TaskSet::all(),
            min_score: MinScore::DEFAULT,
        }
    }
}

/// One valid item: what its job will analyse, and the client's id for it.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchItem {
    pub url: ImageUrl,
    pub tasks: TaskSet,
    pub min_score: MinScore,
    pub external_id: Option<String>,
}

/// One item as a client writes it: a JSON batch's element or an NDJSON batch's line. Absent
/// options are the batch's; unknown fields are refused.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = BatchItemRequest)]
pub struct RawItem {
    /// The image's absolute http(s) URL.
    #[schema(value_type = String)]
    url: Option<String>,
    #[schema(value_type = Option<Vec<Task>>)]
    tasks: Option<Vec<String>>,
    /// 0 to 1.
    min_score: Option<f64>,
    /// The client's own id for the item, echoed in its result line.
    #[schema(value_type = Option<String>)]
    external_id: Option<serde_json::Value>,
}

/// A line (or a JSON batch's element) that did not become an item: its error, and the
/// client's id for it when that much could be read.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejected {
    pub error: ValidationError,
    pub external_id: Option<String>,
}

impl BatchItem {
    /// Reads one item: `{"url", "tasks"?, "min_score"?, "external_id"?}`, missing options taken
    /// from `defaults`.
    pub fn from_json(raw: &[u8], defaults: &BatchDefaults) -> Result<Self, Rejected> {
        let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| Rejected {
            error: ValidationError::new(ErrorCode::InvalidJson, format!("not JSON: {e}")),
            external_id: None,
        })?;
        Self::from_value(value, defaults)
    }

    /// As [`BatchItem::from_json`], from an already parsed value.
    pub fn from_value(
        value: serde_json::Value,
        defaults: &BatchDefaults,
    ) -> Result<Self, Rejected> {
        // The external id is read first, so a rejected line still carries it.
        let external_id = value
            .get("external_id")
            .and_then(serde_json::Value::as_str)
            .filter(|id| external_id_ok(id))
            .map(str::to_owned);
        let reject = |error: ValidationError| Rejected {
            error,
            external_id: external_id.clone(),
        };
        if !value.is_object() {
            return Err(reject(ValidationError::new(
                ErrorCode::InvalidItem,
                "an item must be a JSON object with a \"url\"",
            )));
        }
        let raw: RawItem = serde_json::from_value(value.clone()).map_err(|e| {
            reject(ValidationError::new(
                ErrorCode::InvalidItem,
                format!("{e}; an item has url, tasks, min_score and external_id"),
            ))
        })?;
        let id = match raw.external_id {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(id)) if external_id_ok(&id) => Some(id),
            Some(_) => {
                return Err(reject(ValidationError::new(
                    ErrorCode::InvalidExternalId,
                    format!(
                        "external_id must be a string of 1 to {MAX_EXTERNAL_ID_CHARS} characters without control characters"
                    ),
                )));
            }
        };
        let url = raw.url.ok_or_else(|| {
            reject(ValidationError::new(
                ErrorCode::InvalidUrl,
                "url is required",
            ))
        })?;
        let url = ImageUrl::parse(&url).map_err(reject)?;
        let tasks = match raw.tasks {
            Some(tasks) => TaskSet::parse(&tasks).map_err(reject)?,
            None => defaults.tasks.clone(),
        };
        let min_score = match raw.min_score {
            Some(score) => MinScore::parse(score).map_err(reject)?,
            None => defaults.min_score,
        };
        Ok(Self {
            url,
            tasks,
            min_score,
            external_id: id,
        })
    }
}

fn external_id_ok(id: &str) -> bool {
    !id.is_empty()
        && id.chars().count() <= MAX_EXTERNAL_ID_CHARS
        && !id.chars().any(char::is_control)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Task;

    fn defaults() -> BatchDefaults {
        BatchDefaults {
            tasks: TaskSet::parse(&["metadata"]).unwrap(),
            min_score: MinScore::parse(0.5).unwrap(),
        }
    }

    fn code(raw: &str) -> ErrorCode {
        BatchItem::from_json(raw.as_bytes(), &defaults())
            .unwrap_err()
            .error
            .code
    }

    #[test]
    fn an_item_takes_the_batch_options_it_does_not_give() {
        let item = BatchItem::from_json(
            br#"{"url": "http://a.example/x.jpg", "external_id": "x-1"}"#,
            &defaults(),
        )
        .unwrap();
        assert_eq!(item.url.as_str(), "http://a.example/x.jpg");
        assert_eq!(item.tasks, defaults().tasks);
        assert_eq!(item.min_score, defaults().min_score);
        assert_eq!(item.external_id.as_deref(), Some("x-1"));
        let own = BatchItem::from_json(
            br#"{"url": "http://a.example/x.jpg", "tasks": ["objects"], "min_score": 0.1}"#,
            &defaults(),
        )
        .unwrap();
        assert!(own.tasks.contains(Task::Objects) && !own.tasks.contains(Task::Metadata));
        assert_eq!(own.min_score, MinScore::parse(0.1).unwrap());
    }

    #[test]
    fn bad_lines_are_rejected_with_stable_codes_and_keep_their_external_id() {
        assert_eq!(code("{"), ErrorCode::InvalidJson);
        assert_eq!(code("[1]"), ErrorCode::InvalidItem);
        assert_eq!(
            code(r#"{"url": "http://a.example/", "colour": 1}"#),
            ErrorCode::InvalidItem
        );
        assert_eq!(code(r#"{"tasks": ["objects"]}"#), ErrorCode::InvalidUrl);
        assert_eq!(
            code(r#"{"url": "ftp://a.example/x"}"#),
            ErrorCode::InvalidUrl
        );
        assert_eq!(
            code(r#"{"url": "http://a.example/", "tasks": ["x"]}"#),
            ErrorCode::InvalidTask
        );
        assert_eq!(
            code(r#"{"url": "http://a.example/", "min_score": 2}"#),
            ErrorCode::InvalidMinScore
        );
        assert_eq!(
            code(r#"{"url": "http://a.example/", "external_id": 7}"#),
            ErrorCode::InvalidExternalId
        );
        let long = "x".repeat(MAX_EXTERNAL_ID_CHARS + 1);
        assert_eq!(
            code(&format!(
                r#"{{"url": "http://a.example/", "external_id": "{long}"}}"#
            )),
            ErrorCode::InvalidExternalId
        );
        let rejected =
            BatchItem::from_json(br#"{"url": "nope", "external_id": "row-9"}"#, &defaults())
                .unwrap_err();
        assert_eq!(rejected.external_id.as_deref(), Some("row-9"));
    }

    #[test]
    fn batch_ids_and_statuses_round_trip() {
        let id = BatchId::new();
        assert_eq!(BatchId::parse(&id.to_string()).unwrap(), id);
        assert_eq!(
            BatchId::parse("x").unwrap_err().code,
            ErrorCode::InvalidBatchId
        );
        for s in ["running", "completed", "cancelled"] {
            assert_eq!(BatchStatus::parse(s).unwrap().as_str(), s);
        }
        assert!(BatchStatus::parse("done").is_none());
    }
}
