//! Validated domain types (job ids, image URLs and uploads, tasks, scores, webhooks) and the
//! stable error codes.
//!
//! Every other crate speaks in these types, so an invalid value is rejected once, at the edge,
//! and never travels further.

mod account;
pub mod analysis;
mod batch;
mod decimal;
mod dream;
mod error_code;
mod job;
mod source;
mod url;
mod user;
mod webhook;

pub use account::{AccountId, MAX_NAME_CHARS, Name, Scope, ScopeSet};
pub use batch::{
    BatchDefaults, BatchId, BatchItem, BatchStatus, MAX_EXTERNAL_ID_CHARS, MAX_JSON_ITEMS,
    MAX_LINE_BYTES, MAX_NDJSON_LINES, RawItem, Rejected,
};
pub use decimal::decimal;
pub use dream::{
    COCO_CLASSES, DREAM_LAYERS, DreamOptions, MAX_DREAM_SIDE, MAX_DREAM_STEPS, RawDream,
};
pub use error_code::{ErrorBody, ErrorCode};
pub use job::{
    JobId, JobSpec, JobStatus, MinScore, PREVIEW_MAX_SIDE, Task, TaskSet, parse_cache_mode,
};
pub use source::{Source, Upload, UploadDigest};
pub use url::{ImageUrl, MAX_URL_LEN};
pub use user::{Email, MAX_EMAIL_CHARS, MAX_PASSWORD_CHARS, MIN_PASSWORD_CHARS, Password, UserId};
pub use webhook::{DeliveryStatus, WebhookEvent, WebhookUrl};

/// A value that failed validation: the stable code and a human explanation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ValidationError {
    pub code: ErrorCode,
    pub message: String,
}

impl ValidationError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}
