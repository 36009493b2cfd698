//! Job inputs: the bytes of an uploaded image, stored with its job when the job is accepted
//! (in `insert_job`'s transaction) and erased whenever the job is purged or deleted.

use crate::{Store, StoreError};
use imgmeta_domain::{JobId, UploadDigest};

impl Store {
    /// The uploaded bytes of job `id`, for the worker running it (by id alone, as claims are).
    /// `None` when they are gone: the job was purged (which also cancels it) after the claim.
    /// Only bytes with the job's digest are returned; the database checks each stored input
    /// against its own digest too.
    pub async fn job_input(
        &self,
        id: JobId,
        digest: &UploadDigest,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let bytes: Option<Vec<u8>> =
            sqlx::query_scalar("SELECT bytes FROM job_inputs WHERE job_id = $1 AND sha256 = $2")
                .bind(id.as_uuid())
                .bind(digest.sha256())
                .fetch_optional(&self.pool)
                .await?;
        Ok(bytes.filter(|b| b.len() as u64 == digest.bytes()))
    }
}
