//! The publish-twice fault: a second, independent publisher that puts a copy of every accepted
//! job's message on the jobs queue, as a publisher retry after a lost confirm would.
//!
//! This is the one place the harness knows the wire format (`{"job_id": "<uuid>"}` on the
//! default exchange, routed to `<prefix>.jobs`, persistent); if the service changes it, the
//! duplicates are dropped as malformed and the scenario's `duplicates_published` note says so.

use anyhow::Result;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::mpsc;
use uuid::Uuid;

/// Publishes one duplicate per id received; counts the duplicates the broker confirmed.
pub async fn start(
    amqp_url: &str,
    queue: String,
    mut ids: mpsc::UnboundedReceiver<Uuid>,
) -> Result<(tokio::task::JoinHandle<()>, Arc<AtomicUsize>)> {
    let conn = Connection::connect(amqp_url, ConnectionProperties::default()).await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let confirmed = Arc::new(AtomicUsize::new(0));
    let counter = confirmed.clone();
    let task = tokio::spawn(async move {
        let _conn = conn;
        while let Some(id) = ids.recv().await {
            let body = serde_json::to_vec(&serde_json::json!({ "job_id": id }))
                .expect("a json object serialises");
            let properties = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(id.to_string().into());
            let published = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions::default(),
                    &body,
                    properties,
                )
                .await;
            if let Ok(confirm) = published
                && confirm.await.is_ok_and(|c| c.is_ack())
            {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
    });
    Ok((task, confirmed))
}
