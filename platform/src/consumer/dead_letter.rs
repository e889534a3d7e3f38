//! Dead letters: an event a consumer cannot decode or apply is recorded in
//! the consumer's database (`consumer_dead_letter`, in the transaction that
//! moves its position past it, where an operator lists, replays or skips it:
//! see [`super::dead_letters`]) and published to the dead-letter topic, with
//! why, by whom and where it came from, so that the partition keeps flowing
//! and nothing is silently dropped.

use agora_schema::topics;
use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::Message;

use sqlx::PgConnection;

use crate::kafka::KafkaSettings;
use crate::trace_context::TraceParent;

/// Why an event became a dead letter (a bounded label of the metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The message is not an event this consumer knows.
    Undecodable,
    /// Its apply failed for good (bad data, a violated constraint).
    Rejected,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Undecodable => "undecodable",
            Kind::Rejected => "rejected",
        }
    }
}

pub struct DeadLetters {
    producer: FutureProducer,
    consumer_name: String,
}

impl DeadLetters {
    pub fn new(kafka: &KafkaSettings, consumer_name: &str) -> anyhow::Result<Self> {
        let producer = kafka
            .producer_config(&format!("{consumer_name}-dead-letters"))
            .create()
            .context("cannot create the dead-letter producer")?;
        Ok(DeadLetters { producer, consumer_name: consumer_name.to_owned() })
    }

    /// Records `message` in `connection`'s transaction and publishes it to
    /// the dead-letter topic (waiting for the ack).
    pub async fn publish(
        &self,
        connection: &mut PgConnection,
        message: &OwnedMessage,
        kind: Kind,
        reason: &str,
    ) -> anyhow::Result<()> {
        record(connection, &self.consumer_name, message, kind, reason).await?;
        let partition = message.partition().to_string();
        let offset = message.offset().to_string();
        let headers = OwnedHeaders::new()
            .insert(Header { key: "dead_letter_reason", value: Some(reason) })
            .insert(Header { key: "dead_letter_consumer", value: Some(&self.consumer_name) })
            .insert(Header { key: "original_topic", value: Some(message.topic()) })
            .insert(Header { key: "original_partition", value: Some(&partition) })
            .insert(Header { key: "original_offset", value: Some(&offset) });
        let mut record = FutureRecord::<[u8], [u8]>::to(topics::DEAD_LETTER).headers(headers);
        if let Some(key) = message.key() {
            record = record.key(key);
        }
        if let Some(payload) = message.payload() {
            record = record.payload(payload);
        }
        self.producer.send(record, Timeout::Never).await.map_err(|(error, _)| error).context("cannot publish a dead letter")?;
        metrics::counter!(
            "agora_consumer_dead_letters_total",
            "consumer" => self.consumer_name.clone(),
            "topic" => message.topic().to_owned(),
            "kind" => kind.as_str()
        )
        .increment(1);
        tracing::error!(
            consumer = %self.consumer_name,
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            kind = kind.as_str(),
            reason,
            "event sent to the dead-letter topic"
        );
        Ok(())
    }
}

async fn record(
    connection: &mut PgConnection,
    consumer: &str,
    message: &OwnedMessage,
    kind: Kind,
    reason: &str,
) -> sqlx::Result<()> {
    let envelope = message.payload().and_then(|payload| agora_schema::Envelope::from_slice(payload).ok());
    let traceparent = message.headers().and_then(|headers| {
        use rdkafka::message::Headers;
        headers
            .iter()
            .find(|header| header.key == TraceParent::HEADER)
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok().map(str::to_owned))
    });
    sqlx::query(
        "insert into consumer_dead_letter
             (consumer, topic, partition, \"offset\", message_key, payload, traceparent, event_id, event_type, kind, reason)
         values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
    )
    .bind(consumer)
    .bind(message.topic())
    .bind(message.partition())
    .bind(message.offset())
    .bind(message.key())
    .bind(message.payload())
    .bind(traceparent)
    .bind(envelope.as_ref().map(|envelope| envelope.event_id))
    .bind(envelope.as_ref().map(|envelope| envelope.event_type.clone()))
    .bind(kind.as_str())
    .bind(reason)
    .execute(connection)
    .await?;
    Ok(())
}
