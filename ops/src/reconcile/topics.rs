//! Reading a topic from its beginning to its end as it is now, with a plain
//! consumer: partitions assigned, not subscribed (no group is joined) and
//! nothing committed, so reading changes nothing on the broker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agora_schema::Envelope;
use anyhow::{bail, Context};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

/// One message, decoded.
#[derive(Debug, Clone)]
pub struct TopicMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub envelope: Envelope,
}

/// A topic's content up to the high watermarks read at the start.
#[derive(Debug, Default)]
pub struct TopicRead {
    pub messages: Vec<TopicMessage>,
    /// Messages that are no event envelope.
    pub undecodable: usize,
    /// Some partition's log starts above offset 0: messages were dropped.
    pub truncated: bool,
}

/// Reads `topic` on `brokers` from the beginning to its current end; fails
/// after `timeout`. A topic that does not exist reads as empty.
pub async fn read_topic(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<TopicRead> {
    let (brokers, topic) = (brokers.to_owned(), topic.to_owned());
    tokio::task::spawn_blocking(move || read_blocking(&brokers, &topic, timeout)).await.context("the topic reader panicked")?
}

fn read_blocking(brokers: &str, topic: &str, timeout: Duration) -> anyhow::Result<TopicRead> {
    let deadline = Instant::now() + timeout;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("client.id", "agora-reconcile")
        // Required by the client, never joined: partitions are assigned.
        .set("group.id", "agora-reconcile")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("log_level", "3")
        .create()
        .context("cannot create a Kafka consumer")?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout).with_context(|| format!("no metadata for {topic}"))?;
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions()).map(|p| p.id()).collect();
    let mut read = TopicRead::default();
    let mut ends = HashMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, remaining)
            .with_context(|| format!("no watermarks for {topic}/{partition}"))?;
        read.truncated |= low > 0;
        if high > low {
            ends.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    if ends.is_empty() {
        return Ok(read);
    }
    let limits = ends.clone();
    consumer.assign(&assignment).context("cannot assign the topic's partitions")?;
    while !ends.is_empty() {
        let remaining = deadline.saturating_duration_since(Instant::now());
        if remaining.is_zero() {
            bail!("reading {topic}: the end of partitions {:?} not reached within {timeout:?}", ends.keys().collect::<Vec<_>>());
        }
        let Some(message) = consumer.poll(remaining.min(Duration::from_millis(500))) else { continue };
        let message = match message {
            Ok(message) => message,
            // Transient (the broker is briefly away); the deadline bounds it.
            Err(_) => continue,
        };
        let (partition, offset) = (message.partition(), message.offset());
        if limits.get(&partition).is_none_or(|end| offset >= *end) {
            // Published after the reading started.
            continue;
        }
        if ends.get(&partition).is_some_and(|end| offset + 1 >= *end) {
            ends.remove(&partition);
        }
        match message.payload().map(Envelope::from_slice) {
            Some(Ok(envelope)) => read.messages.push(TopicMessage {
                topic: topic.to_owned(),
                partition,
                offset,
                key: message.key().map(|key| String::from_utf8_lossy(key).into_owned()),
                envelope,
            }),
            _ => read.undecodable += 1,
        }
    }
    Ok(read)
}
