//! Publishing job messages with publisher confirms, reconnecting after the broker restarts.

use crate::broker::{Manager, Pool};
use crate::{Broker, JobMessage, Lane, QueueError, Topology};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, ConnectionProperties};
use std::time::Duration;
use tokio::sync::Mutex;

/// The message header carrying the job's W3C trace context.
pub const TRACEPARENT_HEADER: &str = "traceparent";

/// How long one publish may wait for the broker's confirm.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes job messages; shared by all request handlers of a process.
///
/// Connections come from a deadpool pool, which checks a connection's health before
/// handing it out; the confirm-mode channel on top is cached and replaced whenever it fails,
/// so a broker restart costs the requests that were in flight, not the process.
pub struct Publisher {
    pool: Pool,
    topology: Topology,
    channel: Mutex<Option<Channel>>,
}

impl std::fmt::Debug for Publisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Publisher")
            .field("topology", &self.topology)
            .finish_non_exhaustive()
    }
}

impl Publisher {
    /// Creates the publisher; no connection is made until the first use.
    pub fn new(broker: &Broker, topology: Topology) -> Result<Self, QueueError> {
        let pool = Pool::builder(Manager {
            broker: broker.clone(),
        })
        .max_size(2)
        .wait_timeout(Some(Duration::from_secs(5)))
        .create_timeout(Some(Duration::from_secs(5)))
        .recycle_timeout(Some(Duration::from_secs(5)))
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .map_err(|e| QueueError::Config(e.to_string()))?;
        Ok(Self {
            pool,
            topology,
            channel: Mutex::new(None),
        })
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Returns a healthy confirm-mode channel, opening one (and declaring the topology) if
    /// needed; a broker that is still starting is waited for (see `retry_while_starting`).
    async fn channel(&self) -> Result<Channel, QueueError> {
        crate::error::retry_while_starting(|| self.channel_once()).await
    }

    async fn channel_once(&self) -> Result<Channel, QueueError> {
        let mut cached = self.channel.lock().await;
        if let Some(channel) = cached.as_ref()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *cached = None;
        let connection = self.pool.get().await.map_err(|e| match e {
            deadpool::managed::PoolError::Backend(e) => e,
            other => QueueError::Unavailable(other.to_string()),
        })?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        self.topology.declare(&channel).await?;
        *cached = Some(channel.clone());
        Ok(channel)
    }

    /// Publishes a persistent message for `message.job_id` to the jobs queue and waits for the
    /// broker to confirm it; only then has the broker taken responsibility for it.
    pub async fn publish(&self, message: &JobMessage) -> Result<(), QueueError> {
        self.publish_traced(message, None).await
    }

    /// [`Publisher::publish`], with the job's W3C `traceparent` as a header of that name.
    pub async fn publish_traced(
        &self,
        message: &JobMessage,
        trace_parent: Option<&str>,
    ) -> Result<(), QueueError> {
        self.publish_in(Lane::Interactive, message, trace_parent)
            .await
    }

    /// [`Publisher::publish_traced`] to the queue of `lane`.
    pub async fn publish_in(
        &self,
        lane: Lane,
        message: &JobMessage,
        trace_parent: Option<&str>,
    ) -> Result<(), QueueError> {
        let result = tokio::time::timeout(
            CONFIRM_TIMEOUT,
            self.publish_once(lane, message, trace_parent),
        )
        .await;
        let result = result.unwrap_or(Err(QueueError::Timeout));
        if result.is_err() {
            // Whatever went wrong, the next publish starts from a fresh channel.
            self.channel.lock().await.take();
        }
        result
    }

    async fn publish_once(
        &self,
        lane: Lane,
        message: &JobMessage,
        trace_parent: Option<&str>,
    ) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        let payload =
            serde_json::to_vec(message).map_err(|e| QueueError::Malformed(e.to_string()))?;
        let job_id = message.job_id.to_string();
        let mut headers = FieldTable::default();
        headers.insert(
            "x-job-id".into(),
            AMQPValue::LongString(job_id.clone().into()),
        );
        if let Some(trace_parent) = trace_parent {
            headers.insert(
                TRACEPARENT_HEADER.into(),
                AMQPValue::LongString(trace_parent.into()),
            );
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_content_type("application/json".into())
            .with_message_id(job_id.into())
            .with_headers(headers);
        let confirm = channel
            .basic_publish(
                "".into(),
                self.topology.queue(lane).into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                properties,
            )
            .await?
            .await?;
        match confirm {
            Confirmation::Ack(None) => Ok(()),
            Confirmation::Ack(Some(_returned)) => Err(QueueError::Unroutable),
            Confirmation::Nack(_) => Err(QueueError::Nacked),
            Confirmation::NotRequested => Err(QueueError::Unavailable(
                "publisher confirms are not enabled on the channel".into(),
            )),
        }
    }

    /// Whether the broker is reachable now (for `/readyz`).
    pub async fn ping(&self) -> Result<(), QueueError> {
        tokio::time::timeout(Duration::from_secs(3), self.channel())
            .await
            .map_err(|_| QueueError::Timeout)?
            .map(|_| ())
    }

    /// Messages ready in the interactive and bulk queues together (delivered but
    /// unacknowledged ones not counted).
    pub async fn queue_depth(&self) -> Result<u32, QueueError> {
        let (interactive, bulk) = self.queue_depths().await?;
        Ok(interactive + bulk)
    }

    /// Messages ready in the interactive queue and in the bulk queue.
    pub async fn queue_depths(&self) -> Result<(u32, u32), QueueError> {
        let channel = self.channel().await?;
        let mut depths = [0; 2];
        for (depth, queue) in depths
            .iter_mut()
            .zip([self.topology.jobs_queue(), self.topology.bulk_queue()])
        {
            let declared = channel
                .queue_declare(
                    queue.into(),
                    lapin::options::QueueDeclareOptions {
                        passive: true,
                        ..lapin::options::QueueDeclareOptions::default()
                    },
                    FieldTable::default(),
                )
                .await;
            match declared {
                Ok(queue) => *depth = queue.message_count(),
                Err(err) => {
                    // A failed passive declare closes the channel.
                    self.channel.lock().await.take();
                    return Err(err.into());
                }
            }
        }
        Ok((depths[0], depths[1]))
    }

    /// Deletes this topology's queues and exchange: for tests that made their own prefix.
    pub async fn delete_topology(&self) -> Result<(), QueueError> {
        let channel = self.channel().await?;
        for queue in [
            self.topology.jobs_queue(),
            self.topology.bulk_queue(),
            self.topology.dead_queue(),
        ] {
            channel
                .queue_delete(queue.into(), lapin::options::QueueDeleteOptions::default())
                .await?;
        }
        channel
            .exchange_delete(
                self.topology.dead_letter_exchange().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await?;
        Ok(())
    }
}

/// Connection properties for long-lived consumer connections.
pub(crate) fn connection_properties() -> ConnectionProperties {
    ConnectionProperties::default()
}
