//! Faults inside RabbitMQ that leave the server running: a purged or deleted jobs queue (its
//! messages gone), and messages on the jobs queue that no submission made.
//!
//! Like `duplicate`, this knows the run's queue name (`<prefix>.jobs`) on the default vhost.

use anyhow::{Context, Result};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, QueueDeleteOptions, QueuePurgeOptions,
};
use lapin::{BasicProperties, Connection, ConnectionProperties};

pub const AMQP_URL: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";

async fn connect() -> Result<(Connection, lapin::Channel)> {
    let conn = Connection::connect(AMQP_URL, ConnectionProperties::default())
        .await
        .context("connecting to RabbitMQ")?;
    let channel = conn.create_channel().await?;
    Ok((conn, channel))
}

/// Drops every ready message of `queue`; returns how many there were.
pub async fn purge(queue: &str) -> Result<u32> {
    let (conn, channel) = connect().await?;
    let purged = channel
        .queue_purge(queue.into(), QueuePurgeOptions::default())
        .await
        .with_context(|| format!("purging {queue}"))?;
    let _ = conn.close(200, "done".into()).await;
    Ok(purged)
}

/// Deletes `queue` with its ready messages (its consumers are cancelled); returns how many
/// messages went with it.
pub async fn delete(queue: &str) -> Result<u32> {
    let (conn, channel) = connect().await?;
    let deleted = channel
        .queue_delete(queue.into(), QueueDeleteOptions::default())
        .await
        .with_context(|| format!("deleting {queue}"))?;
    let _ = conn.close(200, "done".into()).await;
    Ok(deleted)
}

/// Publishes each body to `queue` (persistent, confirmed); returns how many the broker confirmed.
pub async fn publish_raw(queue: &str, bodies: &[Vec<u8>]) -> Result<usize> {
    let (conn, channel) = connect().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut confirmed = 0;
    for body in bodies {
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await?
            .await?;
        if confirm.is_ack() {
            confirmed += 1;
        }
    }
    let _ = conn.close(200, "done".into()).await;
    Ok(confirmed)
}

/// Ready messages in `queue` now, if it exists.
pub async fn ready(queue: &str) -> Result<u32> {
    Ok(inspect(queue).await?.message_count())
}

/// Consumers subscribed to `queue` now, if it exists.
pub async fn consumers(queue: &str) -> Result<u32> {
    Ok(inspect(queue).await?.consumer_count())
}

async fn inspect(queue: &str) -> Result<lapin::Queue> {
    let (conn, channel) = connect().await?;
    let declared = channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..lapin::options::QueueDeclareOptions::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .with_context(|| format!("inspecting {queue}"))?;
    let _ = conn.close(200, "done".into()).await;
    Ok(declared)
}
