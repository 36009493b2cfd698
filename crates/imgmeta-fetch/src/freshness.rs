//! The origin's caching headers (RFC 9111) as a shared cache reads them: whether a response
//! may be kept, for how long, and the validators that revalidate it.
//!
//! Written here rather than taken from `http-cache-semantics`: the URL cache needs four
//! directives, the `Last-Modified` heuristic and our own default and ceiling, and keeps only
//! the validators, not a serialised request/response policy per entry.

use reqwest::header::{AGE, CACHE_CONTROL, DATE, ETAG, EXPIRES, HeaderMap, LAST_MODIFIED};
use std::time::{Duration, SystemTime};

/// Longest validator kept; a longer one is not sent back.
const MAX_VALIDATOR_LEN: usize = 256;

/// What the URL cache's lifetimes default to and are capped at (`IMGMETA_CACHE_TTL`,
/// `IMGMETA_CACHE_MAX_TTL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lifetimes {
    /// For a response that says nothing about its freshness.
    pub default_ttl: Duration,
    /// No entry is fresh longer than this, whatever the origin says.
    pub max_ttl: Duration,
}

/// The validators of a stored response, sent as `If-None-Match` / `If-Modified-Since`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
}

impl Validators {
    pub fn is_empty(&self) -> bool {
        self.etag.is_none() && self.last_modified.is_none()
    }
}

/// The caching headers of one origin response.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OriginCaching {
    /// `no-store`, or `private` (a shared cache must not keep it).
    pub no_store: bool,
    /// `no-cache` (or `max-age=0`-like `must-revalidate` without lifetime): keep, but
    /// revalidate before every use.
    pub no_cache: bool,
    /// `s-maxage`, else `max-age`, in seconds.
    pub max_age: Option<u64>,
    /// `Expires` minus `Date` (or now), in seconds; negative when already expired.
    pub expires_in: Option<i64>,
    /// The `Age` header: how long the response already sat in caches upstream.
    pub age: u64,
    /// `Date` (or now) minus `Last-Modified`, in seconds: the heuristic's base.
    pub modified_ago: Option<u64>,
    pub validators: Validators,
}

impl OriginCaching {
    /// Reads the response headers received at `now`.
    pub fn from_headers(headers: &HeaderMap, now: SystemTime) -> Self {
        let text = |name| {
            headers
                .get_all(name)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .collect::<Vec<_>>()
                .join(",")
        };
        let date = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v.trim()).ok())
        };
        let mut caching = Self::default();
        let (mut max_age, mut s_maxage) = (None, None);
        for directive in text(CACHE_CONTROL).split(',') {
            let (name, value) = match directive.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (directive.trim(), None),
            };
            match name.to_ascii_lowercase().as_str() {
                "no-store" | "private" => caching.no_store = true,
                "no-cache" => caching.no_cache = true,
                "max-age" => max_age = value.and_then(|v| v.parse::<u64>().ok()).or(Some(0)),
                "s-maxage" => s_maxage = value.and_then(|v| v.parse::<u64>().ok()).or(Some(0)),
                _ => {}
            }
        }
        caching.max_age = s_maxage.or(max_age);
        let origin_now = date(DATE).unwrap_or(now);
        if let Some(expires) = headers.get(EXPIRES).and_then(|v| v.to_str().ok()) {
            // An invalid Expires (often "0" or "-1") means already expired.
            caching.expires_in = Some(match httpdate::parse_http_date(expires.trim()) {
                Ok(at) => signed_secs(at, origin_now),
                Err(_) => -1,
            });
        }
        caching.age = headers
            .get(AGE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        let last_modified = date(LAST_MODIFIED);
        caching.modified_ago = last_modified.map(|at| signed_secs(origin_now, at).max(0) as u64);
        let kept = |name| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty() && v.len() <= MAX_VALIDATOR_LEN)
                .map(str::to_owned)
        };
        caching.validators = Validators {
            etag: kept(ETAG),
            last_modified: last_modified.and(kept(LAST_MODIFIED)),
        };
        caching
    }

    /// How long the response stays fresh from now; `None` when it must not be stored. An
    /// explicit lifetime (`s-maxage`, `max-age`, `Expires`) wins, else 10 % of the time since
    /// `Last-Modified`, else the default; less the time already spent upstream (`Age`), and
    /// never more than the ceiling. `no-cache` keeps it with no freshness at all.
    pub fn freshness(&self, lifetimes: &Lifetimes) -> Option<Duration> {
        if self.no_store {
            return None;
        }
        if self.no_cache {
            return Some(Duration::ZERO);
        }
        let lifetime = match (self.max_age, self.expires_in, self.modified_ago) {
            (Some(max_age), _, _) => max_age,
            (None, Some(expires_in), _) => expires_in.max(0) as u64,
            (None, None, Some(modified_ago)) => modified_ago / 10,
            (None, None, None) => lifetimes.default_ttl.as_secs(),
        };
        let left = Duration::from_secs(lifetime.saturating_sub(self.age));
        Some(left.min(lifetimes.max_ttl))
    }
}

