//! Consuming job messages with manual acknowledgement and a bounded prefetch.

use crate::publisher::connection_properties;
use crate::{Broker, JobMessage, QueueError, Topology};
use futures::StreamExt;
use lapin::Acker;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, Consumer};

/// A stream of deliveries from one queue over a connection of its own, so that a broken
/// connection ends the stream and the caller can reconnect.
pub struct Deliveries {
    connection: Connection,
    consumer: Consumer,
}

impl Deliveries {
    /// Consumes the jobs queue with at most `prefetch` unacknowledged messages.
    pub async fn jobs(
        broker: &Broker,
        topology: &Topology,
        prefetch: u16,
    ) -> Result<Self, QueueError> {
        Self::open(broker, topology, topology.jobs_queue(), prefetch).await
    }

    /// Consumes the bulk queue (batch items) with at most `prefetch` unacknowledged messages.
    pub async fn bulk(
        broker: &Broker,
        topology: &Topology,
        prefetch: u16,
    ) -> Result<Self, QueueError> {
        Self::open(broker, topology, topology.bulk_queue(), prefetch).await
    }

    /// Consumes the dead-letter queue (messages that hit the delivery limit).
    pub async fn dead(broker: &Broker, topology: &Topology) -> Result<Self, QueueError> {
        Self::open(broker, topology, topology.dead_queue(), 1).await
    }

    async fn open(
        broker: &Broker,
        topology: &Topology,
        queue: String,
        prefetch: u16,
    ) -> Result<Self, QueueError> {
        crate::error::retry_while_starting(|| {
            Self::open_once(broker, topology, queue.clone(), prefetch)
        })
        .await
    }

    async fn open_once(
        broker: &Broker,
        topology: &Topology,
        queue: String,
        prefetch: u16,
    ) -> Result<Self, QueueError> {
        let connection = broker.connect(connection_properties()).await?;
        let channel = connection.create_channel().await?;
        topology.declare(&channel).await?;
        channel
            .basic_qos(prefetch, BasicQosOptions::default())
            .await?;
        let consumer = channel
            .basic_consume(
                queue.into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok(Self {
            connection,
            consumer,
        })
    }

    /// The next delivery; `None` or an error means the connection is gone.
    pub async fn next(&mut self) -> Option<Result<JobDelivery, QueueError>> {
        let delivery = self.consumer.next().await?;
        Some(delivery.map_err(QueueError::from).map(|d| {
            let header = |name: &str| {
                d.properties
                    .headers()
                    .as_ref()
                    .and_then(|h| h.inner().get(name))
            };
            let delivery_count = match header("x-delivery-count") {
                Some(AMQPValue::LongLongInt(n)) => Some(*n),
                Some(AMQPValue::LongInt(n)) => Some(i64::from(*n)),
                Some(AMQPValue::ShortInt(n)) => Some(i64::from(*n)),
                _ => None,
            };
            let trace_parent = match header(crate::publisher::TRACEPARENT_HEADER) {
                Some(AMQPValue::LongString(s)) => Some(s.to_string()),
                _ => None,
            };
            JobDelivery {
                message: serde_json::from_slice(&d.data)
                    .map_err(|e| QueueError::Malformed(e.to_string())),
                trace_parent,
                redelivered: d.redelivered,
                delivery_count,
                acker: d.acker,
            }
        }))
    }

    pub async fn close(self) {
        let _ = self.connection.close(200, "bye".into()).await;
    }
}

/// How long settling a message may take. An ack on a channel the broker is closing (its queue
/// deleted, say) can wait for ever; the job's slot must not wait with it. A message left
/// unsettled is redelivered after the reconnect, and its job, already ended, is skipped.
const SETTLE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

async fn settle<T>(
    promise: impl std::future::Future<Output = Result<T, lapin::Error>>,
) -> Result<(), QueueError> {
    match tokio::time::timeout(SETTLE_TIMEOUT, promise).await {
        Ok(result) => result.map(|_| ()).map_err(QueueError::from),
        Err(_) => Err(QueueError::Timeout),
    }
}

/// One message and the means to settle it.
pub struct JobDelivery {
    pub message: Result<JobMessage, QueueError>,
    pub redelivered: bool,
    /// How many earlier deliveries of this message failed (quorum queues count them).
    pub delivery_count: Option<i64>,
    /// The `traceparent` header: the submission's trace, unchecked (the sender is not trusted).
    pub trace_parent: Option<String>,
    acker: Acker,
}

impl JobDelivery {
    /// The message is handled: the broker forgets it.
    pub async fn ack(&self) -> Result<(), QueueError> {
        settle(self.acker.ack(BasicAckOptions::default())).await
    }

    /// Hands the message back to the queue for another consumer.
    pub async fn requeue(&self) -> Result<(), QueueError> {
        settle(self.acker.nack(BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        }))
        .await
    }
}
