//! `Fetcher`: downloads one image URL, following redirects itself and validating every hop.
//!
//! Each hop is checked (URL rules, domain policy), resolved once, every resolved address checked,
//! and then requested through a client pinned to exactly those addresses: its DNS overrides hold
//! the checked addresses and its resolver refuses every other name, so a second lookup (DNS
//! rebinding) is impossible. IP-literal hosts never reach a resolver at all in reqwest, which is
//! why `check_url` checks them itself before any request is built.
//!
//! With a `HostGate`, each hop that passed its checks then waits for its host's turn, so the
//! per-host rate limit holds for redirect targets too: many hosts redirecting to one victim
//! reach it no faster than the victim's own rate.

use crate::destination::{Target, check_url, resolve};
use crate::log::{clean, log_refusal};
use crate::{FetchConfig, FetchError, HostBusy, HostGate, OriginCaching, Validators, host_key};
use bytes::{Bytes, BytesMut};
use imgmeta_domain::ImageUrl;
use reqwest::header::{
    ACCEPT, ACCEPT_ENCODING, CONTENT_TYPE, IF_MODIFIED_SINCE, IF_NONE_MATCH, LOCATION,
};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::time::Instant;
use url::Url;

/// Most bytes reserved up front from a declared `Content-Length`, so a lying header cannot make
/// us allocate the whole cap for a body that never comes.
const MAX_PREALLOCATION: u64 = 1024 * 1024;

/// Most bytes of a webhook receiver's answer read (and dropped) before the connection is closed.
const WEBHOOK_ANSWER_BYTES: usize = 64 * 1024;

/// A downloaded body and where it came from.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub bytes: Bytes,
    /// The URL of the last hop, after redirects.
    pub final_url: Url,
    /// The `Content-Type` the server claimed; informational only, since the format is decided
    /// by magic bytes downstream.
    pub content_type: Option<String>,
    /// How many redirects were followed.
    pub redirects: u8,
    /// The address the body was read from.
    pub remote_addr: Option<SocketAddr>,
    /// The last hop's caching headers, for the URL cache.
    pub caching: OriginCaching,
}

/// The answer to a fetch that may revalidate a stored response.
#[derive(Debug, Clone)]
pub enum Revalidation {
    /// The origin sent the image (changed, or nothing was stored).
    Modified(Fetched),
    /// `304 Not Modified`: the stored response is still the image; its new caching headers.
    NotModified(OriginCaching),
}

/// Fetches image URLs under a `FetchConfig`. Cheap to clone; share one per process.
#[derive(Clone)]
pub struct Fetcher {
    cfg: Arc<FetchConfig>,
    tls: Arc<rustls::ClientConfig>,
    /// Paces each hop to its host's rate, when set.
    gate: Option<Arc<dyn HostGate>>,
}

