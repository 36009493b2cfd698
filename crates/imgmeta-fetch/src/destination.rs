//! Where a URL may be fetched from: the URL rules (scheme, credentials, length, domain policy)
//! and the address rules (address policy, ports, allowed endpoints) applied to every resolved
//! address. Resolution happens once, here, and the fetcher connects only to what passed.

use crate::log::clean;
use crate::{FetchConfig, FetchError, check_ip};
use std::net::{IpAddr, SocketAddr};
use url::{Host, Url};

/// A URL that passed the URL rules: its host, port and, for IP literals, the address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Target {
    /// The host as `url::Url::host_str` spells it (brackets around IPv6).
    pub host: String,
    pub port: u16,
    /// `Some` when the host is an IP literal in any spelling the URL parser accepts (decimal,
    /// hex, octal, short forms, IPv6, IPv4-mapped): no DNS is involved, so it is checked here.
    pub literal: Option<IpAddr>,
}

/// Applies every rule that needs no DNS. IP-literal hosts get the full address check too.
pub(crate) fn check_url(cfg: &FetchConfig, url: &Url) -> Result<Target, FetchError> {
    let shown = || crate::log::shown_url(url);
    if url.as_str().len() > imgmeta_domain::MAX_URL_LEN {
        return Err(FetchError::InvalidUrl {
            url: shown(),
            problem: format!(
                "the URL is longer than {} bytes",
                imgmeta_domain::MAX_URL_LEN
            ),
        });
    }
    if !matches!(url.scheme(), "http" | "https") {
        return Err(FetchError::BlockedScheme {
            url: shown(),
            scheme: clean(url.scheme()),
        });
    }
    if !url.username().is_empty() || url.password().is_some() {
        // The credentials themselves never reach a message or a log.
        let mut redacted = url.clone();
        let _ = redacted.set_username("");
        let _ = redacted.set_password(None);
        return Err(FetchError::BlockedCredentials {
            url: crate::log::shown_url(&redacted),
        });
    }
    let (host, literal) = match url.host() {
        Some(Host::Domain(domain)) => (domain.to_owned(), None),
        Some(Host::Ipv4(ip)) => (ip.to_string(), Some(IpAddr::V4(ip))),
        Some(Host::Ipv6(ip)) => (format!("[{ip}]"), Some(IpAddr::V6(ip))),
        None => {
            return Err(FetchError::InvalidUrl {
                url: shown(),
                problem: "the URL has no host".to_owned(),
            });
        }
    };
    let Some(port) = url.port_or_known_default() else {
        return Err(FetchError::InvalidUrl {
            url: shown(),
            problem: "the URL has no port".to_owned(),
        });
    };
    cfg.domains.check(&host)?;
    if let Some(ip) = literal {
        check_socket_addr(cfg, &host, SocketAddr::new(ip, port))?;
    }
    Ok(Target {
        host,
        port,
        literal,
    })
}

/// The address rules for one address the target resolved to.
pub(crate) fn check_socket_addr(
    cfg: &FetchConfig,
    host: &str,
    addr: SocketAddr,
) -> Result<(), FetchError> {
    let ip = addr.ip().to_canonical();
    let is_endpoint =
        |allowed: &SocketAddr| allowed.port() == addr.port() && allowed.ip().to_canonical() == ip;
    if cfg.allowed_endpoints.iter().any(is_endpoint) {
        return Ok(());
    }
    match check_ip(addr.ip()) {
        Err(reason) if cfg.allow_private && reason.kind.relaxed_by_allow_private() => Ok(()),
        Err(reason) => Err(FetchError::BlockedAddress {
            host: host.to_owned(),
            address: addr.ip(),
            reason,
        }),
        Ok(()) if cfg.allowed_ports.contains(&addr.port()) => Ok(()),
        Ok(()) => Err(FetchError::BlockedPort {
            host: host.to_owned(),
            port: addr.port(),
        }),
    }
}

/// Resolves the target once and checks every address; refuses if any one is refused, since a
/// connection could go to any of them.
pub(crate) async fn resolve(
    cfg: &FetchConfig,
    target: &Target,
) -> Result<Vec<SocketAddr>, FetchError> {
    if let Some(ip) = target.literal {
        // Already checked by `check_url`.
        return Ok(vec![SocketAddr::new(ip, target.port)]);
    }
    let found = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|source| FetchError::Resolve {
            host: target.host.clone(),
            source,
        })?;
    let mut addrs: Vec<SocketAddr> = Vec::new();
    for addr in found {
        check_socket_addr(cfg, &target.host, addr)?;
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    if addrs.is_empty() {
        return Err(FetchError::NoAddresses {
            host: target.host.clone(),
        });
    }
    Ok(addrs)
}

#[cfg(test)]
#[path = "destination_tests.rs"]
mod tests;
