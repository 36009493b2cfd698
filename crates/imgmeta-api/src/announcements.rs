//! Following a channel on which PostgreSQL announces changes, for what an API process keeps
//! from the database (hot URL cache copies, rate-limit leases): kept only while the
//! announcements can be heard, and dropped as they come.

use imgmeta_store::{Store, StoreError};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// What an API process keeps that a channel's announcements invalidate.
pub(crate) trait Follower {
    /// One announcement, as the listener gives it.
    type Announcement;
    type Listener: Send;
    /// The channel, as the logs name it.
    const CHANNEL: &'static str;
    /// What the process does while it cannot hear the channel, as the logs say it.
    const WITHOUT: &'static str;

    fn listen(store: &Store) -> impl Future<Output = Result<Self::Listener, StoreError>> + Send;
    fn next(
        listener: &mut Self::Listener,
    ) -> impl Future<Output = Result<Self::Announcement, StoreError>> + Send;
    /// The channel can be heard (`true`) or cannot (`false`).
    fn set_listening(&self, listening: bool);
    fn heard(&self, announcement: Self::Announcement);
}

/// Follows `follower`'s channel until `shutdown`, listening again a second after the database
/// could not be listened to.
pub(crate) async fn follow<F: Follower>(store: Store, follower: F, shutdown: CancellationToken) {
    let mut listening = None;
    loop {
        let listener = match &mut listening {
            Some(listener) => listener,
            None => match F::listen(&store).await {
                Ok(listener) => {
                    follower.set_listening(true);
                    listening.insert(listener)
                }
                Err(e) => {
                    follower.set_listening(false);
                    tracing::warn!(kind = "error", error = %e, "cannot listen for {}; {}", F::CHANNEL, F::WITHOUT);
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            },
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => return,
            next = F::next(listener) => next,
        };
        match next {
            Ok(announcement) => follower.heard(announcement),
            Err(e) => {
                follower.set_listening(false);
                listening = None;
                tracing::warn!(kind = "error", error = %e, "lost the listener for {}", F::CHANNEL);
            }
        }
    }
}
