//! The fetch stage: downloads an image URL, safely by default.
//!
//! Only this crate knows HTTP client details (reqwest). It enforces the destination policy of
//! the security issue: http(s) only, no credentials, ports 80/443 unless configured, every
//! resolved address globally routable (resolved once, then connected to exactly), redirects
//! followed by our code with every hop checked again, no proxies, no decompression, a connect
//! timeout, a total deadline and a byte cap. The domain policy (block/allow lists) lives here
//! too, so the API and the fetcher share it.

mod address;
mod config;
mod destination;
mod domain;
mod error;
mod fetcher;
mod log;
mod pinned;
mod tls;

pub use address::{BlockKind, BlockReason, check_ip};
pub use config::FetchConfig;
pub use domain::{DomainList, DomainPolicy, DomainRefusal, InvalidDomainEntry};
pub use error::FetchError;
pub use fetcher::{Fetched, Fetcher};
