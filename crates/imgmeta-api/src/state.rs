//! What every request handler shares.

use imgmeta_queue::Publisher;
use imgmeta_store::Store;
use std::sync::Arc;
use std::time::Duration;

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub publisher: Arc<Publisher>,
    /// How long `POST /img` waits for a terminal status.
    pub legacy_wait: Duration,
    /// Whether workers may fetch private addresses; `/readyz` warns loudly when so.
    pub fetch_allows_private: bool,
}
