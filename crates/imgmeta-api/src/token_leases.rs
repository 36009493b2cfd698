//! Rate-limit tokens a busy key's admissions take ahead ([`Store::admit_leasing`]): when a key
//! sends many requests to this process, one admission statement takes tokens for the next few
//! of them from the key's bucket in PostgreSQL, and those requests are admitted from this
//! process's lease for at most [`TTL`], without a statement each. A key sending one request at
//! a time takes one token per request, exactly as before.
//!
//! The bucket stays the deployment's one bucket: a leased token was taken from it, so no
//! replica admits more than the rate allows; tokens a lease did not use go back with the key's
//! next admission statement (a key that stops meanwhile leaves them taken until its bucket
//! refills, at most a minute). What an admission reads besides tokens (revocation, the key's
//! scopes, the account's GPS setting and daily quotas) is announced by PostgreSQL when it
//! changes anywhere ([`forget_on_change`]), and every process drops its leases within
//! milliseconds; while a process cannot hear those announcements it takes no tokens ahead, and
//! a lease is never older than [`TTL`] in any case. The job insert checks the quotas exactly
//! whatever the admission saw.

use imgmeta_store::{Admission, AdmissionChanges, AdmissionOutcome, Store, StoreError};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// How long a lease's tokens and what its statement read are used.
pub(crate) const TTL: Duration = Duration::from_millis(250);
/// Most keys with leases one process keeps; others take one token per request.
const CAPACITY: u64 = 10_000;

/// At most this share of a key's bucket (its rate per minute) is taken ahead at once, so a
/// lease held by one replica never keeps much of a key's rate from the others.
fn most_ahead(limit: u32) -> u32 {
    (limit / 8).max(1)
}

/// A lease: tokens taken ahead and what the statement that took them read.
#[derive(Debug)]
struct Ahead {
    read_at: Instant,
    tokens: u32,
    /// The statement's own answer (the key's scopes and GPS setting, the bucket after it).
    admission: Admission,
    quota_used_up: bool,
}

/// One key's lease and its recent demand in this process.
#[derive(Debug)]
struct KeyLease {
    ahead: Option<Ahead>,
    /// The key's rate per minute, from its last statement (0 before the first).
    limit: u32,
    window_start: Instant,
    seen: u32,
    seen_before: u32,
}

impl KeyLease {
    fn new() -> Self {
        Self {
            ahead: None,
            limit: 0,
            window_start: Instant::now(),
            seen: 0,
            seen_before: 0,
        }
    }

    /// Counts a request; returns how many tokens its statement should take (if it runs one):
    /// as many as the key sent in the last [`TTL`] or has waiting now (`queued`, this one
    /// included), within [`most_ahead`].
    fn count(&mut self, now: Instant, queued: u32) -> u32 {
        let since = now.saturating_duration_since(self.window_start);
        if since >= TTL {
            self.seen_before = if since >= TTL * 2 { 0 } else { self.seen };
            self.seen = 0;
            self.window_start = now;
        }
        self.seen += 1;
        if self.limit == 0 {
            return 1;
        }
        self.seen
            .max(self.seen_before)
            .max(queued)
            .clamp(1, most_ahead(self.limit))
    }

    /// Admits a request from the lease, when it holds a token and is recent.
    fn take(&mut self, now: Instant, checks_quota: bool) -> Option<Admission> {
        let ahead = self.ahead.as_mut()?;
        if ahead.tokens == 0 || now.saturating_duration_since(ahead.read_at) >= TTL {
            return None;
        }
        ahead.tokens -= 1;
        // A submission is refused early when a quota was used up (as its statement would); the
        // token is spent either way, as it would be.
        let outcome = if checks_quota && ahead.quota_used_up {
            AdmissionOutcome::QuotaExceeded {
                retry_after_secs: crate::submit::secs_to_utc_midnight(),
            }
        } else {
            AdmissionOutcome::Allowed
        };
        Some(Admission {
            outcome,
            remaining: ahead.admission.remaining + ahead.tokens,
            ..ahead.admission.clone()
        })
    }
}

/// A key's lease and how many of its requests wait for it now.
#[derive(Debug)]
struct KeyState {
    queued: AtomicU32,
    lease: tokio::sync::Mutex<KeyLease>,
}

/// The leases of one API process, by key id.
#[derive(Clone)]
pub struct TokenLeases {
    keys: moka::sync::Cache<i64, Arc<KeyState>>,
    /// Whether changes to keys and accounts can be heard now: no tokens are taken ahead while
    /// they cannot.
    listening: Arc<AtomicBool>,
}

impl Default for TokenLeases {
    fn default() -> Self {
        Self {
            keys: moka::sync::Cache::builder()
                .max_capacity(CAPACITY)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            listening: Arc::default(),
        }
    }
}

impl std::fmt::Debug for TokenLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenLeases")
            .field("keys", &self.keys.entry_count())
            .finish()
    }
}