impl std::fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fetcher")
            .field("cfg", &self.cfg)
            .field("gated", &self.gate.is_some())
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    pub fn new(cfg: FetchConfig) -> Result<Self, FetchError> {
        if cfg.allow_private {
            tracing::warn!(
                kind = "security",
                event = "allow_private_enabled",
                "IMGMETA_FETCH_ALLOW_PRIVATE is on: the fetcher will fetch from loopback and \
                 private addresses on any port. Never run production like this."
            );
        }
        let fetcher = Self {
            cfg: Arc::new(cfg),
            tls: Arc::new(crate::tls::client_config()?),
            gate: None,
        };
        // Building one client now surfaces TLS or configuration problems at startup rather
        // than on the first job.
        fetcher.client_for(&[], None)?;
        Ok(fetcher)
    }

    /// Makes every hop of every fetch wait for its host's turn at `gate` (the per-host fetch
    /// rate limit), for at most `max_host_wait` per fetch in all.
    pub fn with_host_gate(mut self, gate: Arc<dyn HostGate>) -> Self {
        self.gate = Some(gate);
        self
    }

    pub fn config(&self) -> &FetchConfig {
        &self.cfg
    }

    /// Every check that needs no network: scheme, credentials, port, domain policy and, for
    /// IP-literal hosts, the address policy. The API may call it at submission; `fetch` repeats
    /// it (and the checks that need DNS) on every hop.
    pub fn precheck(&self, url: &ImageUrl) -> Result<(), FetchError> {
        check_url(&self.cfg, url.as_url()).map(|_| ())
    }

    /// Downloads `url`, within the total deadline, refusing any hop whose destination fails
    /// the policy before a connection is made.
    pub async fn fetch(&self, url: &ImageUrl) -> Result<Fetched, FetchError> {
        match self.fetch_revalidating(url, None).await? {
            Revalidation::Modified(fetched) => Ok(fetched),
            // Only a conditional request may be answered 304; otherwise it is a refusal.
            Revalidation::NotModified(_) => Err(FetchError::Status {
                url: crate::log::shown_url(url.as_url()),
                status: 304,
            }),
        }
    }

    /// As [`Fetcher::fetch`], sending `validators` (when there are some) as
    /// `If-None-Match` / `If-Modified-Since` on every hop, so an unchanged image costs the origin
    /// a `304` and no body.
    pub async fn fetch_revalidating(
        &self,
        url: &ImageUrl,
        validators: Option<&Validators>,
    ) -> Result<Revalidation, FetchError> {
        let validators = validators.filter(|v| !v.is_empty());
        let result = self.fetch_hops(url, validators).await;
        if let Err(err) = &result {
            log_refusal(err);
        }
        result
    }

    async fn fetch_hops(
        &self,
        url: &ImageUrl,
        validators: Option<&Validators>,
    ) -> Result<Revalidation, FetchError> {
        let mut deadline = Deadline::new(self.cfg.total_timeout);
        let mut gate_waited = Duration::ZERO;
        let mut current = url.as_url().clone();
        let mut redirects: u8 = 0;
        loop {
            let target = check_url(&self.cfg, &current)?;
            let addrs = deadline.run(resolve(&self.cfg, &target)).await?;
            // After the address checks, so a refused hop takes no turn from its host; the time
            // spent waiting is given back to the deadline, which is for slow servers.
            let gate_started = Instant::now();
            self.wait_turn(&target.host, &mut gate_waited).await?;
            deadline.extend(gate_started.elapsed());
            let response = deadline
                .run(self.send(&current, &target, &addrs, validators))
                .await?;
            let status = response.status();
            if status.as_u16() == 304 && validators.is_some() {
                return Ok(Revalidation::NotModified(OriginCaching::from_headers(
                    response.headers(),
                    SystemTime::now(),
                )));
            }
            if is_followed_redirect(status.as_u16()) {
                if redirects >= self.cfg.max_redirects {
                    return Err(FetchError::TooManyRedirects {
                        limit: self.cfg.max_redirects,
                    });
                }
                current = next_hop(&current, status.as_u16(), &response)?;
                redirects += 1;
                continue;
            }
            if !status.is_success() || status.as_u16() == 206 {
                return Err(FetchError::Status {
                    url: crate::log::shown_url(&current),
                    status: status.as_u16(),
                });
            }
            let content_type = response
                .headers()
                .get(CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(clean);
            let remote_addr = response.remote_addr();
            let caching = OriginCaching::from_headers(response.headers(), SystemTime::now());
            let bytes = deadline
                .run(read_capped(response, &self.cfg, &target))
                .await?;
            if bytes.is_empty() {
                return Err(FetchError::EmptyBody {
                    url: crate::log::shown_url(&current),
                });
            }
            return Ok(Revalidation::Modified(Fetched {
                bytes,
                final_url: current,
                content_type,
                redirects,
                remote_addr,
                caching,
            }));
        }
    }

    /// POSTs a webhook: `body` (JSON) with `headers` to `url`, under the same destination
    /// rules as an image (scheme, credentials, port, domain policy, every resolved address
    /// checked, the connection pinned to them), no redirect followed (a `3xx` is the answer),
    /// and the whole exchange within `timeout`. Returns the receiver's status; at most 64 KiB
    /// of its answer is read, and dropped.
    pub async fn post_webhook(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Bytes,
        timeout: Duration,
    ) -> Result<u16, FetchError> {
        let result = tokio::time::timeout(timeout, self.post_once(url, headers, body))
            .await
            .unwrap_or(Err(FetchError::Timeout {
                stage: "delivering the webhook",
                after: timeout,
            }));
        if let Err(err) = &result {
            log_refusal(err);
        }
        result
    }

    async fn post_once(
        &self,
        url: &Url,
        headers: &[(&'static str, String)],
        body: Bytes,
    ) -> Result<u16, FetchError> {
        let target = check_url(&self.cfg, url)?;
        let addrs = resolve(&self.cfg, &target).await?;
        let pinned = target.literal.is_none().then_some(target.host.as_str());
        let client = self.client_for(&addrs, pinned)?;
        let mut request = client
            .post(url.clone())
            .header(CONTENT_TYPE, "application/json")
            .header(ACCEPT_ENCODING, "identity");
        for (name, value) in headers {
            request = request.header(*name, value.as_str());
        }
        let mut response = request
            .body(body)
            .send()
            .await
            .map_err(|err| request_error(err, &target.host, self.cfg.connect_timeout))?;
        let status = response.status().as_u16();
        let mut read = 0usize;
        while read < WEBHOOK_ANSWER_BYTES {
            match response.chunk().await {
                Ok(Some(chunk)) => read += chunk.len(),
                // The status is the answer; a body cut short does not change it.
                Ok(None) | Err(_) => break,
            }
        }
        Ok(status)
    }

    /// Waits for `host`'s turn at the gate, if there is one, within what is left of this
    /// fetch's `max_host_wait` (`waited` so far, across its hops).
    async fn wait_turn(&self, host: &str, waited: &mut Duration) -> Result<(), FetchError> {
        let Some(gate) = &self.gate else {
            return Ok(());
        };
        let key = host_key(host);
        let budget = self.cfg.max_host_wait.saturating_sub(*waited);
        // A gate that cannot answer in time (its database is stalled) must not hold the worker
        // either: the job goes back to the queue as if the host were busy.
        let answer = tokio::time::timeout(self.cfg.max_host_wait, gate.reserve(&key, budget))
            .await
            .unwrap_or(Err(HostBusy {
                retry_after: self.cfg.max_host_wait,
            }));
        match answer {
            Ok(wait) if wait.is_zero() => Ok(()),
            Ok(wait) => {
                tracing::debug!(
                    image.url_host = %clean(&key),
                    wait_ms = wait.as_millis() as u64,
                    "waiting for the host's fetch turn"
                );
                tokio::time::sleep(wait).await;
                *waited += wait;
                Ok(())
            }
            Err(busy) => Err(FetchError::HostRateLimited {
                host: clean(&key),
                retry_after: busy.retry_after,
            }),
        }
    }

    async fn send(
        &self,
        url: &Url,
        target: &Target,
        addrs: &[SocketAddr],
        validators: Option<&Validators>,
    ) -> Result<reqwest::Response, FetchError> {
        let pinned = target.literal.is_none().then_some(target.host.as_str());
        let client = self.client_for(addrs, pinned)?;
        let mut request = client.get(url.clone());
        if let Some(validators) = validators {
            if let Some(etag) = &validators.etag {
                request = request.header(IF_NONE_MATCH, etag.as_str());
            }
            if let Some(since) = &validators.last_modified {
                request = request.header(IF_MODIFIED_SINCE, since.as_str());
            }
        }
        request
            .header(ACCEPT, "image/*")
            // We never decompress (a small gzip body could expand without bound), so ask for
            // the identity encoding; a server that compresses anyway gets its bytes returned
            // as they are, and the decoder refuses them by their magic bytes.
            .header(ACCEPT_ENCODING, "identity")
            .send()
            .await
            .map_err(|err| request_error(err, &target.host, self.cfg.connect_timeout))
    }

    /// A client that can only reach `addrs`: the pinned host resolves to them and any other
    /// name fails, so reqwest never performs a lookup of its own.
    fn client_for(
        &self,
        addrs: &[SocketAddr],
        pinned_host: Option<&str>,
    ) -> Result<reqwest::Client, FetchError> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .retry(reqwest::retry::never())
            .referer(false)
            .http1_only()
            .connect_timeout(self.cfg.connect_timeout)
            .pool_max_idle_per_host(0)
            .user_agent(self.cfg.user_agent.clone())
            .tls_backend_preconfigured(rustls::ClientConfig::clone(&self.tls))
            .dns_resolver(crate::pinned::RefuseUnpinned);
        if let Some(host) = pinned_host {
            builder = builder.resolve_to_addrs(host, addrs);
        }
        builder
            .build()
            .map_err(|err| FetchError::Client(Box::new(err)))
    }
}

/// The total deadline of one fetch: DNS, connections, every hop and the whole body, but not
/// the waits for a host's turn.
struct Deadline {
    at: Instant,
    total: Duration,
}

impl Deadline {
    fn new(total: Duration) -> Self {
        Self {
            at: Instant::now() + total,
            total,
        }
    }

    fn extend(&mut self, by: Duration) {
        self.at += by;
    }

    /// Runs one network step, failing it with `timeout` if the deadline passes first.
    async fn run<T>(
        &self,
        step: impl std::future::Future<Output = Result<T, FetchError>>,
    ) -> Result<T, FetchError> {
        tokio::time::timeout_at(self.at, step)
            .await
            .unwrap_or_else(|_| {
                Err(FetchError::Timeout {
                    stage: "fetching the image (total deadline)",
                    after: self.total,
                })
            })
    }
}

fn is_followed_redirect(status: u16) -> bool {
    matches!(status, 301 | 302 | 303 | 307 | 308)
}

/// The URL a redirect points to, resolved against the current one (so relative and
/// scheme-relative locations work); its validity is checked at the top of the next hop.
fn next_hop(current: &Url, status: u16, response: &reqwest::Response) -> Result<Url, FetchError> {
    let bad = |problem: &str| FetchError::BadRedirect {
        url: crate::log::shown_url(current),
        status,
        problem: problem.to_owned(),
    };
    let location = response
        .headers()
        .get(LOCATION)
        .ok_or_else(|| bad("without a Location header"))?
        .to_str()
        .map_err(|_| bad("with a Location header that is not ASCII"))?;
    current.join(location).map_err(|e| FetchError::InvalidUrl {
        // Shown without its query, as every URL in a message is.
        url: match location.find(['?', '#']) {
            Some(at) => format!("{}?…", clean(&location[..at])),
            None => clean(location),
        },
        problem: format!("the redirect location does not parse: {e}"),
    })
}

/// Reads the body, refusing a declared length over the cap before reading a byte, and
/// stopping the stream as soon as it exceeds the cap.
async fn read_capped(
    mut response: reqwest::Response,
    cfg: &FetchConfig,
    target: &Target,
) -> Result<Bytes, FetchError> {
    let max_bytes = cfg.max_bytes;
    let declared = response.content_length();
    if let Some(len) = declared.filter(|len| *len > max_bytes) {
        return Err(FetchError::TooLarge {
            limit: max_bytes,
            declared: Some(len),
        });
    }
    let reserve = declared.unwrap_or(0).min(MAX_PREALLOCATION);
    let mut body = BytesMut::with_capacity(usize::try_from(reserve).unwrap_or(0));
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|err| request_error(err, &target.host, cfg.connect_timeout))?
    {
        if (body.len() + chunk.len()) as u64 > max_bytes {
            return Err(FetchError::TooLarge {
                limit: max_bytes,
                declared: None,
            });
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body.freeze())
}

fn request_error(err: reqwest::Error, host: &str, connect_timeout: Duration) -> FetchError {
    let host = clean(host);
    if err.is_timeout() {
        FetchError::Timeout {
            stage: "connecting",
            after: connect_timeout,
        }
    } else if refused_certificate(&err) {
        FetchError::Certificate {
            host,
            source: Box::new(err.without_url()),
        }
    } else if err.is_connect() {
        FetchError::Connect {
            host,
            source: Box::new(err.without_url()),
        }
    } else {
        FetchError::Request {
            host,
            source: Box::new(err.without_url()),
        }
    }
}

/// Whether the TLS handshake failed on the host's certificate (unknown issuer, a name it does
/// not carry, expired, revoked): the same certificate will be refused on every try, unlike a
/// connection that broke.
fn refused_certificate(err: &reqwest::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if let Some(tls) = current.downcast_ref::<rustls::Error>() {
            return matches!(
                tls,
                rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented
            );
        }
        // An io::Error's source() skips the error it wraps: step into that one instead.
        source = match current
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => current.source(),
        };
    }
    false
}
