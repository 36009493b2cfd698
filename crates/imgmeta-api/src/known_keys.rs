//! Keys this process has already checked against their stored hash, so a repeated Bearer key
//! costs no lookup: only what never changes for a key is kept (its id, prefix and account).
//! What can change while it is in use (revocation, scopes, the account's GPS setting) is read
//! by the request's admission (`Store::admit_leasing`), so a revocation or a new setting takes
//! effect on the key's next request; a busy key's requests admitted from tokens taken ahead
//! (`token_leases.rs`) see it once PostgreSQL announces it, within milliseconds.

use imgmeta_auth::{KeyHash, KeyPrefix};
use imgmeta_domain::AccountId;
use std::time::Duration;

/// Most keys one API process remembers; more are looked up again as before.
const CAPACITY: u64 = 10_000;
/// How long a remembered key is trusted without a lookup; revocation does not wait for it.
const TTL: Duration = Duration::from_secs(600);

/// A key whose presented secret matched its stored hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KnownKey {
    pub id: i64,
    pub prefix: KeyPrefix,
    pub account: AccountId,
}

/// Verified keys by the SHA-256 of the presented secret (the stored hash itself): a secret
/// that was never verified is never found, and an entry says nothing a lookup would not.
#[derive(Clone)]
pub(crate) struct KnownKeys {
    cache: moka::sync::Cache<[u8; 32], KnownKey>,
}

impl Default for KnownKeys {
    fn default() -> Self {
        Self::new(CAPACITY, TTL)
    }
}

impl std::fmt::Debug for KnownKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KnownKeys")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl KnownKeys {
    pub fn new(capacity: u64, ttl: Duration) -> Self {
        Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
        }
    }

    /// The key whose secret hashes to `hash`, if this process verified it recently.
    pub fn get(&self, hash: &KeyHash) -> Option<KnownKey> {
        self.cache.get(hash.as_bytes())
    }

    /// Remembers a key right after its secret matched its stored hash.
    pub fn keep(&self, hash: &KeyHash, key: KnownKey) {
        self.cache.insert(*hash.as_bytes(), key);
    }

    /// Forgets a key (its admission found it revoked or deleted).
    pub fn forget(&self, hash: &KeyHash) {
        self.cache.invalidate(hash.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgmeta_auth::ApiKey;

    fn known(key: &ApiKey, id: i64) -> KnownKey {
        KnownKey {
            id,
            prefix: key.prefix(),
            account: AccountId::BUILT_IN,
        }
    }

    #[test]
    fn only_a_kept_secret_is_found_and_a_forgotten_one_is_not() {
        let keys = KnownKeys::default();
        let (a, b) = (ApiKey::generate(), ApiKey::generate());
        assert_eq!(keys.get(&a.hash()), None);
        keys.keep(&a.hash(), known(&a, 1));
        assert_eq!(keys.get(&a.hash()), Some(known(&a, 1)));
        // Another secret, even one with the same prefix, hashes elsewhere.
        assert_eq!(keys.get(&b.hash()), None);
        keys.forget(&a.hash());
        assert_eq!(keys.get(&a.hash()), None);
    }

    #[test]
    fn entries_expire() {
        let keys = KnownKeys::new(10, Duration::from_millis(50));
        let a = ApiKey::generate();
        keys.keep(&a.hash(), known(&a, 1));
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(keys.get(&a.hash()), None);
    }

    #[test]
    fn the_cache_is_bounded() {
        let keys = KnownKeys::new(8, TTL);
        let all: Vec<ApiKey> = (0..100).map(|_| ApiKey::generate()).collect();
        for (i, key) in all.iter().enumerate() {
            keys.keep(&key.hash(), known(key, i as i64));
        }
        keys.cache.run_pending_tasks();
        assert!(
            keys.cache.entry_count() <= 8,
            "{}",
            keys.cache.entry_count()
        );
    }
}
