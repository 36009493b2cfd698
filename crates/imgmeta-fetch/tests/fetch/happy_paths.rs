//! Well-behaved servers: bytes come back, statuses map to the right codes, redirects work.

use crate::support::{GIF, Reply, TestServer, dev_config};
use imgmeta_domain::ErrorCode;
use imgmeta_fetch::Fetcher;

#[tokio::test]
async fn a_200_response_returns_the_exact_bytes_and_metadata() {
    let server = TestServer::always(Reply::ok(GIF, "image/gif")).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let fetched = fetcher.fetch(&server.url("/cat.gif")).await.unwrap();

    assert_eq!(&fetched.bytes[..], GIF);
    assert_eq!(fetched.content_type.as_deref(), Some("image/gif"));
    assert_eq!(fetched.redirects, 0);
    assert_eq!(fetched.remote_addr, Some(server.addr));
    assert_eq!(fetched.final_url.as_str(), server.url("/cat.gif").as_str());
}

#[tokio::test]
async fn a_404_fails_with_http_status_and_is_not_retryable() {
    let server = TestServer::always(Reply::status(404)).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher
        .fetch(&server.url("/missing.png"))
        .await
        .unwrap_err();

    assert_eq!(err.code(), ErrorCode::HttpStatus);
    assert!(!err.is_retryable());
    assert!(err.to_string().contains("HTTP 404"), "{err}");
}

#[tokio::test]
async fn a_503_and_a_429_fail_with_upstream_unavailable_which_is_retryable() {
    for status in [503, 429, 500] {
        let server = TestServer::always(Reply::status(status)).await;
        let fetcher = Fetcher::new(dev_config()).unwrap();

        let err = fetcher.fetch(&server.url("/busy.png")).await.unwrap_err();

        assert_eq!(err.code(), ErrorCode::UpstreamUnavailable, "{status}");
        assert!(err.is_retryable());
    }
}

#[tokio::test]
async fn an_empty_body_is_refused_as_not_an_image() {
    let server = TestServer::always(Reply::ok(b"", "image/png")).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher.fetch(&server.url("/empty.png")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::NotAnImage);
}

#[tokio::test]
async fn a_refused_connection_fails_with_fetch_failed_which_is_retryable() {
    let closed_port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let fetcher = Fetcher::new(dev_config()).unwrap();
    let url = crate::support::image_url(&format!("http://127.0.0.1:{closed_port}/a.png"));

    let err = fetcher.fetch(&url).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::FetchFailed, "{err}");
    assert!(err.is_retryable());
}

#[tokio::test]
async fn localhost_resolves_once_and_is_fetched_when_private_destinations_are_allowed() {
    let server = TestServer::always(Reply::ok(GIF, "image/gif")).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();
    let url = crate::support::image_url(&format!("http://localhost:{}/a.gif", server.port()));

    let fetched = fetcher.fetch(&url).await.unwrap();

    assert_eq!(&fetched.bytes[..], GIF);
    assert_eq!(fetched.remote_addr, Some(server.addr));
}

#[tokio::test]
async fn a_tls_handshake_that_never_completes_hits_the_connect_timeout() {
    // The plain-HTTP test server waits for a request line that a TLS client never sends.
    let server = TestServer::always(Reply::ok(GIF, "image/gif")).await;
    let cfg = dev_config();
    let fetcher = Fetcher::new(cfg.clone()).unwrap();
    let url = crate::support::image_url(&format!("https://127.0.0.1:{}/a.gif", server.port()));
    let started = std::time::Instant::now();

    let err = fetcher.fetch(&url).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::Timeout, "{err}");
    assert!(err.to_string().contains("connecting"), "{err}");
    assert!(
        started.elapsed() < cfg.total_timeout,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(server.accepted(), 1);
}
