//! A table of hostile URLs, each refused with the right code while counting listeners on
//! loopback prove that no refused fetch ever connected to them.
//!
//! Every URL points at this machine (127.0.0.1 and ::1 in their many spellings, names from
//! /etc/hosts) or at a name the domain policy refuses before any lookup, so even a broken
//! fetcher could not send a packet beyond loopback.

use crate::support::{GIF, Reply, TestServer, image_url};
use imgmeta_domain::{ErrorCode, ImageUrl};
use imgmeta_fetch::{DomainList, DomainPolicy, FetchConfig, Fetcher};
use std::time::Duration;

use ErrorCode::{BlockedDestination as Dest, BlockedDomain as Domain, InvalidUrl as Invalid};

/// `{p}`: the IPv4 listener's port; `{p6}`: the IPv6 listener's port; `{r}`: the base URL of a
/// redirector that is allowed (as an allowed endpoint) and redirects `/to?<location>` to
/// `<location>`.
const CASES: &[(&str, ErrorCode)] = &[
    // IPv4 loopback in every spelling the URL parser accepts.
    ("http://127.0.0.1:{p}/a.png", Dest),
    ("https://127.0.0.1:{p}/a.png", Dest),
    ("http://2130706433:{p}/", Dest),
    ("http://0x7f000001:{p}/", Dest),
    ("http://0x7F.0x0.0x0.0x1:{p}/", Dest),
    ("http://0177.0.0.1:{p}/", Dest),
    ("http://017700000001:{p}/", Dest),
    ("http://127.1:{p}/", Dest),
    ("http://127.0.1:{p}/", Dest),
    ("http://0177.1:{p}/", Dest),
    ("http://127.000.000.001:{p}/", Dest),
    ("http://127.0.0.1.:{p}/", Dest),
    ("http://127%2E0%2E0%2E1:{p}/", Dest),
    ("http://\u{ff11}\u{ff12}\u{ff17}.0.0.1:{p}/", Dest),
    ("http://127\u{3002}0\u{3002}0\u{3002}1:{p}/", Dest),
    ("http://127.0.0.1:{p}\\@blocked.example/", Dest),
    // "This host", which Linux connects to loopback.
    ("http://0.0.0.0:{p}/", Dest),
    ("http://0:{p}/", Dest),
    ("http://[::]:{p}/", Dest),
    // IPv6 loopback and IPv4 loopback wrapped in IPv6.
    ("http://[::1]:{p6}/", Dest),
    ("http://[0:0:0:0:0:0:0:1]:{p6}/", Dest),
    ("http://[::ffff:127.0.0.1]:{p}/", Dest),
    ("http://[::ffff:7f00:1]:{p}/", Dest),
    ("http://[0:0:0:0:0:ffff:127.0.0.1]:{p}/", Dest),
    ("http://[::127.0.0.1]:{p}/", Dest),
    ("http://[64:ff9b::127.0.0.1]:{p}/", Dest),
    // Names that resolve to loopback.
    ("http://localhost:{p}/", Dest),
    ("http://LocalHost:{p}/", Dest),
    // Credentials and other schemes never become a job.
    ("http://user:pw@127.0.0.1:{p}/", Invalid),
    ("http://user@localhost:{p}/", Invalid),
    ("http://127.0.0.1:{p}@blocked.example/", Invalid),
    ("file:///etc/passwd", Invalid),
    ("ftp://127.0.0.1:{p}/a.png", Invalid),
    ("gopher://127.0.0.1:{p}/_GET", Invalid),
    ("dict://127.0.0.1:{p}/", Invalid),
    // Blocked domains are refused before any lookup.
    ("http://img.blocked.example/a.png", Domain),
    ("http://IMG.Blocked.Example./a.png", Domain),
    ("http://blocked.example#@127.0.0.1:{p}/", Domain),
    // Redirects from an allowed server into private space, absolute and scheme-relative.
    ("{r}/to?http://127.0.0.1:{p}/", Dest),
    ("{r}/to?//127.0.0.1:{p}/", Dest),
    ("{r}/to?//localhost:{p}/", Dest),
    ("{r}/to?http://2130706433:{p}/", Dest),
    ("{r}/to?http://0x7f.1:{p}/", Dest),
    ("{r}/to?http://[::ffff:127.0.0.1]:{p}/", Dest),
    ("{r}/to?http://[::1]:{p6}/", Dest),
    ("{r}/to?http://0.0.0.0:{p}/", Dest),
    ("{r}/to?https://localhost:{p}/", Dest),
    ("{r}/to?file:///etc/passwd", Dest),
    ("{r}/to?gopher://127.0.0.1:{p}/_GET", Dest),
    ("{r}/to?http://user:pw@{r_host}/ok", Dest),
    ("{r}/to?http://img.blocked.example/", Domain),
    ("{r}/to?{r}/to?http://127.0.0.1:{p}/", Dest),
    // Too many redirects.
    ("{r}/loop", ErrorCode::TooManyRedirects),
];

