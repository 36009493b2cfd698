//! Wiring the security settings into the processes: the domain policy for the fetcher and the
//! API, the API's security state, the per-host fetch gate for workers, and the first key that
//! `imgmeta up` creates.

use imgmeta_api::{DestinationPolicy, KeyRequest, Security};
use imgmeta_config::Settings;
use imgmeta_domain::{ErrorBody, ImageUrl};
use imgmeta_fetch::{DomainPolicy, Fetcher};
use imgmeta_pipeline::{GateFuture, HostBusy, HostGate, host_key};
use imgmeta_store::Store;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The block and allow lists from `IMGMETA_BLOCKED_DOMAINS[_FILE]` and
/// `IMGMETA_ALLOWED_DOMAINS[_FILE]`; an invalid entry stops the process at start.
pub fn domain_policy(settings: &Settings) -> anyhow::Result<DomainPolicy> {
    let security = &settings.security;
    let policy = DomainPolicy::parse(
        &security.blocked_domains,
        security.allowed_domains.as_deref(),
    )?;
    Ok(policy)
}

/// The fetcher's own network-free checks (scheme, credentials, port, domain lists and
/// IP-literal addresses), applied at submission.
struct FetchPolicy(Fetcher);

impl DestinationPolicy for FetchPolicy {
    fn check(&self, url: &ImageUrl) -> Result<(), ErrorBody> {
        self.0.precheck(url).map_err(|e| e.to_body())
    }
}

/// Webhooks go out through the fetcher: the destination policy of an image fetch (domains,
/// every resolved address, ports), a pinned connection, no redirect followed, a time limit.
struct FetcherTransport(Fetcher);

impl imgmeta_api::WebhookTransport for FetcherTransport {
    fn post<'a>(
        &'a self,
        url: &'a imgmeta_domain::WebhookUrl,
        headers: Vec<(&'static str, String)>,
        body: bytes::Bytes,
        timeout: std::time::Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<u16, ErrorBody>> + Send + 'a>>
    {
        Box::pin(async move {
            self.0
                .post_webhook(url.as_image_url().as_url(), &headers, body, timeout)
                .await
                .map_err(|e| e.to_body())
        })
    }
}

/// What sends webhooks from this process, under the fetcher's rules.
pub fn webhook_transport(
    settings: &Settings,
) -> anyhow::Result<Arc<dyn imgmeta_api::WebhookTransport>> {
    Ok(Arc::new(FetcherTransport(crate::serve::fetcher(settings)?)))
}

/// The API's security state from the settings.
pub fn api_security(settings: &Settings) -> anyhow::Result<Security> {
    let fetcher = crate::serve::fetcher(settings)?;
    tracing::info!(domains = %fetcher.config().domains, "destination policy for submissions");
    Ok(Security::from_settings(
        &settings.security,
        Some(Arc::new(FetchPolicy(fetcher))),
    ))
}

/// Spaces fetches from one host `interval` apart across every worker, through PostgreSQL. The
/// fetcher asks it on every hop, with the host already normalised (`host_key`).
struct SharedHostGate {
    store: Store,
    interval: Duration,
    reservations: AtomicU64,
}

/// Every this many reservations, hosts idle for `FORGET_HOSTS_AFTER` are deleted, so the
/// schedule table stays as small as the set of hosts in recent use.
const PRUNE_EVERY: u64 = 1024;
const FORGET_HOSTS_AFTER: Duration = Duration::from_secs(3600);

impl HostGate for SharedHostGate {
    fn reserve<'a>(
        &'a self,
        host: &'a str,
        max_wait: Duration,
    ) -> GateFuture<'a, Result<Duration, HostBusy>> {
        Box::pin(async move {
            // The fetcher passes keys already; direct callers (tools, tests) may not.
            let host = host_key(host);
            if self.reservations.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
                let store = self.store.clone();
                tokio::spawn(async move {
                    if let Err(error) = store.forget_idle_hosts(FORGET_HOSTS_AFTER).await {
                        tracing::debug!(error = %error, "pruning the host fetch schedule failed");
                    }
                });
            }
            match self
                .store
                .reserve_host_slot(&host, self.interval, max_wait)
                .await
            {
                Ok(Ok(wait)) => Ok(wait),
                Ok(Err(free_in)) => {
                    // The worker logs the deferral once, with the job; this is the detail.
                    tracing::debug!(
                        image.url_host = %imgmeta_auth::clean(&host),
                        free_in_ms = free_in.as_millis() as u64,
                        max_wait_ms = max_wait.as_millis() as u64,
                        "host busy under the per-host fetch rate; the job will wait in the queue"
                    );
                    Err(HostBusy {
                        retry_after: free_in,
                    })
                }
                // Without the shared schedule, keep to the rate locally rather than not at all.
                Err(error) => {
                    tracing::warn!(kind = "error", error = %error, "host fetch schedule unavailable; pacing locally");
                    Ok(self.interval.min(max_wait))
                }
            }
        })
    }
}

/// The per-host fetch gate for workers, or `None` when `IMGMETA_HOST_FETCH_RATE_PER_SECOND`
/// is 0.
pub fn host_gate(settings: &Settings, store: Store) -> Option<Arc<dyn HostGate>> {
    let rate = settings.security.host_fetch_rate_per_second;
    (rate > 0.0).then(|| {
        Arc::new(SharedHostGate {
            store,
            interval: Duration::from_secs_f64(1.0 / rate),
            reservations: AtomicU64::new(0),
        }) as Arc<dyn HostGate>
    })
}

/// `imgmeta up` on a database with no usable key: creates one and prints it, so the README's
/// walk-through works from the first start.
pub async fn ensure_first_key(settings: &Settings, store: &Store) -> anyhow::Result<()> {
    if !settings.security.auth_enabled || store.count_active_api_keys().await? > 0 {
        return Ok(());
    }
    let mut request = KeyRequest::in_new_account(
        imgmeta_domain::Name::parse("first key (imgmeta up)").expect("a valid name"),
        settings.security.default_rate_per_minute,
        settings.security.default_daily_quota,
        settings.security.default_retention_days,
    );
    // The first key may manage its account's keys, so the operator can mint narrower ones
    // over HTTP without the CLI.
    request.scopes = imgmeta_domain::ScopeSet::all();
    let issued = imgmeta_api::issue_key(store, &request, "up").await?;
    eprintln!(
        "imgmeta: no API key existed, so one was created. It is shown only this once:\n\n    {}\n\n\
         Send it as `Authorization: Bearer <key>`; manage keys with `imgmeta keys`.",
        issued.key
    );
    Ok(())
}
