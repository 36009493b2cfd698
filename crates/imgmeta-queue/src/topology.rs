//! Queue and exchange names derived from the configured prefix, and their declaration.

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{Channel, ExchangeKind};

/// How many times the broker delivers one message before dead-lettering it: a job that
/// kills its worker every time must not block the queue forever.
pub const DELIVERY_LIMIT: i64 = 5;

/// Which queue a job's messages go to. Batch items go to the bulk queue, everything else to the
/// interactive one; workers keep a slot for interactive jobs, so one account's million-item
/// batch cannot starve other accounts' single jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    Interactive,
    Bulk,
}

/// The names this deployment uses; two prefixes never see each other's messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: &str) -> Self {
        Self {
            prefix: prefix.to_owned(),
        }
    }

    /// The durable quorum queue of job messages.
    pub fn jobs_queue(&self) -> String {
        format!("{}.jobs", self.prefix)
    }

    /// The durable quorum queue of batch items' messages.
    pub fn bulk_queue(&self) -> String {
        format!("{}.bulk", self.prefix)
    }

    /// The queue of `lane`.
    pub fn queue(&self, lane: Lane) -> String {
        match lane {
            Lane::Interactive => self.jobs_queue(),
            Lane::Bulk => self.bulk_queue(),
        }
    }

    /// Where messages go after [`DELIVERY_LIMIT`] deliveries.
    pub fn dead_letter_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    pub fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    /// Declares everything (idempotent; the arguments must never change for a live queue).
    pub async fn declare(&self, channel: &Channel) -> Result<(), lapin::Error> {
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .exchange_declare(
                self.dead_letter_exchange().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        channel
            .queue_declare(self.dead_queue().into(), durable, quorum_args(None))
            .await?;
        channel
            .queue_bind(
                self.dead_queue().into(),
                self.dead_letter_exchange().into(),
                self.dead_queue().into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await?;
        for queue in [self.jobs_queue(), self.bulk_queue()] {
            channel
                .queue_declare(
                    queue.into(),
                    durable,
                    quorum_args(Some((self.dead_letter_exchange(), self.dead_queue()))),
                )
                .await?;
        }
        Ok(())
    }
}

fn quorum_args(dead_letter: Option<(String, String)>) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-queue-type"),
        AMQPValue::LongString("quorum".into()),
    );
    if let Some((exchange, routing_key)) = dead_letter {
        args.insert(
            "x-delivery-limit".into(),
            AMQPValue::LongLongInt(DELIVERY_LIMIT),
        );
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(exchange.into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(routing_key.into()),
        );
        // Dead-lettering stays at-most-once (the default): RabbitMQ 3.10's at-least-once
        // dead-letter workers crash under queue churn and take every such queue down with
        // them. A dropped dead letter loses nothing: PostgreSQL still holds the job, and the
        // reconciler fails a job that used up its attempts as `poison` by itself.
    }
    args
}
