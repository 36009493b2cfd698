//! The fetch stage: downloads an image URL, safely by default.
//!
//! Only this crate knows HTTP client details (reqwest). It enforces the destination policy of
//! the security issue: http(s) only, no credentials, ports 80/443 unless configured, every
//! resolved address globally routable (resolved once, then connected to exactly), redirects
//! followed by our code with every hop checked again, no proxies, no decompression, a connect
//! timeout, a total deadline and a byte cap. The domain policy (block/allow lists) lives here
//! too, so the API and the fetcher share it.
//!
//! Decisions worth knowing when reading a failed job:
//! - `allow_private` (development and tests only) admits loopback and private-use addresses
//!   on any port; link-local (cloud metadata) and the other reserved ranges stay refused, and
//!   scheme, credential and domain rules are unchanged. `allowed_endpoints` admits exact
//!   socket addresses instead, which is how tests allow one loopback server and not another.
//! - A redirect to another scheme or to a URL with credentials fails with
//!   `blocked_destination`; an unparseable `Location` with `invalid_url`; a redirect without a
//!   `Location` with `http_status`.
//! - Bodies are never decompressed: a `Content-Encoding: gzip` body comes back as the gzip
//!   bytes, and the decoder refuses it by its magic bytes. `Content-Type` is reported but never
//!   trusted. An empty body fails with `not_an_image`.
//! - 5xx and 429 fail with `upstream_unavailable` (retryable); other non-2xx, and 206, with
//!   `http_status`.
//! - With a `HostGate`, every hop (the submitted URL and each redirect target, after its
//!   address check) waits for its host's turn under the per-host rate limit, hosts keyed by
//!   `host_key`; waiting longer than `max_host_wait` in all fails with `host_rate_limited`
//!   (retryable, with `retry_after`). Gate waits do not count against the total deadline,
//!   which is there for slow servers.

mod address;
mod config;
mod destination;
mod domain;
mod error;
mod fetcher;
mod freshness;
mod host_gate;
mod log;
mod pinned;
mod tls;

pub use address::{BlockKind, BlockReason, check_ip};
pub use config::FetchConfig;
pub use domain::{DomainList, DomainPolicy, DomainRefusal, InvalidDomainEntry};
pub use error::FetchError;
pub use fetcher::{Fetched, Fetcher, Revalidation};
pub use freshness::{Lifetimes, OriginCaching, Validators};
pub use host_gate::{GateFuture, HostBusy, HostGate, host_key};
