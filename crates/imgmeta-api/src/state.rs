//! What every request handler shares.

use imgmeta_queue::Publisher;
use imgmeta_relay::BrokerHealth;
use imgmeta_store::Store;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    /// Whether the relay currently reaches the broker.
    pub broker: BrokerHealth,
    /// Most messages the outbox may hold while the broker is down before submissions are refused.
    pub max_outbox_backlog: i64,
    /// How long `POST /img` waits for a terminal status.
    pub legacy_wait: Duration,
    /// The jobs `POST /img` requests wait for, checked together by [`crate::watch_jobs`].
    pub job_waits: crate::JobWaits,
    /// Whether workers may fetch private addresses; `/readyz` warns loudly when so.
    pub fetch_allows_private: bool,
    /// Authentication, limits and the destination policy.
    pub security: crate::Security,
    /// Sign-up, sessions and the login throttle.
    pub sessions: crate::SessionPolicy,
    /// Answering submissions from the URL cache; `None` when the cache is off.
    pub url_cache: Option<UrlCacheAdmission>,
    /// How long a replaced webhook signing secret keeps signing beside the new one.
    pub webhook_secret_overlap: Duration,
}

/// How the API answers from the URL cache.
#[derive(Debug, Clone)]
pub struct UrlCacheAdmission {
    /// How long after expiry an entry may be served (marked `stale`) while a refresh runs.
    pub max_stale: Duration,
    /// Answers given from entries, written to them in batches by [`crate::write_hits`].
    pub hits: crate::HitTally,
    /// Fresh entries read a moment ago (`IMGMETA_CACHE_HOT_MS`); `None` reads every time.
    pub hot: Option<crate::HotEntries>,
    /// Records the jobs answered from the cache, many in one statement under a burst.
    pub answered: crate::AnsweredWriter,
}
