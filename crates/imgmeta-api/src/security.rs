//! The API's security configuration: authentication, key sign-up, the in-flight cap, inbound
//! request limits and the destination policy applied at submission.

use imgmeta_config::SecuritySettings;
use imgmeta_domain::{ErrorBody, ErrorCode, ImageUrl};
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// Whether a job's URL may be fetched at all, decided without network access (domain lists,
/// and IP-literal destinations). Implemented over the fetcher's own policy by the binary, so
/// the API refuses at submission exactly what workers would refuse later.
pub trait DestinationPolicy: Send + Sync {
    fn check(&self, url: &ImageUrl) -> Result<(), ErrorBody>;
}

/// Limits on what a client may send before a handler runs.
#[derive(Debug, Clone, Copy)]
pub struct InboundLimits {
    /// Time allowed for the request line and headers; a slower client is disconnected.
    pub header_read_timeout: Duration,
    /// Time allowed for the whole body after the headers; a slower client gets 408.
    pub body_read_timeout: Duration,
    /// Longest request target (path and query), in bytes; longer gets 414.
    pub max_url_bytes: usize,
    /// Largest uploaded image (`POST /v1/jobs` with an `image/*` or multipart body); larger
    /// gets 413.
    pub max_upload_bytes: usize,
    /// Most header fields in one request; more gets 431.
    pub max_headers: usize,
    /// Largest request head (request line and headers), in bytes; larger gets 431.
    pub max_head_bytes: usize,
    /// Most open client connections; idle ones are closed first when it is reached.
    pub max_connections: usize,
    /// Time allowed to write a response to a client that does not read it.
    pub response_write_timeout: Duration,
    /// How long a kept-alive connection may wait idle for its next request.
    pub keep_alive_idle: Duration,
}

impl InboundLimits {
    pub const MAX_HEADERS: usize = 64;
    pub const MAX_HEAD_BYTES: usize = 32 * 1024;
}

#[derive(Clone)]
pub struct Security {
    pub auth_enabled: bool,
    pub admin_token: Option<SecretString>,
    pub default_rate_per_minute: u32,
    pub default_daily_quota: u32,
    pub default_retention_days: u32,
    /// Permits for requests in flight in this process.
    pub in_flight: Arc<Semaphore>,
    pub max_in_flight: usize,
    /// The in-flight places each key (or, without a key, each client address) may hold.
    pub(crate) shares: Arc<crate::shares::Shares>,
    /// Bearer keys this process has verified (their lookup is skipped on later requests).
    pub(crate) known_keys: crate::known_keys::KnownKeys,
    /// Rate-limit tokens busy keys took ahead (their next requests run no statement).
    pub token_leases: crate::token_leases::TokenLeases,
    pub max_in_flight_per_key: usize,
    pub max_in_flight_per_address: usize,
    /// Proxies whose `X-Forwarded-For` names the client.
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Permits for uploads being read in this process (each may hold `max_upload_bytes`).
    pub uploads: Arc<Semaphore>,
    pub max_uploads_in_flight: usize,
    pub inbound: InboundLimits,
    pub destinations: Option<Arc<dyn DestinationPolicy>>,
}

impl Security {
    pub fn from_settings(
        settings: &SecuritySettings,
        destinations: Option<Arc<dyn DestinationPolicy>>,
    ) -> Self {
        Self {
            auth_enabled: settings.auth_enabled,
            admin_token: settings.admin_token.clone(),
            default_rate_per_minute: settings.default_rate_per_minute,
            default_daily_quota: settings.default_daily_quota,
            default_retention_days: settings.default_retention_days,
            in_flight: Arc::new(Semaphore::new(settings.max_in_flight)),
            max_in_flight: settings.max_in_flight,
            shares: Arc::default(),
            known_keys: crate::known_keys::KnownKeys::default(),
            token_leases: crate::token_leases::TokenLeases::default(),
            max_in_flight_per_key: settings.max_in_flight_per_key,
            max_in_flight_per_address: settings.max_in_flight_per_address,
            trusted_proxies: settings.trusted_proxies.clone(),
            uploads: Arc::new(Semaphore::new(settings.max_uploads_in_flight)),
            max_uploads_in_flight: settings.max_uploads_in_flight,
            inbound: InboundLimits {
                header_read_timeout: settings.header_read_timeout,
                body_read_timeout: settings.body_read_timeout,
                max_url_bytes: settings.max_url_bytes,
                max_upload_bytes: settings.max_upload_bytes,
                max_headers: InboundLimits::MAX_HEADERS,
                max_head_bytes: InboundLimits::MAX_HEAD_BYTES
                    .max(settings.max_url_bytes + 16 * 1024),
                max_connections: crate::server::connection_cap(settings.max_connections),
                response_write_timeout: settings.response_write_timeout,
                keep_alive_idle: settings.keep_alive_idle,
            },
            destinations,
        }
    }

    /// The fetch policy's refusal of `url`, without a log line (a batch logs its refusals
    /// once, counted, rather than once per line).
    pub(crate) fn destination_refusal(&self, url: &ImageUrl) -> Option<ErrorBody> {
        self.destinations.as_ref()?.check(url).err()
    }

    /// Refuses a URL the fetch policy would refuse: `403 blocked_domain` or
    /// `403 blocked_destination` (a 400 for a URL the policy cannot read), with a security event.
    pub(crate) fn check_destination(&self, url: &ImageUrl) -> Result<(), crate::ApiError> {
        let Some(policy) = &self.destinations else {
            return Ok(());
        };
        policy.check(url).map_err(|refusal| {
            let status = match refusal.code {
                ErrorCode::BlockedDomain | ErrorCode::BlockedDestination => {
                    axum::http::StatusCode::FORBIDDEN
                }
                _ => axum::http::StatusCode::BAD_REQUEST,
            };
            tracing::warn!(
                kind = "security",
                event = %refusal.code,
                host = %imgmeta_auth::clean(url.host_str()),
                reason = %imgmeta_auth::clean(&refusal.message),
                "submission refused by the destination policy"
            );
            crate::ApiError::new(status, refusal.code, refusal.message)
        })
    }
}
