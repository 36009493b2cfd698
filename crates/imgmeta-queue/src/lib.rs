//! RabbitMQ as the jobs' wake-up signal: topology, confirmed publishing and manual-ack consuming.
//!
//! Only this crate knows AMQP. PostgreSQL holds the truth about a job; a message only says
//! "job X may have work to do", so a lost or duplicated message is recoverable by design.

mod broker;
mod consumer;
mod error;
mod message;
mod publisher;
mod topology;

pub use broker::Broker;
pub use consumer::{Deliveries, JobDelivery};
pub use error::QueueError;
pub use message::JobMessage;
pub use publisher::Publisher;
pub use topology::{Lane, Topology};
