//! Fresh URL cache entries held in the API process for a moment (`IMGMETA_CACHE_HOT_MS`), so
//! the submissions of a viral URL answered from the cache read nothing but the caller's key:
//! PostgreSQL stays the source of truth, and each process reads a hot entry from it once per
//! moment instead of once per submission.
//!
//! A copy is served only while the entry itself is still fresh (its age and freshness advance
//! with the clock), never stale and never to decide a revalidation: those always read
//! PostgreSQL. A purge (`imgmeta cache purge`) is announced by PostgreSQL to every API process,
//! which forgets its copies at once; when the announcing connection drops, a process forgets
//! everything it holds. What else changes an entry reaches a copy within the moment it lives:
//! the sweep's evictions (the copy is still a correct, fresh analysis), and the workers' model
//! (entries of a model no worker announced for three minutes stop being served).

use futures::FutureExt;
use futures::future::Shared;
use imgmeta_store::{Store, StoreError, UrlEntry, UrlPurge, UrlPurges};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio_util::sync::CancellationToken;

/// An entry as read from PostgreSQL, and when.
#[derive(Debug)]
pub(crate) struct Held {
    pub entry: UrlEntry,
    read_at: Instant,
}

impl Held {
    /// Seconds since the entry was read: its age then plus this gives its age now.
    pub fn elapsed_s(&self) -> f64 {
        self.read_at.elapsed().as_secs_f64()
    }
}

/// When a read of an entry began, in purges heard.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReadTicket(u64);

/// Resolves when the read it stands for is over (its [`Reading`] dropped).
pub(crate) type ReadDone = Shared<oneshot::Receiver<()>>;

/// How long a request waits for another request's read of the same entry before reading it
/// itself.
pub(crate) const READ_WAIT: Duration = Duration::from_millis(100);

/// This process's read of one URL's entry; dropping it (once the copy is kept, or the read
/// failed) wakes the requests that waited for it.
pub(crate) struct Reading {
    reads: Arc<Mutex<HashMap<String, ReadDone>>>,
    key: String,
    _done: oneshot::Sender<()>,
}

impl Drop for Reading {
    fn drop(&mut self) {
        self.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.key);
    }
}

/// The hot copies of one API process, by URL key.
#[derive(Clone)]
pub struct HotEntries {
    cache: moka::sync::Cache<String, Arc<Held>>,
    /// The entries being read now, so the requests that miss a copy at the same moment (the
    /// first answers of a viral URL, or the moment its copy expires) wait for one read instead
    /// of each reading the entry.
    reads: Arc<Mutex<HashMap<String, ReadDone>>>,
    /// Counts purges heard: an entry read before a purge is not kept after it.
    purges: Arc<AtomicU64>,
    /// Whether purges can be heard now: nothing is kept while they cannot.
    listening: Arc<AtomicBool>,
}

impl std::fmt::Debug for HotEntries {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HotEntries")
            .field("entries", &self.cache.entry_count())
            .finish()
    }
}

impl HotEntries {
    /// Copies live `ttl` at most, and at most `capacity` of them are held (least recently
    /// used dropped first). `None` when `ttl` is zero: every lookup reads PostgreSQL.
    pub fn new(capacity: u64, ttl: Duration) -> Option<Self> {
        (!ttl.is_zero()).then(|| Self {
            cache: moka::sync::Cache::builder()
                .max_capacity(capacity)
                .time_to_live(ttl)
                .build(),
            reads: Arc::default(),
            purges: Arc::default(),
            listening: Arc::default(),
        })
    }

    /// The copy of `url_key`'s entry, while the entry is still fresh.
    pub(crate) fn get(&self, url_key: &str) -> Option<Arc<Held>> {
        let held = self.cache.get(url_key)?;
        if held.entry.fresh_for_s - held.elapsed_s() > 0.0 {
            return Some(held);
        }
        self.cache.invalidate(url_key);
        None
    }