impl TokenLeases {
    /// The request's admission: from the key's lease when it holds a recent token, else from
    /// one statement that gives back the lease's unused tokens and takes as many as the key's
    /// recent demand asks for. Requests of one key wait for each other's statement here, as
    /// they would on the bucket's row lock.
    pub async fn admit(
        &self,
        store: &Store,
        key_id: i64,
        checks_quota: bool,
    ) -> Result<Admission, StoreError> {
        let key = self.keys.get_with(key_id, || {
            Arc::new(KeyState {
                queued: AtomicU32::new(0),
                lease: tokio::sync::Mutex::new(KeyLease::new()),
            })
        });
        key.queued.fetch_add(1, Ordering::Relaxed);
        let mut lease = key.lease.lock().await;
        let queued = key.queued.fetch_sub(1, Ordering::Relaxed);
        let now = Instant::now();
        let mut want = lease.count(now, queued);
        if !self.listening.load(Ordering::Acquire) {
            // A change made elsewhere could not be heard: one token, read fresh, per request.
            lease.ahead = None;
            want = 1;
        }
        if let Some(admission) = lease.take(now, checks_quota) {
            return Ok(admission);
        }
        let returned = lease.ahead.take().map_or(0, |ahead| ahead.tokens);
        let taken = store
            .admit_leasing(key_id, checks_quota, want, returned)
            .await?;
        if taken.admission.key.is_some() {
            lease.limit = taken.admission.limit;
        }
        if taken.extra > 0 {
            lease.ahead = Some(Ahead {
                read_at: now,
                tokens: taken.extra,
                admission: taken.admission.clone(),
                quota_used_up: taken.quota_used_up,
            });
        }
        Ok(taken.admission)
    }

    /// Drops a key's lease (it was revoked here); its tokens stay taken.
    pub(crate) fn forget(&self, key_id: i64) {
        self.keys.invalidate(&key_id);
    }

    /// Changes can be heard (`true`) or cannot (`false`); either way every lease is dropped,
    /// since a change may have been missed meanwhile.
    fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
        self.keys.invalidate_all();
    }
}

/// Drops this process's leases whenever a key or account changes anywhere in the deployment,
/// until `shutdown`. While the database cannot be listened to, no tokens are taken ahead.
pub async fn forget_on_change(store: Store, leases: TokenLeases, shutdown: CancellationToken) {
    crate::announcements::follow(store, leases, shutdown).await;
}

impl crate::announcements::Follower for TokenLeases {
    /// A change (`true`), or the connection dropped and is being made again (`false`: what was
    /// announced meanwhile is lost); either way every lease goes.
    type Announcement = bool;
    type Listener = AdmissionChanges;
    const CHANNEL: &'static str = "key and account changes";
    const WITHOUT: &'static str = "taking no rate-limit tokens ahead";

    async fn listen(store: &Store) -> Result<AdmissionChanges, StoreError> {
        store.admission_changes().await
    }

    async fn next(changes: &mut AdmissionChanges) -> Result<bool, StoreError> {
        changes.next().await
    }

    fn set_listening(&self, listening: bool) {
        TokenLeases::set_listening(self, listening);
    }

    fn heard(&self, _: bool) {
        self.keys.invalidate_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgmeta_domain::ScopeSet;
    use imgmeta_store::KeyNow;

    fn admission(remaining: u32) -> Admission {
        Admission {
            outcome: AdmissionOutcome::Allowed,
            key: Some(KeyNow {
                scopes: ScopeSet::parse(&["jobs:read".to_owned()]).unwrap(),
                redact_gps: false,
            }),
            limit: 120,
            remaining,
            reset_secs: 10,
        }
    }

    #[test]
    fn a_key_sending_one_request_at_a_time_takes_one_token_each() {
        let mut lease = KeyLease::new();
        let t0 = Instant::now();
        assert_eq!(lease.count(t0, 1), 1);
        lease.limit = 120;
        // One request per window: never more than one.
        for i in 1..5 {
            assert_eq!(lease.count(t0 + TTL * 3 * i, 1), 1);
        }
    }

    #[test]
    fn a_busy_key_takes_its_recent_demand_within_an_eighth_of_its_rate() {
        let mut lease = KeyLease::new();
        lease.limit = 120;
        let t0 = Instant::now();
        let wants: Vec<u32> = (0..40).map(|_| lease.count(t0, 1)).collect();
        assert_eq!(&wants[..4], &[1, 2, 3, 4]);
        assert_eq!(*wants.last().unwrap(), 15);
        // The next window remembers the last one's demand.
        assert_eq!(lease.count(t0 + TTL + Duration::from_millis(1), 1), 15);
        // Requests waiting together count at once, a quiet key's first included.
        let mut quiet = KeyLease::new();
        quiet.limit = 120;
        assert_eq!(quiet.count(t0, 6), 6);
        assert_eq!(quiet.count(t0, 40), 15);
        // A slow key's limit keeps it at one.
        lease.limit = 10;
        assert_eq!(lease.count(t0 + TTL + Duration::from_millis(2), 5), 1);
    }

    #[test]
    fn a_lease_admits_until_its_tokens_or_its_time_run_out() {
        let mut lease = KeyLease::new();
        let t0 = Instant::now();
        assert!(lease.take(t0, false).is_none());
        lease.ahead = Some(Ahead {
            read_at: t0,
            tokens: 2,
            admission: admission(50),
            quota_used_up: false,
        });
        let first = lease.take(t0, true).unwrap();
        assert_eq!(first.outcome, AdmissionOutcome::Allowed);
        // What the bucket held after the statement plus the lease's token still unused.
        assert_eq!(first.remaining, 51);
        assert_eq!(lease.take(t0, true).unwrap().remaining, 50);
        assert!(lease.take(t0, true).is_none(), "no token left");
        lease.ahead.as_mut().unwrap().tokens = 3;
        assert!(lease.take(t0 + TTL, true).is_none(), "too old");
    }

    #[test]
    fn a_used_up_quota_refuses_submissions_but_not_reads() {
        let mut lease = KeyLease::new();
        let t0 = Instant::now();
        lease.ahead = Some(Ahead {
            read_at: t0,
            tokens: 2,
            admission: admission(5),
            quota_used_up: true,
        });
        assert!(matches!(
            lease.take(t0, true).unwrap().outcome,
            AdmissionOutcome::QuotaExceeded { .. }
        ));
        assert_eq!(
            lease.take(t0, false).unwrap().outcome,
            AdmissionOutcome::Allowed
        );
    }
}