#[tokio::test]
async fn hostile_urls_are_refused_with_the_right_code_and_never_connect() {
    let target = TestServer::always(Reply::ok(GIF, "image/gif")).await;
    let target6 =
        TestServer::start_on("[::1]:0".parse().unwrap(), |_| Reply::ok(GIF, "image/gif")).await;
    let redirector = TestServer::start(|path| match path.split_once("/to?") {
        Some((_, location)) => Reply::redirect(location),
        None if path == "/loop" => Reply::redirect("/loop"),
        None => Reply::ok(GIF, "image/gif"),
    })
    .await;
    let p = target.port().to_string();
    let p6 = target6.as_ref().map_or(p.clone(), |s| s.port().to_string());
    let r_host = redirector.addr.to_string();
    let r = format!("http://{r_host}");
    let cfg = FetchConfig {
        // The listeners' ports are allowed so that every refusal below is for the address,
        // not the port; the redirector is the only endpoint allowed despite being loopback.
        allowed_ports: vec![
            80,
            443,
            target.port(),
            target6.as_ref().map_or(0, |s| s.port()),
        ],
        allowed_endpoints: vec![redirector.addr],
        domains: DomainPolicy::new(DomainList::parse("blocked.example").unwrap(), None),
        total_timeout: Duration::from_secs(3),
        ..FetchConfig::default()
    };
    let fetcher = Fetcher::new(cfg).unwrap();

    let mut urls: Vec<(String, ErrorCode)> = CASES
        .iter()
        .map(|(template, code)| {
            let url = template
                .replace("{p6}", &p6)
                .replace("{p}", &p)
                .replace("{r_host}", &r_host)
                .replace("{r}", &r);
            (url, *code)
        })
        .collect();
    for name in loopback_names_from_etc_hosts() {
        urls.push((format!("http://{name}:{p}/"), Dest));
    }
    assert!(urls.len() >= 30);

    for (raw, expected) in &urls {
        let code = match ImageUrl::parse(raw) {
            Err(err) => err.code,
            Ok(url) => match fetcher.fetch(&url).await {
                Ok(fetched) => panic!("{raw} was fetched from {:?}", fetched.remote_addr),
                Err(err) => {
                    assert!(!err.to_string().is_empty());
                    err.code()
                }
            },
        };
        assert_eq!(code, *expected, "{raw}");
    }

    assert_eq!(
        target.accepted(),
        0,
        "a refused fetch reached the IPv4 listener"
    );
    assert_eq!(
        target6.as_ref().map_or(0, TestServer::accepted),
        0,
        "a refused fetch reached the IPv6 listener"
    );
    // The control: the same listener, once allowed, is reached, so a zero above is meaningful.
    let allowed = Fetcher::new(FetchConfig {
        allowed_endpoints: vec![target.addr],
        ..FetchConfig::default()
    })
    .unwrap();
    let fetched = allowed.fetch(&target.url("/a.gif")).await.unwrap();
    assert_eq!(&fetched.bytes[..], GIF);
    assert_eq!(target.accepted(), 1);
}

#[tokio::test]
async fn refusal_messages_name_the_host_the_address_and_the_range() {
    let fetcher = Fetcher::new(FetchConfig::default()).unwrap();

    let err = fetcher
        .fetch(&image_url("http://localhost/a.png"))
        .await
        .unwrap_err();

    assert_eq!(err.code(), Dest);
    let message = err.to_string();
    assert!(
        message.contains("destination localhost is refused"),
        "{message}"
    );
    assert!(
        message.contains("is loopback (127.0.0.0/8)") || message.contains("is loopback (::1/128)"),
        "{message}"
    );
}

#[tokio::test]
async fn allow_private_does_not_relax_schemes_credentials_or_blocked_domains() {
    let fetcher = Fetcher::new(FetchConfig {
        allow_private: true,
        domains: DomainPolicy::new(DomainList::parse("blocked.example").unwrap(), None),
        ..FetchConfig::default()
    })
    .unwrap();
    let redirector =
        TestServer::start(|path| Reply::redirect(path.trim_start_matches("/to?"))).await;

    for (location, expected) in [
        ("file:///etc/passwd", Dest),
        ("http://u:p@127.0.0.1/", Dest),
        ("http://blocked.example/", Domain),
    ] {
        let err = fetcher
            .fetch(&redirector.url(&format!("/to?{location}")))
            .await
            .unwrap_err();
        assert_eq!(err.code(), expected, "{location}");
    }
}

/// Host names this machine's /etc/hosts maps to loopback (resolving them sends no packet).
fn loopback_names_from_etc_hosts() -> Vec<String> {
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    hosts
        .lines()
        .map(|line| line.split('#').next().unwrap_or_default())
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let ip: std::net::IpAddr = fields.next()?.parse().ok()?;
            ip.is_loopback()
                .then(|| fields.map(str::to_owned).collect::<Vec<_>>())
        })
        .flatten()
        .filter(|name| name.is_ascii() && !name.contains('%'))
        .collect()
}
