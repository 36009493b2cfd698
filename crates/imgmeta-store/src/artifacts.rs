//! Artifacts: the images a job makes, stored with it in PostgreSQL (at most 16 MiB each),
//! written in the transaction that completes the run and erased with its result.
//!
//! [`ArtifactStore`] is the seam for reading them, so that an S3-compatible store can take
//! over the bytes later without the API changing.

use crate::{Store, StoreError};
use imgmeta_domain::{AccountId, JobId};
use sqlx::Row;
use std::future::Future;
use std::pin::Pin;

/// An artifact to store with a completing run.
#[derive(Debug, Clone, Copy)]
pub struct NewArtifact<'a> {
    pub name: &'a str,
    pub mime: &'a str,
    pub width: u32,
    pub height: u32,
    pub sha256: &'a str,
    pub bytes: &'a [u8],
}

/// A stored artifact.
#[derive(Clone)]
pub struct StoredArtifact {
    pub name: String,
    pub mime: String,
    pub sha256: String,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for StoredArtifact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredArtifact")
            .field("name", &self.name)
            .field("mime", &self.mime)
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

/// What looking an artifact up found.
#[derive(Debug)]
pub enum ArtifactLookup {
    Found(StoredArtifact),
    /// The job is the caller's but has no artifact of that name (or it was purged).
    NoSuchArtifact,
    /// No such job in the caller's account; `foreign` when it exists in another one.
    NoSuchJob {
        foreign: bool,
    },
}

type Lookup<'a> = Pin<Box<dyn Future<Output = Result<ArtifactLookup, StoreError>> + Send + 'a>>;

/// Reading a job's artifacts, within the caller's account only.
pub trait ArtifactStore: Send + Sync {
    fn artifact<'a>(&'a self, account: AccountId, job: JobId, name: &'a str) -> Lookup<'a>;
}

impl ArtifactStore for Store {
    fn artifact<'a>(&'a self, account: AccountId, job: JobId, name: &'a str) -> Lookup<'a> {
        Box::pin(async move {
            let row = sqlx::query(
                "SELECT a.name, a.mime, a.sha256, a.bytes
                 FROM jobs j LEFT JOIN job_artifacts a ON a.job_id = j.id AND a.name = $3
                 WHERE j.id = $1 AND j.account_id = $2",
            )
            .bind(job.as_uuid())
            .bind(account.as_uuid())
            .bind(name)
            .fetch_optional(&self.reads)
            .await?;
            match row {
                Some(row) => match row.try_get::<Option<String>, _>("name")? {
                    Some(name) => Ok(ArtifactLookup::Found(StoredArtifact {
                        name,
                        mime: row.try_get("mime")?,
                        sha256: row.try_get("sha256")?,
                        bytes: row.try_get("bytes")?,
                    })),
                    None => Ok(ArtifactLookup::NoSuchArtifact),
                },
                None => Ok(ArtifactLookup::NoSuchJob {
                    foreign: self.exists_anywhere(job).await?,
                }),
            }
        })
    }
}

impl Store {
    /// Ends run `attempt` as succeeded with `result` and its artifacts, in one transaction;
    /// false (and nothing written) when that run no longer owns the job.
    pub async fn complete(
        &self,
        id: JobId,
        attempt: i32,
        result: &serde_json::Value,
        artifacts: &[NewArtifact<'_>],
    ) -> Result<bool, StoreError> {
        Ok(self
            .complete_leading(id, attempt, result, artifacts, None, None)
            .await?
            .is_some())
    }
}

/// Keeps a completed run's artifacts inside the transaction that completes it.
pub(crate) async fn insert_artifacts(
    tx: &mut sqlx::PgConnection,
    id: JobId,
    artifacts: &[NewArtifact<'_>],
) -> Result<(), StoreError> {
    for artifact in artifacts {
        sqlx::query(
            "INSERT INTO job_artifacts (job_id, name, mime, width, height, sha256, bytes)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (job_id, name) DO UPDATE SET mime = EXCLUDED.mime,
                     width = EXCLUDED.width, height = EXCLUDED.height,
                     sha256 = EXCLUDED.sha256, bytes = EXCLUDED.bytes, created_at = now()",
        )
        .bind(id.as_uuid())
        .bind(artifact.name)
        .bind(artifact.mime)
        .bind(i32::try_from(artifact.width).unwrap_or(i32::MAX))
        .bind(i32::try_from(artifact.height).unwrap_or(i32::MAX))
        .bind(artifact.sha256)
        .bind(artifact.bytes)
        .execute(&mut *tx)
        .await?;
    }
    Ok(())
}
