//! The seam through which a per-host fetch rate limit holds fetches back: the analyzer waits
//! for the gate before fetching, so a job naming a busy host waits rather than fails.

use std::future::Future;
use std::pin::Pin;

/// Decides when a fetch from a host may start. The implementation (shared through PostgreSQL
/// by every worker) lives outside the pipeline, which knows nothing of databases.
pub trait HostGate: Send + Sync {
    /// Resolves when a fetch from `host` may start.
    fn wait_turn<'a>(&'a self, host: &'a str) -> Pin<Box<dyn Future<Output = ()> + Send + 'a>>;
}
