//! Keeps every accepted job moving. PostgreSQL is the source of truth and RabbitMQ only the
//! wake-up signal, so two loops bridge them:
//!
//! - the relay publishes the outbox (messages owed to the broker) with publisher confirms and
//!   forgets a message only once it is confirmed;
//! - the reconciler re-queues jobs whose worker vanished (expired lease), fails those that used
//!   up their attempts as `poison`, and republishes queued jobs whose message went missing.
//!
//! Every API and worker process runs both; the database hands each row to one of them.

mod reconcile;
mod relay;

pub use reconcile::{ReconcileConfig, reconcile};
pub use relay::{BrokerHealth, relay};
