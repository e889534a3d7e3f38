//! Reads a Kafka topic from its beginning, as a consumer group of its own
//! would, so a test can check what a service published.

use std::time::Instant;

use agora_platform::kafka::KafkaSettings;
use agora_schema::Envelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::{Message, Offset, TopicPartitionList};
use uuid::Uuid;

use crate::helpers::DEADLINE;

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
    /// A reader of every partition of `topic` from its earliest offset, in a
    /// consumer group of its own that never commits. Partitions are assigned,
    /// not subscribed to: joining a group would cost the broker's initial
    /// rebalance delay (seconds) on every read.
    pub fn new(kafka: &KafkaSettings, topic: &str) -> Self {
        let group = format!("post-service-test-{}", Uuid::now_v7().simple());
        let consumer: StreamConsumer =
            kafka.consumer_config("post-service-test-reader", &group).create().expect("a Kafka consumer");
        let metadata =
            tokio::task::block_in_place(|| consumer.fetch_metadata(Some(topic), DEADLINE)).expect("the topic's metadata");
        let mut assignment = TopicPartitionList::new();
        for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
            assignment.add_partition_offset(topic, partition.id(), Offset::Beginning).expect("a partition to read");
        }
        assert!(assignment.count() > 0, "{topic} has no partitions");
        consumer.assign(&assignment).expect("assigning the topic's partitions");
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
                    // Transient (the broker is briefly unreachable); the deadline bounds it.
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

/// The events of `topic` from its beginning, read until `done` holds.
pub async fn read_topic_until(
    kafka: &KafkaSettings,
    topic: &str,
    what: &str,
    done: impl Fn(&[ReceivedEvent]) -> bool,
) -> Vec<ReceivedEvent> {
    TopicReader::new(kafka, topic).read_until(what, done).await.to_vec()
}
