//! Fuzzes URL validation and the destination policy with arbitrary strings, without any
//! network: submitted URLs go through `ImageUrl::parse` and `Fetcher::precheck`, redirect
//! locations through `Url::join` and `precheck` again, and blocklists through `DomainList::parse`.
//! Beyond "never panics", it checks the invariants the policy promises.

#![no_main]

use imgmeta_domain::{ErrorCode, ImageUrl};
use imgmeta_fetch::{DomainList, DomainPolicy, FetchConfig, Fetcher, check_ip};
use libfuzzer_sys::fuzz_target;
use std::net::IpAddr;
use std::sync::LazyLock;
use url::{Host, Url};

static FETCHER: LazyLock<Fetcher> = LazyLock::new(|| {
    Fetcher::new(FetchConfig {
        domains: DomainPolicy::new(DomainList::parse("blocked.example").unwrap(), None),
        ..FetchConfig::default()
    })
    .unwrap()
});

static BASE: LazyLock<Url> = LazyLock::new(|| Url::parse("http://8.8.8.8/images/a.png").unwrap());

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(url) = ImageUrl::parse(text) {
        check_invariants(url.as_url(), FETCHER.precheck(&url).map_err(|e| e.code()));
    }
    // The same string as a redirect Location relative to a public page.
    if let Ok(next) = BASE.join(text) {
        if let Ok(url) = ImageUrl::parse(next.as_str()) {
            check_invariants(url.as_url(), FETCHER.precheck(&url).map_err(|e| e.code()));
        }
    }
    if let Ok(list) = DomainList::parse(text) {
        let policy = DomainPolicy::new(list, None);
        let _ = policy.check("example.com");
    }
});

fn check_invariants(url: &Url, verdict: Result<(), ErrorCode>) {
    let host = url.host_str().unwrap_or_default().to_ascii_lowercase();
    let on_blocklist = host == "blocked.example" || host.ends_with(".blocked.example");
    if on_blocklist {
        assert_eq!(verdict, Err(ErrorCode::BlockedDomain), "{url}");
    }
    if verdict.is_err() {
        return;
    }
    assert!(matches!(url.scheme(), "http" | "https"), "{url}");
    assert!(url.username().is_empty() && url.password().is_none(), "{url}");
    let literal = match url.host() {
        Some(Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
        Some(Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
        _ => None,
    };
    if let Some(ip) = literal {
        assert!(check_ip(ip).is_ok(), "{url} passed with a non-global address");
        assert!(
            matches!(url.port_or_known_default(), Some(80 | 443)),
            "{url} passed on a port that is not allowed"
        );
    }
}
