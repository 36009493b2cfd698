//! Redirects are followed by our code: every kind of location works, the hop limit holds and
//! malformed redirects fail cleanly.

use crate::support::{GIF, Reply, TestServer, dev_config, image_url};
use imgmeta_domain::ErrorCode;
use imgmeta_fetch::{FetchConfig, Fetcher};

/// `/chain/N` redirects to `/chain/N-1`; `/chain/0` serves the image.
async fn chain_server() -> TestServer {
    TestServer::start(|path| {
        let n: u32 = path.trim_start_matches("/chain/").parse().unwrap_or(0);
        if n == 0 {
            Reply::ok(GIF, "image/gif")
        } else {
            Reply::redirect(format!("/chain/{}", n - 1))
        }
    })
    .await
}

#[tokio::test]
async fn a_chain_of_five_redirects_is_followed_to_the_image() {
    let server = chain_server().await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let fetched = fetcher.fetch(&server.url("/chain/5")).await.unwrap();

    assert_eq!(&fetched.bytes[..], GIF);
    assert_eq!(fetched.redirects, 5);
    assert_eq!(fetched.final_url.path(), "/chain/0");
    assert_eq!(server.accepted(), 6);
}

#[tokio::test]
async fn a_sixth_redirect_fails_with_too_many_redirects_without_following_it() {
    let server = chain_server().await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher.fetch(&server.url("/chain/6")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::TooManyRedirects);
    assert!(!err.is_retryable());
    assert_eq!(
        server.accepted(),
        6,
        "the sixth redirect must not be followed"
    );
}

#[tokio::test]
async fn the_redirect_limit_is_configurable_down_to_none() {
    let server = chain_server().await;
    let fetcher = Fetcher::new(FetchConfig {
        max_redirects: 0,
        ..dev_config()
    })
    .unwrap();

    assert!(fetcher.fetch(&server.url("/chain/0")).await.is_ok());
    let err = fetcher.fetch(&server.url("/chain/1")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::TooManyRedirects);
}

#[tokio::test]
async fn absolute_relative_and_scheme_relative_locations_and_every_redirect_status_work() {
    let server = TestServer::start(|path| match path {
        "/image" => Reply::ok(GIF, "image/gif"),
        "/relative" => Reply::redirect("image"),
        "/absolute-path" => Reply::redirect("/image"),
        other => {
            let (status, location) = other.trim_start_matches('/').split_once('/').unwrap();
            Reply::Redirect {
                status: status.parse().unwrap(),
                location: location.replace('_', "/"),
            }
        }
    })
    .await;
    let authority = server.addr.to_string();
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let mut paths = vec!["/relative".to_owned(), "/absolute-path".to_owned()];
    for status in [301, 302, 303, 307, 308] {
        paths.push(format!("/{status}/http:__{authority}_image"));
        paths.push(format!("/{status}/__{authority}_image"));
    }
    paths.push(format!("/302/http:__localhost:{}_image", server.port()));
    for path in paths {
        let fetched = fetcher
            .fetch(&server.url(&path))
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(&fetched.bytes[..], GIF, "{path}");
        assert_eq!(fetched.redirects, 1, "{path}");
        assert_eq!(fetched.final_url.path(), "/image", "{path}");
    }
}

#[tokio::test]
async fn a_redirect_without_a_location_fails_with_http_status() {
    let server = TestServer::always(Reply::Full {
        status: 302,
        headers: vec![],
        body: vec![],
    })
    .await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher.fetch(&server.url("/a.png")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::HttpStatus);
    assert!(
        err.to_string().contains("without a Location header"),
        "{err}"
    );
}

#[tokio::test]
async fn a_redirect_to_an_unparseable_location_fails_with_invalid_url() {
    let server = TestServer::always(Reply::redirect("http://[not-an-ip/")).await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher.fetch(&server.url("/a.png")).await.unwrap_err();

    assert_eq!(err.code(), ErrorCode::InvalidUrl);
}

#[tokio::test]
async fn a_304_is_not_followed_and_fails_with_http_status() {
    let server = TestServer::always(Reply::Redirect {
        status: 304,
        location: "/elsewhere".to_owned(),
    })
    .await;
    let fetcher = Fetcher::new(dev_config()).unwrap();

    let err = fetcher
        .fetch(&image_url(server.url("/a").as_str()))
        .await
        .unwrap_err();

    assert_eq!(err.code(), ErrorCode::HttpStatus);
}
