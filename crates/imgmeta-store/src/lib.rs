//! PostgreSQL persistence for jobs: the source of truth for what was accepted and how it ended.
//!
//! Only this crate knows SQL. Workers claim jobs here (not in the broker) so that a duplicate
//! delivery can never run a job twice at the same time, and every write that ends a run is
//! guarded by the attempt number that run was given.

mod accounts;
mod answered;
mod artifacts;
mod batches;
mod content_cache;
mod database;
mod error;
mod host_limits;
mod inputs;
mod jobs;
mod keys;
mod login_throttle;
pub mod outbox;
mod runs;
mod sessions;
mod url_cache;
mod users;
mod webhooks;

pub use accounts::{
    AccountChanges, AccountLookup, AccountRecord, MAX_RETENTION_DAYS, NewAccount, Purged,
};
pub use answered::is_answered;
pub use artifacts::{ArtifactLookup, ArtifactStore, NewArtifact, StoredArtifact};
pub use batches::{
    BatchBegun, BatchCancelled, BatchCounts, BatchFinished, BatchLine, BatchRecord, BatchUpload,
    LineFilter, NewBatch,
};
pub use content_cache::{CacheStats, CachedContent, NewContent};
pub use database::{Store, ensure_database};
pub use error::StoreError;
pub use jobs::{
    Cancelled, Idempotency, JobAdmission, JobFilter, JobLookup, JobPage, JobRecord, NewJob, Owner,
    PurgeOutcome, Submitted,
};
pub use keys::{
    Admission, AdmissionChanges, AdmissionOutcome, ApiKeyRecord, KeyAccount, KeyLookup, KeyNow,
    Lease, NewApiKey, Revoked,
};
pub use login_throttle::{AttemptIds, LoginAttempt, ThrottleSubject};
pub use outbox::{DeadLetter, OutboxMessage, Sweep};
pub use runs::Claim;
pub use sessions::{SessionKey, SessionLifetime, SessionRecord};
pub use url_cache::{
    FlightEnd, NegativeEntry, NewUrlEntry, UrlCacheBounds, UrlCacheStats, UrlEntry, UrlHits,
    UrlLookup, UrlPurge, UrlPurges, is_negative,
};
pub use users::{NewSessionKey, NewUser, SignUp, UserLogin, UserRecord};
pub use webhooks::{
    AttemptOutcome, DeliveryFilter, DeliveryRecord, DueDelivery, MAX_PREVIOUS_SECRETS,
    WebhookSecrets,
};
