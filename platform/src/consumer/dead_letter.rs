//! The dead-letter topic: an event a consumer cannot decode or apply is
//! published there, with why, by whom and where it came from, so that the
//! partition keeps flowing and nothing is silently dropped.

use agora_schema::topics;
use anyhow::Context;
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::Message;

use crate::kafka::KafkaSettings;

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

    /// Publishes `message` to the dead-letter topic and waits for the ack.
    pub async fn publish(&self, message: &OwnedMessage, reason: &str) -> anyhow::Result<()> {
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
        metrics::counter!("agora_consumer_dead_letters_total", "consumer" => self.consumer_name.clone()).increment(1);
        tracing::error!(
            consumer = %self.consumer_name,
            topic = message.topic(),
            partition = message.partition(),
            offset = message.offset(),
            reason,
            "event sent to the dead-letter topic"
        );
        Ok(())
    }
}