fn signed_secs(later: SystemTime, earlier: SystemTime) -> i64 {
    match later.duration_since(earlier) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs() as i64),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const LIFETIMES: Lifetimes = Lifetimes {
        default_ttl: Duration::from_secs(3600),
        max_ttl: Duration::from_secs(86_400),
    };

    fn caching(headers: &[(&'static str, &str)]) -> OriginCaching {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        // 2026-12-02 08:00:00 UTC
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_198_400);
        OriginCaching::from_headers(&map, now)
    }

    fn fresh_for(headers: &[(&'static str, &str)]) -> Option<u64> {
        caching(headers).freshness(&LIFETIMES).map(|d| d.as_secs())
    }

    #[test]
    fn max_age_and_s_maxage_set_the_lifetime_less_the_age() {
        assert_eq!(
            fresh_for(&[("cache-control", "public, max-age=600")]),
            Some(600)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=600, s-maxage=60")]),
            Some(60),
            "a shared cache takes s-maxage"
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=600"), ("age", "100")]),
            Some(500)
        );
        assert_eq!(
            fresh_for(&[("cache-control", "max-age=999999")]),
            Some(86_400)
        );
        assert_eq!(fresh_for(&[("cache-control", "max-age=0")]), Some(0));
    }

    #[test]
    fn no_store_and_private_are_never_kept_and_no_cache_is_kept_unfresh() {
        assert_eq!(fresh_for(&[("cache-control", "no-store")]), None);
        assert_eq!(
            fresh_for(&[("cache-control", "private, max-age=600")]),
            None
        );
        assert_eq!(fresh_for(&[("cache-control", "no-cache")]), Some(0));
        assert!(caching(&[("cache-control", "No-Cache")]).no_cache);
    }

    #[test]
    fn without_a_lifetime_the_last_modified_heuristic_then_the_default_apply() {
        assert_eq!(
            fresh_for(&[
                ("date", "Wed, 02 Dec 2026 08:00:00 GMT"),
                ("last-modified", "Wed, 02 Dec 2026 07:00:00 GMT")
            ]),
            Some(360),
            "10 % of an hour"
        );
        assert_eq!(fresh_for(&[]), Some(3600));
        assert_eq!(
            fresh_for(&[
                ("date", "Wed, 02 Dec 2026 08:00:00 GMT"),
                ("expires", "Wed, 02 Dec 2026 08:05:00 GMT")
            ]),
            Some(300)
        );
        assert_eq!(
            fresh_for(&[("expires", "0")]),
            Some(0),
            "invalid Expires is expired"
        );
    }

    #[test]
    fn validators_are_kept_for_revalidation() {
        let c = caching(&[
            ("etag", "\"v1\""),
            ("last-modified", "Wed, 02 Dec 2026 07:00:00 GMT"),
        ]);
        assert_eq!(c.validators.etag.as_deref(), Some("\"v1\""));
        assert_eq!(
            c.validators.last_modified.as_deref(),
            Some("Wed, 02 Dec 2026 07:00:00 GMT")
        );
        assert!(
            caching(&[("last-modified", "yesterday")])
                .validators
                .is_empty()
        );
    }
}
