//! `ImageUrl`: an absolute http(s) URL with a host, no credentials, of bounded length.

use crate::{ErrorCode, ValidationError};
use serde::{Deserialize, Serialize};

/// Longest URL accepted, in bytes of its submitted form.
pub const MAX_URL_LEN: usize = 2048;

/// An image URL that passed syntactic validation. Whether its destination may be fetched
/// (address policy, domain policy) is decided later by the fetcher, since DNS can change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ImageUrl(url::Url);

impl ImageUrl {
    pub fn parse(raw: &str) -> Result<Self, ValidationError> {
        let invalid = |msg: String| ValidationError::new(ErrorCode::InvalidUrl, msg);
        if raw.len() > MAX_URL_LEN {
            return Err(invalid(format!(
                "url is {} characters long; at most {MAX_URL_LEN} are accepted",
                raw.len()
            )));
        }
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            return Err(invalid("url is empty".into()));
        }
        let url =
            url::Url::parse(trimmed).map_err(|e| invalid(format!("url does not parse: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "url scheme must be http or https, not {:?}",
                url.scheme()
            )));
        }
        if url.host().is_none() {
            return Err(invalid("url has no host".into()));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid("url must not carry credentials".into()));
        }
        Ok(Self(url))
    }

    pub fn as_url(&self) -> &url::Url {
        &self.0
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The host for logs and per-host limits.
    pub fn host_str(&self) -> &str {
        self.0.host_str().unwrap_or_default()
    }

    /// The URL cache's key: the URL in its normalised form (the parser already lower-cases
    /// the scheme and host, drops a default port and an empty path's absence), without its
    /// fragment, which is never sent to the server; the query is kept, since it may select
    /// another image.
    pub fn cache_key(&self) -> String {
        let mut url = self.0.clone();
        url.set_fragment(None);
        url.into()
    }
}

impl std::fmt::Display for ImageUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.as_str())
    }
}

impl<'de> Deserialize<'de> for ImageUrl {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_cache_key_normalises_scheme_host_port_and_fragment_but_keeps_the_query() {
        let key = |raw: &str| ImageUrl::parse(raw).unwrap().cache_key();
        assert_eq!(
            key("HTTPS://Example.COM:443/a/B.jpg?x=1&Y=2#top"),
            "https://example.com/a/B.jpg?x=1&Y=2"
        );
        assert_eq!(key("http://example.com:80"), "http://example.com/");
        assert_eq!(
            key("http://example.com:8080/a"),
            "http://example.com:8080/a"
        );
        assert_ne!(
            key("http://example.com/a?x=1"),
            key("http://example.com/a?x=2")
        );
    }

    use super::*;

    #[test]
    fn http_and_https_urls_are_accepted() {
        assert!(ImageUrl::parse("http://example.com/a.jpg").is_ok());
        assert!(ImageUrl::parse("https://example.com:8443/a.jpg?x=1").is_ok());
    }

    #[test]
    fn other_schemes_are_rejected() {
        for raw in [
            "ftp://example.com/a",
            "file:///etc/passwd",
            "gopher://x/",
            "data:image/png;base64,AA",
        ] {
            let err = ImageUrl::parse(raw).unwrap_err();
            assert_eq!(err.code, ErrorCode::InvalidUrl, "{raw}");
        }
    }

    #[test]
    fn overlong_urls_are_rejected() {
        let raw = format!("http://example.com/{}", "a".repeat(MAX_URL_LEN));
        assert_eq!(
            ImageUrl::parse(&raw).unwrap_err().code,
            ErrorCode::InvalidUrl
        );
        let exact = format!("http://e.com/{}", "a".repeat(MAX_URL_LEN - 13));
        assert_eq!(exact.len(), MAX_URL_LEN);
        assert!(ImageUrl::parse(&exact).is_ok());
    }

    #[test]
    fn garbage_and_credentials_are_rejected() {
        for raw in [
            "",
            "   ",
            "not a url",
            "http://",
            "http://user:pw@example.com/a.png",
            "http://user@example.com/",
        ] {
            assert!(ImageUrl::parse(raw).is_err(), "{raw:?}");
        }
    }
}
