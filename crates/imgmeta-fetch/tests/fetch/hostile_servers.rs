//! Hostile servers: each ends in a clean error with the right code, within the deadline, with
//! memory bounded by the byte cap.

use crate::support::{GIF, Reply, TestServer, dev_config};
use imgmeta_domain::ErrorCode;
use imgmeta_fetch::{FetchConfig, Fetcher};
use std::io::Write;
use std::time::{Duration, Instant};

/// Generous slack over the configured deadline for a loaded CI machine.
const SLACK: Duration = Duration::from_secs(2);

#[tokio::test]
async fn a_ten_gigabyte_content_length_is_refused_before_reading_the_body() {
    let server = TestServer::always(Reply::DeclaredLength(10 * 1024 * 1024 * 1024)).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();
    let started = Instant::now();

    let err = fetcher.fetch(&server.url("/huge.gif")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert!(err.to_string().contains("10737418240 bytes"), "{err}");
    // The server never sends the body, so only refusing on the header can finish early.
    assert!(
        started.elapsed() < dev_config().total_timeout,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_endless_chunked_body_is_cut_off_at_the_byte_cap() {
    let server = TestServer::always(Reply::EndlessChunked).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();
    let started = Instant::now();

    let err = fetcher.fetch(&server.url("/endless")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::TooLarge);
    assert!(
        started.elapsed() < dev_config().total_timeout,
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_body_of_exactly_the_cap_is_accepted_and_one_byte_more_is_not() {
    let cap = 64 * 1024;
    let cfg = FetchConfig {
        max_bytes: cap as u64,
        ..dev_config()
    };
    let exact = TestServer::always(Reply::ok(&vec![7u8; cap], "image/png")).await;
    let over = TestServer::always(Reply::ok(&vec![7u8; cap + 1], "image/png")).await;
    let fetcher = Fetcher::new(cfg).unwrap();

    assert_eq!(
        fetcher.fetch(&exact.url("/a")).await.unwrap().bytes.len(),
        cap
    );
    let err = fetcher.fetch(&over.url("/a")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::TooLarge);
}

#[tokio::test]
async fn a_one_byte_per_second_drip_hits_the_total_deadline() {
    let server = TestServer::always(Reply::Drip(Duration::from_secs(1))).await;
    let cfg = dev_config();
    let fetcher = Fetcher::new(cfg.clone()).unwrap();
    let started = Instant::now();

    let err = fetcher.fetch(&server.url("/drip")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::Timeout);
    assert!(err.is_retryable());
    let elapsed = started.elapsed();
    assert!(
        elapsed >= cfg.total_timeout && elapsed < cfg.total_timeout + SLACK,
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_hits_the_total_deadline() {
    let server = TestServer::always(Reply::Silent).await;
    let cfg = dev_config();
    let fetcher = Fetcher::new(cfg.clone()).unwrap();
    let started = Instant::now();

    let err = fetcher.fetch(&server.url("/silent")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::Timeout);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= cfg.total_timeout && elapsed < cfg.total_timeout + SLACK,
        "{elapsed:?}"
    );
}

#[tokio::test]
async fn a_gzip_encoded_body_comes_back_as_the_raw_gzip_bytes() {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(GIF).unwrap();
    let gzipped = encoder.finish().unwrap();
    let server = TestServer::always(Reply::Full {
        status: 200,
        headers: vec![
            ("Content-Type", "image/gif".to_owned()),
            ("Content-Encoding", "gzip".to_owned()),
        ],
        body: gzipped.clone(),
    })
    .await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let fetched = fetcher.fetch(&server.url("/a.gif")).await.unwrap();

    // Not decompressed: the decoder downstream sees gzip magic (1f 8b), not an image.
    assert_eq!(fetched.bytes.to_vec(), gzipped);
    assert_eq!(&fetched.bytes[..2], &[0x1f, 0x8b]);
}

#[tokio::test]
async fn a_text_html_response_is_returned_untouched_for_the_decoder_to_judge_by_magic_bytes() {
    let html = b"<!doctype html><title>not an image</title>";
    let server = TestServer::always(Reply::ok(html, "text/html; charset=utf-8")).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let fetched = fetcher.fetch(&server.url("/page")).await.unwrap();

    assert_eq!(&fetched.bytes[..], html);
    assert_eq!(
        fetched.content_type.as_deref(),
        Some("text/html; charset=utf-8")
    );
}

#[tokio::test]
async fn a_body_cut_short_fails_with_fetch_failed_which_is_retryable() {
    let server = TestServer::always(Reply::Truncated {
        declared: 1000,
        sent: 10,
    })
    .await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher.fetch(&server.url("/short")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::FetchFailed, "{err}");
    assert!(err.is_retryable());
}
