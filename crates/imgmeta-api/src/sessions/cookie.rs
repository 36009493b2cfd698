//! The session cookie and the request-head checks around it, as pure functions: building and
//! clearing `imgmeta_session`, finding it among a request's cookies, deciding its `Secure`
//! attribute, and telling a cross-origin sign-up or login from a same-origin one.

use axum::http::{HeaderMap, HeaderValue, header};
use imgmeta_auth::SessionToken;
use imgmeta_config::CookieSecure;
use std::net::IpAddr;
use std::time::Duration;

/// The session cookie's name.
pub(crate) const COOKIE_NAME: &str = "imgmeta_session";

/// `Set-Cookie` for a new session: readable by no script (`HttpOnly`), never sent on a
/// request another site starts (`SameSite=Strict`), for the whole API (`Path=/`), dropped by
/// the browser when the session's absolute lifetime ends, and over TLS only when `secure`.
pub(crate) fn session_cookie(token: &SessionToken, max_age: Duration, secure: bool) -> HeaderValue {
    cookie_value(token.expose(), max_age.as_secs(), secure)
}

/// `Set-Cookie` that makes the browser forget the session cookie.
pub(crate) fn cleared_cookie(secure: bool) -> HeaderValue {
    cookie_value("", 0, secure)
}

fn cookie_value(value: &str, max_age_secs: u64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{COOKIE_NAME}={value}; HttpOnly; SameSite=Strict; Path=/; Max-Age={max_age_secs}{secure}"
    ))
    .expect("a session token is base64url, always a valid header value")
}

/// Whether the cookie carries `Secure`: always, except in `auto` mode on an API listening on a
/// loopback address, which browsers reach over plain http (`http://127.0.0.1:8080`), where a
/// `Secure` cookie would never be sent back.
pub(crate) fn cookie_is_secure(mode: CookieSecure, listen: IpAddr) -> bool {
    match mode {
        CookieSecure::Always => true,
        CookieSecure::Auto => !listen.is_loopback(),
    }
}

/// The value of the first `imgmeta_session` cookie the request carries (over every `Cookie`
/// header), if any; whether it names a session is for the store to say.
pub(crate) fn presented_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE_NAME)
        .map(|(_, value)| value.trim().trim_matches('"'))
}

/// Whether a request was started by a page of another origin: its `Origin` names another host
/// (or is `null`, an opaque origin), or the browser says `Sec-Fetch-Site: cross-site`. The
/// request's own host is its `Host` header, or `forwarded_host` (a trusted proxy's
/// `X-Forwarded-Host`) when there is one. A request without either header (curl, the CLI) is
/// not a browser's cross-origin request.
pub(crate) fn is_cross_origin(headers: &HeaderMap, forwarded_host: Option<&str>) -> bool {
    if headers
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Some(origin) = origin
        .to_str()
        .ok()
        .and_then(|o| url::Url::parse(o).ok())
        .filter(|o| matches!(o.scheme(), "http" | "https"))
    else {
        return true;
    };
    let Some(origin_host) = origin.host_str() else {
        return true;
    };
    let origin_authority = match origin.port() {
        Some(port) => format!("{origin_host}:{port}"),
        None => origin_host.to_owned(),
    };
    let own = forwarded_host
        .or_else(|| headers.get(header::HOST).and_then(|h| h.to_str().ok()))
        .map(str::trim);
    // The default port may be written out in Host ("example.com:443") but never in Origin.
    let own = own.map(|h| {
        h.strip_suffix(match origin.scheme() {
            "https" => ":443",
            _ => ":80",
        })
        .unwrap_or(h)
    });
    !own.is_some_and(|own| own.eq_ignore_ascii_case(&origin_authority))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    #[test]
    fn the_session_cookie_is_http_only_strict_for_the_whole_api_and_expires() {
        let token = SessionToken::generate();
        let cookie = session_cookie(&token, Duration::from_secs(604_800), false);
        assert_eq!(
            cookie.to_str().unwrap(),
            format!(
                "imgmeta_session={}; HttpOnly; SameSite=Strict; Path=/; Max-Age=604800",
                token.expose()
            )
        );
        let secure = session_cookie(&token, Duration::from_secs(60), true);
        assert!(secure.to_str().unwrap().ends_with("; Max-Age=60; Secure"));
    }

    #[test]
    fn a_cleared_cookie_has_no_value_and_expires_at_once() {
        assert_eq!(
            cleared_cookie(true).to_str().unwrap(),
            "imgmeta_session=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0; Secure"
        );
    }

    #[test]
    fn secure_is_off_only_on_loopback_in_auto_mode() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        let any = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
        let public = "203.0.113.7".parse().unwrap();
        assert!(!cookie_is_secure(CookieSecure::Auto, v4));
        assert!(!cookie_is_secure(CookieSecure::Auto, v6));
        assert!(cookie_is_secure(CookieSecure::Auto, any));
        assert!(cookie_is_secure(CookieSecure::Auto, public));
        assert!(cookie_is_secure(CookieSecure::Always, v4));
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let h = headers(&[("cookie", "theme=dark; imgmeta_session=abc ; x=1")]);
        assert_eq!(presented_cookie(&h), Some("abc"));
        let h = headers(&[("cookie", "theme=dark"), ("cookie", "imgmeta_session=def")]);
        assert_eq!(presented_cookie(&h), Some("def"));
        let h = headers(&[("cookie", "not_imgmeta_session=abc")]);
        assert_eq!(presented_cookie(&h), None);
        assert_eq!(presented_cookie(&HeaderMap::new()), None);
    }

    #[test]
    fn only_another_origin_is_cross_origin() {
        let own = |origin: &str| {
            is_cross_origin(
                &headers(&[("host", "127.0.0.1:8080"), ("origin", origin)]),
                None,
            )
        };
        assert!(!own("http://127.0.0.1:8080"));
        assert!(own("http://127.0.0.1:8081"));
        assert!(own("http://evil.example"));
        assert!(own("null"));
        assert!(own("not a url"));
        // No Origin: not a browser's cross-origin request.
        assert!(!is_cross_origin(
            &headers(&[("host", "127.0.0.1:8080")]),
            None
        ));
        // The browser's own verdict counts even without an Origin.
        assert!(is_cross_origin(
            &headers(&[("host", "a.example"), ("sec-fetch-site", "cross-site")]),
            None
        ));
        // Default ports and case.
        let h = headers(&[
            ("host", "API.example.com:443"),
            ("origin", "https://api.example.com"),
        ]);
        assert!(!is_cross_origin(&h, None));
        // Behind a trusted proxy, the host the browser used is the forwarded one.
        let h = headers(&[
            ("host", "10.0.0.5:8080"),
            ("origin", "https://api.example.com"),
        ]);
        assert!(is_cross_origin(&h, None));
        assert!(!is_cross_origin(&h, Some("api.example.com")));
        // IPv6 literals keep their brackets on both sides.
        let h = headers(&[("host", "[::1]:8080"), ("origin", "http://[::1]:8080")]);
        assert!(!is_cross_origin(&h, None));
    }
}