    /// Either this request reads `url_key`'s entry (`Ok`: keep the guard until the copy is
    /// kept) or another request of this process is reading it (`Err`: what resolves when that
    /// read is over).
    pub(crate) fn read_or_wait(&self, url_key: &str) -> Result<Reading, ReadDone> {
        let mut reads = self.reads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(done) = reads.get(url_key) {
            return Err(done.clone());
        }
        let (tx, rx) = oneshot::channel();
        reads.insert(url_key.to_owned(), rx.shared());
        Ok(Reading {
            reads: self.reads.clone(),
            key: url_key.to_owned(),
            _done: tx,
        })
    }

    /// Taken before reading an entry from PostgreSQL and handed to [`HotEntries::keep`].
    pub(crate) fn before_read(&self) -> ReadTicket {
        ReadTicket(self.purges.load(Ordering::Acquire))
    }

    /// Keeps a copy of an entry just read, if it may be served without PostgreSQL (fresh and
    /// needing no revalidation, or a URL's remembered error still in force) and no purge was
    /// heard since the read began (the entry read may be one the purge removed).
    pub(crate) fn keep(&self, url_key: &str, entry: &UrlEntry, ticket: ReadTicket) {
        let servable = entry.fresh_for_s > 0.0 && (entry.error.is_some() || !entry.must_revalidate);
        let heard_all = self.purges.load(Ordering::Acquire) == ticket.0;
        if servable && heard_all && self.listening.load(Ordering::Acquire) {
            let held = Held {
                entry: entry.clone(),
                read_at: Instant::now(),
            };
            self.cache.insert(url_key.to_owned(), Arc::new(held));
        }
    }

    /// Purges can be heard (`true`) or cannot (`false`: everything held is forgotten and
    /// nothing is kept until they can again).
    fn set_listening(&self, listening: bool) {
        self.listening.store(listening, Ordering::Release);
        if !listening {
            self.forget(&UrlPurge::Lost);
        }
    }

    fn forget(&self, purge: &UrlPurge) {
        self.purges.fetch_add(1, Ordering::AcqRel);
        match purge {
            UrlPurge::Url(key) => self.cache.invalidate(key),
            UrlPurge::All | UrlPurge::Lost => self.cache.invalidate_all(),
        }
    }
}

/// Forgets hot copies as purges commit anywhere in the deployment, until `shutdown`. While
/// the database cannot be listened to, nothing is held: every lookup reads PostgreSQL.
pub async fn forget_purged(store: Store, hot: HotEntries, shutdown: CancellationToken) {
    crate::announcements::follow(store, hot, shutdown).await;
}

impl crate::announcements::Follower for HotEntries {
    type Announcement = UrlPurge;
    type Listener = UrlPurges;
    const CHANNEL: &'static str = "URL cache purges";
    const WITHOUT: &'static str = "not holding hot entries";

    async fn listen(store: &Store) -> Result<UrlPurges, StoreError> {
        store.url_purges().await
    }

    async fn next(purges: &mut UrlPurges) -> Result<UrlPurge, StoreError> {
        purges.next().await
    }

    fn set_listening(&self, listening: bool) {
        HotEntries::set_listening(self, listening);
    }

