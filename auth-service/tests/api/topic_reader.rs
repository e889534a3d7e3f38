//! Reads what reached a Kafka topic, from its beginning, with a consumer of a
//! group of its own: either until a condition holds or up to the end of the
//! topic as it is now.

use std::collections::HashMap;
use std::time::Duration;

use agora_platform::kafka::KafkaSettings;
use agora_schema::topics::DEFAULT_PARTITIONS;
use agora_schema::Envelope;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::time::Instant;
use uuid::Uuid;

use crate::helpers::WAIT;

/// One message of a topic.
#[derive(Debug, Clone)]
pub struct Received {
    pub key: String,
    pub partition: i32,
    pub offset: i64,
    pub envelope: Envelope,
}

fn consumer(kafka: &KafkaSettings, topic: &str) -> StreamConsumer {
    let group = format!("test-reader-{}", Uuid::new_v4().simple());
    let consumer: StreamConsumer = kafka.consumer_config("test-reader", &group).create().expect("a test consumer");
    // Assigned, not subscribed: every partition from its start, no rebalance to wait for.
    let mut partitions = TopicPartitionList::new();
    for partition in 0..DEFAULT_PARTITIONS {
        partitions.add_partition_offset(topic, partition, Offset::Beginning).expect("a valid offset");
    }
    consumer.assign(&partitions).expect("the partitions are assigned");
    consumer
}

async fn next(consumer: &StreamConsumer, deadline: Instant) -> Option<Received> {
    loop {
        let message = match tokio::time::timeout_at(deadline, consumer.recv()).await {
            Err(_) => return None,
            Ok(Err(error)) => {
                // Transient while a broker is down; the deadline bounds it.
                eprintln!("test reader: {error}");
                continue;
            }
            Ok(Ok(message)) => message,
        };
        let key = String::from_utf8(message.key().expect("every event has a key").to_vec()).expect("a UTF-8 key");
        let envelope = Envelope::from_slice(message.payload().expect("every event has a payload")).expect("an envelope");
        return Some(Received { key, partition: message.partition(), offset: message.offset(), envelope });
    }
}

/// Reads `topic` until `condition` holds for what was read; fails the test
/// when it does not within [`WAIT`].
pub async fn read_until(kafka: &KafkaSettings, topic: &str, condition: impl Fn(&[Received]) -> bool) -> Vec<Received> {
    let consumer = consumer(kafka, topic);
    let deadline = Instant::now() + WAIT;
    let mut received = Vec::new();
    while !condition(&received) {
        match next(&consumer, deadline).await {
            Some(message) => received.push(message),
            None => panic!("timed out after {WAIT:?} reading {topic}; read so far: {received:#?}"),
        }
    }
    received
}

/// Every message of `topic` up to its current end (the high watermarks at
/// the time of the call): an exact snapshot, for counting.
pub async fn read_all(kafka: &KafkaSettings, topic: &str) -> Vec<Received> {
    let consumer = consumer(kafka, topic);
    let mut ends = HashMap::new();
    for partition in 0..DEFAULT_PARTITIONS {
        let (_, high) = consumer.fetch_watermarks(topic, partition, Duration::from_secs(5)).expect("the watermarks");
        if high > 0 {
            ends.insert(partition, high);
        }
    }
    let deadline = Instant::now() + WAIT;
    let mut received = Vec::new();
    while !ends.is_empty() {
        let Some(message) = next(&consumer, deadline).await else {
            panic!("timed out after {WAIT:?} reading {topic} up to {ends:?}; read so far: {received:#?}");
        };
        if ends.get(&message.partition).is_some_and(|end| message.offset + 1 >= *end) {
            ends.remove(&message.partition);
        }
        received.push(message);
    }
    received
}

/// The messages about one aggregate, in the order they were read (which is
/// the order of their partition).
pub fn about(received: &[Received], aggregate_id: Uuid) -> Vec<&Received> {
    received.iter().filter(|message| message.envelope.aggregate_id == aggregate_id).collect()
}
