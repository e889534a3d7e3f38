//! Reads a Kafka topic from its beginning, as a consumer group of its own
//! would, so a test can check what a service published.

use std::time::Instant;

use agora_platform::kafka::KafkaSettings;
use agora_schema::Envelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use uuid::Uuid;

use crate::DEADLINE;

/// One message of the topic.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub key: String,
    /// The `event_type` header the relay sets.
    pub event_type_header: Option<String>,
    pub envelope: Envelope,
}

pub struct TopicReader {
    topic: String,
    consumer: StreamConsumer,
    received: Vec<ReceivedEvent>,
}

impl TopicReader {
    /// A reader in a fresh consumer group, starting at the earliest offset.
    pub fn new(kafka: &KafkaSettings, topic: &str) -> Self {
        let group = format!("agora-test-{}", Uuid::now_v7().simple());
        // consumer_config already starts a group without a position at the earliest offset.
        let consumer: StreamConsumer = kafka.consumer_config("agora-test-reader", &group).create().expect("a Kafka consumer");
        consumer.subscribe(&[topic]).expect("subscribing to the topic");
        TopicReader { topic: topic.to_owned(), consumer, received: Vec::new() }
    }

    /// Collects messages until `done` holds for all received so far, and
    /// returns them; fails the test after [`DEADLINE`].
    pub async fn read_until(&mut self, what: &str, done: impl Fn(&[ReceivedEvent]) -> bool) -> &[ReceivedEvent] {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.received) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let message = match tokio::time::timeout(remaining, self.consumer.recv()).await {
                Err(_) => panic!("{what}: not seen on {} within {DEADLINE:?}; received {:#?}", self.topic, self.received),
                Ok(Err(error)) => {
                    // Transient while the group forms; the deadline bounds it.
                    eprintln!("topic reader: {error}");
                    continue;
                }
                Ok(Ok(message)) => message,
            };
            let envelope = Envelope::from_slice(message.payload().unwrap_or_default()).expect("an event envelope");
            let event_type_header = message.headers().and_then(|headers| {
                headers
                    .iter()
                    .find(|header| header.key == "event_type")
                    .and_then(|header| header.value)
                    .map(|value| String::from_utf8_lossy(value).into_owned())
            });
            self.received.push(ReceivedEvent {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                event_type_header,
                envelope,
            });
        }
        &self.received
    }
}

/// Publishes events written by hand (or garbage), as a service would.
pub struct Publisher {
    producer: rdkafka::producer::FutureProducer,
}

impl Publisher {
    pub fn new(kafka: &KafkaSettings) -> Self {
        Publisher { producer: kafka.producer_config("agora-test-publisher").create().expect("a Kafka producer") }
    }

    /// Publishes raw bytes and waits for the broker's acknowledgement.
    pub async fn publish(&self, topic: &str, key: &str, payload: &[u8]) {
        use rdkafka::producer::FutureRecord;
        self.producer
            .send(FutureRecord::to(topic).key(key).payload(payload), rdkafka::util::Timeout::Never)
            .await
            .map_err(|(error, _)| error)
            .expect("the broker acknowledged");
    }

    /// Publishes an event on its topic, keyed by its aggregate id.
    pub async fn publish_event(&self, envelope: &Envelope) {
        let topic = envelope.event().expect("a known event").topic();
        self.publish(topic, &envelope.aggregate_id.to_string(), &envelope.to_bytes()).await;
    }
}

/// Publishes raw bytes to a topic with a producer of its own.
pub async fn publish(kafka: &KafkaSettings, topic: &str, key: &str, payload: &[u8]) {
    Publisher::new(kafka).publish(topic, key, payload).await;
}

/// Publishes an event with a producer of its own.
pub async fn publish_event(kafka: &KafkaSettings, envelope: &Envelope) {
    Publisher::new(kafka).publish_event(envelope).await;
}
