//! `FetchConfig`: every limit and policy knob of the fetcher, with secure defaults.

use crate::DomainPolicy;
use std::net::SocketAddr;
use std::time::Duration;

/// How the fetcher behaves. `FetchConfig::default()` is the production setting; tests and local
/// development relax it explicitly, never by accident.
#[derive(Debug, Clone)]
pub struct FetchConfig {
    /// Lets destinations in loopback and private-use space (127/8, 10/8, 172.16/12,
    /// 192.168/16, ::1, fc00::/7) be fetched, on any port. For local development and tests
    /// only (`IMGMETA_FETCH_ALLOW_PRIVATE`); off by default, and a `Fetcher` built with it on
    /// logs a warning. Link-local (cloud metadata), multicast and the other reserved ranges
    /// stay blocked, and every non-address rule (scheme, credentials, domains) still applies.
    pub allow_private: bool,
    /// Destination ports a globally routable address may be fetched on.
    pub allowed_ports: Vec<u16>,
    /// Exact socket addresses that may be fetched even though the address or port rules would
    /// refuse them: an internal image store, or a test server on loopback while its neighbour
    /// on the next port stays refused. Empty by default.
    pub allowed_endpoints: Vec<SocketAddr>,
    /// Longest wait for a TCP (and TLS) connection to one address.
    pub connect_timeout: Duration,
    /// Deadline for the whole fetch: DNS, every redirect hop and the whole body. A server that
    /// drips bytes slowly runs into it.
    pub total_timeout: Duration,
    /// Largest body accepted, in bytes; a larger `Content-Length` is refused before reading.
    pub max_bytes: u64,
    /// Most redirects followed before giving up with `too_many_redirects`.
    pub max_redirects: u8,
    pub user_agent: String,
    /// Checked on the submitted host and again on every redirect hop.
    pub domains: DomainPolicy,
    /// Longest a fetch waits, over all its hops together, for its hosts' turns under the
    /// per-host rate limit (when the fetcher has a `HostGate`). A turn further away fails the
    /// fetch with the retryable `host_rate_limited` instead, so a busy host never holds a worker
    /// sleeping; the worker runs the job again when the host is free.
    pub max_host_wait: Duration,
}

impl FetchConfig {
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
    pub const DEFAULT_TOTAL_TIMEOUT: Duration = Duration::from_secs(15);
    pub const DEFAULT_MAX_BYTES: u64 = 20 * 1024 * 1024;
    pub const DEFAULT_MAX_REDIRECTS: u8 = 5;
    pub const DEFAULT_PORTS: [u16; 2] = [80, 443];
    /// Long enough that ordinary pacing (a few fetches queued on one host) is waited out in
    /// place, short enough that a fan-in on one host cannot park every worker slot on it.
    pub const DEFAULT_MAX_HOST_WAIT: Duration = Duration::from_secs(5);
}

impl Default for FetchConfig {
    fn default() -> Self {
        Self {
            allow_private: false,
            allowed_ports: Self::DEFAULT_PORTS.to_vec(),
            allowed_endpoints: Vec::new(),
            connect_timeout: Self::DEFAULT_CONNECT_TIMEOUT,
            total_timeout: Self::DEFAULT_TOTAL_TIMEOUT,
            max_bytes: Self::DEFAULT_MAX_BYTES,
            max_redirects: Self::DEFAULT_MAX_REDIRECTS,
            user_agent: concat!("imgmeta/", env!("CARGO_PKG_VERSION")).to_owned(),
            domains: DomainPolicy::default(),
            max_host_wait: Self::DEFAULT_MAX_HOST_WAIT,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_5s_connect_15s_total_20mib_5_redirects_ports_80_443_no_private() {
        let cfg = FetchConfig::default();
        assert_eq!(cfg.connect_timeout, Duration::from_secs(5));
        assert_eq!(cfg.total_timeout, Duration::from_secs(15));
        assert_eq!(cfg.max_bytes, 20 * 1024 * 1024);
        assert_eq!(cfg.max_redirects, 5);
        assert_eq!(cfg.allowed_ports, vec![80, 443]);
        assert!(!cfg.allow_private);
        assert!(cfg.allowed_endpoints.is_empty());
        assert_eq!(cfg.domains, DomainPolicy::allow_all());
        assert_eq!(cfg.max_host_wait, Duration::from_secs(5));
    }
}
