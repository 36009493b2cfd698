//! HTTPS image hosts: a certificate the client refuses (an unknown issuer, here a self-signed
//! one) fails the fetch with `tls_failed`, which is not retried; a host that breaks the
//! connection mid-handshake stays a retryable `fetch_failed`.

use crate::support::dev_config;
use imgmeta_domain::{ErrorCode, ImageUrl};
use imgmeta_fetch::Fetcher;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// An HTTPS server on loopback whose certificate is self-signed for `localhost`.
async fn self_signed_server() -> u16 {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let provider = Arc::new(tokio_rustls::rustls::crypto::aws_lc_rs::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![certified.cert.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
                certified.signing_key.serialize_der(),
            )),
        )
        .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let _ = acceptor.accept(socket).await;
            });
        }
    });
    port
}

#[tokio::test]
async fn a_refused_certificate_fails_with_tls_failed_and_is_not_retried() {
    let port = self_signed_server().await;
    let fetcher = Fetcher::new(dev_config()).unwrap();
    for host in ["localhost", "127.0.0.1"] {
        let url = ImageUrl::parse(&format!("https://{host}:{port}/cat.png")).unwrap();
        let err = fetcher.fetch(&url).await.unwrap_err();
        assert_eq!(err.code(), ErrorCode::TlsFailed, "{host}: {err}");
        assert!(!err.is_retryable());
        assert!(err.to_string().contains("certificate"), "{err}");
    }
}

#[tokio::test]
async fn a_connection_closed_during_the_handshake_is_still_retried() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            drop(socket);
        }
    });
    let fetcher = Fetcher::new(dev_config()).unwrap();
    let url = ImageUrl::parse(&format!("https://127.0.0.1:{port}/cat.png")).unwrap();
    let err = fetcher.fetch(&url).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::FetchFailed, "{err}");
    assert!(err.is_retryable());
}
