//! The message body: which job to look at. Everything else about the job lives in PostgreSQL.

use imgmeta_domain::JobId;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct JobMessage {
    pub job_id: JobId,
}
