//! Security logging for refusals, and scrubbing of user-supplied text before it reaches a log
//! line or an error message.

use crate::FetchError;

/// Longest user-supplied value kept in a message, in characters.
const MAX_SHOWN_CHARS: usize = 512;

/// Drops control characters (so a URL or header cannot forge log lines or terminal escapes)
/// and truncates very long values.
pub(crate) fn clean(raw: &str) -> String {
    let mut out: String = raw
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_SHOWN_CHARS)
        .collect();
    if raw.chars().count() > MAX_SHOWN_CHARS {
        out.push('…');
    }
    out
}

/// A URL as messages and logs show it: scheme, host, port and path, never the query (signed
/// URLs carry their secrets there; `?…` says one was left out), the fragment or credentials.
pub(crate) fn shown_url(url: &url::Url) -> String {
    let mut shown = format!("{}://{}", url.scheme(), url.host_str().unwrap_or(""));
    if let Some(port) = url.port() {
        shown.push_str(&format!(":{port}"));
    }
    shown.push_str(url.path());
    if url.query().is_some() {
        shown.push_str("?…");
    }
    clean(&shown)
}

/// Emits one structured security event for a refused destination or domain; other failures
/// are logged by whoever handles the job's outcome.
pub(crate) fn log_refusal(err: &FetchError) {
    match err {
        FetchError::BlockedAddress {
            host,
            address,
            reason,
        } => tracing::warn!(
            kind = "security",
            event = "blocked_destination",
            host = %clean(host),
            address = %address,
            reason = %reason,
            "refused to fetch: {err}"
        ),
        FetchError::BlockedPort { host, port } => tracing::warn!(
            kind = "security",
            event = "blocked_destination",
            host = %clean(host),
            port,
            reason = "port not allowed",
            "refused to fetch: {err}"
        ),
        FetchError::BlockedScheme { .. } | FetchError::BlockedCredentials { .. } => {
            tracing::warn!(
                kind = "security",
                event = "blocked_destination",
                reason = %err,
                "refused to fetch: {err}"
            )
        }
        FetchError::BlockedDomain(refusal) => tracing::warn!(
            kind = "security",
            event = "blocked_domain",
            reason = %refusal,
            "refused to fetch: {err}"
        ),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_removed_and_long_values_truncated() {
        assert_eq!(clean("evil\r\nFAKE LOG\u{1b}[31m"), "evilFAKE LOG[31m");
        let long = "a".repeat(MAX_SHOWN_CHARS + 10);
        assert_eq!(clean(&long).chars().count(), MAX_SHOWN_CHARS + 1);
    }
}

#[cfg(test)]
mod shown_url_tests {
    use super::shown_url;

    #[test]
    fn queries_fragments_and_credentials_never_show() {
        let url =
            url::Url::parse("https://user:pw@cdn.example:8443/a/b.jpg?X-Amz-Signature=secret#frag")
                .unwrap();
        assert_eq!(shown_url(&url), "https://cdn.example:8443/a/b.jpg?…");
        let plain = url::Url::parse("http://example.com/a.jpg").unwrap();
        assert_eq!(shown_url(&plain), "http://example.com/a.jpg");
    }
}
