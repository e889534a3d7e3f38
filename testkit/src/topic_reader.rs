//! Reads a Kafka topic from its beginning so a test can check what a
//! service published, and publishes events written by hand.

use std::collections::HashMap;
use std::time::Instant;

use agora_platform::kafka::{self, KafkaSettings, Start};
use agora_schema::Envelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use tokio::runtime::{Handle, RuntimeFlavor};
use uuid::Uuid;

use crate::DEADLINE;

/// One message of the topic.
#[derive(Debug, Clone)]
pub struct ReceivedEvent {
    pub key: String,
    pub partition: i32,
    pub offset: i64,
    /// The `event_type` header the relay sets.
    pub event_type_header: Option<String>,
    pub envelope: Envelope,
}

/// A reader of every partition of a topic from its earliest offset. The
/// partitions are assigned, not subscribed to: joining a consumer group
/// would cost the broker's initial rebalance delay (seconds) on every read.
/// It never commits.
pub struct TopicReader {
    topic: String,
    partitions: Vec<i32>,
    consumer: StreamConsumer,
    received: Vec<ReceivedEvent>,
}

impl TopicReader {
    pub fn new(kafka: &KafkaSettings, topic: &str) -> Self {
        // A group id is required, though the group is never joined.
        let group = format!("agora-test-{}", Uuid::now_v7().simple());
        let consumer: StreamConsumer = kafka.consumer_config("agora-test-reader", &group).create().expect("a Kafka consumer");
        blocking(|| kafka::assign_all(&consumer, &[topic], Start::Beginning)).expect("assigning the topic's partitions");
        let partitions: Vec<i32> =
            consumer.assignment().expect("the assignment").elements().iter().map(|element| element.partition()).collect();
        assert!(!partitions.is_empty(), "{topic} has no partitions");
        TopicReader { topic: topic.to_owned(), partitions, consumer, received: Vec::new() }
    }

    /// Everything received so far, in the order it was read (which is the
    /// order of each partition).
    pub fn received(&self) -> &[ReceivedEvent] {
        &self.received
    }

    /// Collects messages until `done` holds for all received so far, and
    /// returns them; fails the test, saying `what` it was waiting for, after
    /// [`DEADLINE`].
    pub async fn read_until(&mut self, what: &str, done: impl Fn(&[ReceivedEvent]) -> bool) -> &[ReceivedEvent] {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.received) {
            self.receive(deadline, what).await;
        }
        &self.received
    }

    /// Collects messages up to the topic's end as it is now (the high
    /// watermarks at the time of the call), and returns all received: an
    /// exact snapshot, for counting.
    pub async fn read_to_end(&mut self) -> &[ReceivedEvent] {
        let mut ends = HashMap::new();
        for &partition in &self.partitions {
            let (_, high) = blocking(|| self.consumer.fetch_watermarks(&self.topic, partition, DEADLINE))
                .expect("the partition's high watermark");
            let next = self.received.iter().filter(|message| message.partition == partition).map(|m| m.offset + 1).max();
            if next.unwrap_or(0) < high {
                ends.insert(partition, high);
            }
        }
        let deadline = Instant::now() + DEADLINE;
        let what = format!("the end of every partition ({ends:?})");
        while !ends.is_empty() {
            let message = self.receive(deadline, &what).await;
            if ends.get(&message.partition).is_some_and(|end| message.offset + 1 >= *end) {
                ends.remove(&message.partition);
            }
        }
        &self.received
    }

    /// Receives the next message; fails the test at `deadline`.
    async fn receive(&mut self, deadline: Instant, what: &str) -> &ReceivedEvent {
        let message = loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.consumer.recv()).await {
                Err(_) => panic!("{what}: not seen on {} within {DEADLINE:?}; received {:#?}", self.topic, self.received),
                Ok(Err(error)) => {
                    // Transient (the broker is briefly unreachable); the deadline bounds it.
                    eprintln!("topic reader: {error}");
                }
                Ok(Ok(message)) => break message,
            }
        };
        let key = message.key().expect("every event has a key");
        let envelope = Envelope::from_slice(message.payload().expect("every event has a payload")).expect("an event envelope");
        let event_type_header = message.headers().and_then(|headers| {
            headers
                .iter()
                .find(|header| header.key == "event_type")
                .and_then(|header| header.value)
                .map(|value| String::from_utf8_lossy(value).into_owned())
        });
        self.received.push(ReceivedEvent {
            key: String::from_utf8(key.to_vec()).expect("a UTF-8 key"),
            partition: message.partition(),
            offset: message.offset(),
            event_type_header,
            envelope,
        });
        self.received.last().unwrap()
    }
}

/// The messages of `topic` from its beginning, read until `done` holds for
/// them (see [`TopicReader::read_until`]).
pub async fn read_topic_until(
    kafka: &KafkaSettings,
    topic: &str,
    what: &str,
    done: impl Fn(&[ReceivedEvent]) -> bool,
) -> Vec<ReceivedEvent> {
    TopicReader::new(kafka, topic).read_until(what, done).await.to_vec()
}

/// Every message of `topic` up to its current end (see [`TopicReader::read_to_end`]).
pub async fn read_topic(kafka: &KafkaSettings, topic: &str) -> Vec<ReceivedEvent> {
    TopicReader::new(kafka, topic).read_to_end().await.to_vec()
}

/// The messages about one aggregate, in the order they were read (which is
/// the order of their partition).
pub fn about(received: &[ReceivedEvent], aggregate_id: Uuid) -> Vec<&ReceivedEvent> {
    received.iter().filter(|message| message.envelope.aggregate_id == aggregate_id).collect()
}

/// Runs a blocking librdkafka call (a local broker answers in milliseconds)
/// without stalling the other tasks of a multi-threaded runtime.
fn blocking<T>(call: impl FnOnce() -> T) -> T {
    match Handle::try_current() {
        Ok(runtime) if runtime.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(call),
        _ => call(),
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