    /// `Lost`: the listener connects again on the next call; what was announced meanwhile is
    /// lost, so everything held goes.
    fn heard(&self, purge: UrlPurge) {
        self.forget(&purge);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use imgmeta_domain::analysis::Analysis;
    use imgmeta_domain::{ErrorBody, ErrorCode};

    fn entry(fresh_for_s: f64) -> UrlEntry {
        UrlEntry {
            model: "m".to_owned(),
            sha256: None,
            analysis: Analysis {
                image: None,
                objects: None,
            },
            error: None,
            etag: None,
            last_modified: None,
            must_revalidate: false,
            age_s: 5.0,
            fresh_for_s,
        }
    }

    /// Copies of `ttl` in a process that hears purges.
    fn listening(ttl: Duration) -> HotEntries {
        let hot = HotEntries::new(10, ttl).unwrap();
        hot.set_listening(true);
        hot
    }

    #[tokio::test]
    async fn one_request_reads_an_entry_while_the_others_wait_for_it() {
        let hot = listening(Duration::from_secs(60));
        let Ok(reading) = hot.read_or_wait("u") else {
            panic!("the first reads");
        };
        let waiting = hot.read_or_wait("u").err().expect("the second waits");
        let also = hot.read_or_wait("u").err().expect("and the third");
        // Another URL is read at the same time.
        let Ok(other) = hot.read_or_wait("v") else {
            panic!("another URL is read too");
        };
        assert!(
            waiting.clone().now_or_never().is_none(),
            "not before the read is over"
        );
        hot.keep("u", &entry(30.0), hot.before_read());
        drop(reading);
        assert!(waiting.now_or_never().is_some());
        assert!(also.now_or_never().is_some());
        assert!(hot.get("u").is_some());
        // The next miss reads again.
        assert!(hot.read_or_wait("u").is_ok());
        drop(other);
    }

    #[test]
    fn only_entries_servable_without_the_database_are_kept() {
        let hot = listening(Duration::from_secs(60));
        let t = hot.before_read();
        hot.keep("fresh", &entry(30.0), t);
        hot.keep("stale", &entry(-1.0), t);
        hot.keep(
            "no-cache",
            &UrlEntry {
                must_revalidate: true,
                ..entry(30.0)
            },
            t,
        );
        let negative = UrlEntry {
            error: Some(ErrorBody::new(ErrorCode::HttpStatus, "404")),
            ..entry(30.0)
        };
        hot.keep("negative", &negative, t);
        assert!(hot.get("fresh").is_some());
        assert!(hot.get("negative").is_some());
        assert!(hot.get("stale").is_none());
        assert!(hot.get("no-cache").is_none());
        assert!(hot.get("never-read").is_none());
    }

    #[test]
    fn a_copy_is_served_only_while_its_entry_is_fresh() {
        let hot = listening(Duration::from_secs(60));
        hot.keep("soon-stale", &entry(0.05), hot.before_read());
        let held = hot.get("soon-stale").unwrap();
        assert_eq!(held.entry.age_s, 5.0);
        std::thread::sleep(Duration::from_millis(80));
        assert!(held.elapsed_s() >= 0.08);
        assert!(hot.get("soon-stale").is_none());
    }

    #[test]
    fn copies_live_the_moment_they_are_given_at_most() {
        let hot = listening(Duration::from_millis(50));
        hot.keep("k", &entry(3600.0), hot.before_read());
        assert!(hot.get("k").is_some());
        std::thread::sleep(Duration::from_millis(80));
        assert!(hot.get("k").is_none());
    }

    #[test]
    fn purges_forget_one_url_or_everything() {
        let hot = listening(Duration::from_secs(60));
        for key in ["a", "b", "c"] {
            hot.keep(key, &entry(30.0), hot.before_read());
        }
        hot.forget(&UrlPurge::Url("a".to_owned()));
        assert!(hot.get("a").is_none());
        assert!(hot.get("b").is_some());
        hot.forget(&UrlPurge::Lost);
        assert!(hot.get("b").is_none() && hot.get("c").is_none());
    }

    #[test]
    fn an_entry_read_before_a_purge_is_not_kept_after_it() {
        let hot = listening(Duration::from_secs(60));
        let read_began = hot.before_read();
        hot.forget(&UrlPurge::Url("a".to_owned()));
        hot.keep("a", &entry(30.0), read_began);
        assert!(hot.get("a").is_none());
        hot.keep("a", &entry(30.0), hot.before_read());
        assert!(hot.get("a").is_some());
    }

    #[test]
    fn nothing_is_kept_while_purges_cannot_be_heard() {
        let hot = HotEntries::new(10, Duration::from_secs(60)).unwrap();
        hot.keep("before", &entry(30.0), hot.before_read());
        assert!(hot.get("before").is_none(), "kept before listening began");
        hot.set_listening(true);
        hot.keep("a", &entry(30.0), hot.before_read());
        assert!(hot.get("a").is_some());
        hot.set_listening(false);
        assert!(hot.get("a").is_none(), "held after the listener was lost");
        hot.keep("b", &entry(30.0), hot.before_read());
        assert!(hot.get("b").is_none(), "kept while not listening");
    }

    #[test]
    fn a_zero_moment_holds_nothing() {
        assert!(HotEntries::new(10, Duration::ZERO).is_none());
    }
}
