//! The TLS client configuration, built once per `Fetcher`.
//!
//! Every hop gets its own pinned reqwest client, and a client left to build its own TLS
//! configuration loads and parses the system's root certificates each time (about 5 ms of CPU
//! per hop, measured). Building the configuration once and handing each client a clone keeps
//! the same verification (the platform verifier over the system roots) at no per-hop cost.

use crate::FetchError;
use std::sync::Arc;

pub(crate) fn client_config() -> Result<rustls::ClientConfig, FetchError> {
    let boxed = |err: rustls::Error| FetchError::Client(Box::new(err));
    let provider = rustls::crypto::CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::aws_lc_rs::default_provider()));
    let verifier = rustls_platform_verifier::Verifier::new(provider.clone()).map_err(boxed)?;
    // `dangerous()` is only rustls's door to a custom verifier; the platform verifier performs
    // full WebPKI verification against the system roots, as reqwest itself would.
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(boxed)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    // The clients speak HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
