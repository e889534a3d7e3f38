//! The live feed: one Kafka reader and one fan-out per gateway process.
//!
//! Each process reads the event topics itself (no consumer group shared
//! with other replicas, starting at the current end), so every subscriber on
//! every replica sees every event. An event is published to subscribers only
//! once the read model reflects it, with the records loaded once for all
//! subscribers. The subscribers of one operation share its execution
//! (`shared`), and executions share one bounded buffer: one that falls too
//! far behind is told so and its subscribers are dropped, instead of slowing
//! the others down.

use std::sync::Arc;
use std::time::Duration;

use agora_platform::graphql::WriteReceipt;
use agora_platform::kafka::KafkaSettings;
use agora_schema::{Envelope, Event};
use anyhow::Context;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::shared::SharedOperations;
use crate::consistency::Consistency;
use crate::projector::TOPICS;
use crate::read_model::{queries, PostRecord, UserRecord};

/// What subscribers receive: an event with the records it concerns, as the
/// read model shows them once it has applied the event.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    PostCreated(PostRecord),
    UserRenamed(UserRecord),
    PointsChanged { user: UserRecord, delta: i32, total: i32, reason: String },
}

/// The sending side; subscriptions take receivers from it. Subscribers of
/// the same operation share one execution of it ([`SharedOperations`]).
#[derive(Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<Arc<LiveEvent>>,
    pub operations: SharedOperations,
}

/// How long the feed waits for the read model before pushing anyway.
const PROJECTION_WAIT: Duration = Duration::from_secs(10);

impl LiveFeed {
    /// A feed whose buffer holds `capacity` events for the slowest execution
    /// (and at most as many results for an operation's slowest subscriber).
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        LiveFeed { sender, operations: SharedOperations::new(capacity) }
    }

    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LiveEvent>> {
        self.sender.subscribe()
    }

    /// A reader positioned at the current end of every event topic.
    pub async fn reader(&self, kafka: &KafkaSettings, pool: PgPool, consistency: Consistency) -> anyhow::Result<LiveReader> {
        let group = format!("agora-gateway-live-{}", uuid::Uuid::now_v7());
        let consumer: StreamConsumer =
            kafka.consumer_config("gateway-live-feed", &group).create().context("cannot create the live feed's consumer")?;
        let consumer = Arc::new(consumer);
        let positioned = consumer.clone();
        tokio::task::spawn_blocking(move || assign_at_end(&positioned)).await??;
        Ok(LiveReader { consumer, pool, consistency, sender: self.sender.clone() })
    }
}

/// Reads the events and feeds them to subscribers.
pub struct LiveReader {
    consumer: Arc<StreamConsumer>,
    pool: PgPool,
    consistency: Consistency,
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

impl LiveReader {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let LiveReader { consumer, pool, consistency, sender } = self;
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            let message = match message {
                Ok(message) => message,
                Err(error) => {
                    tracing::warn!(%error, "live feed consumer error");
                    continue;
                }
            };
            if sender.receiver_count() == 0 {
                continue; // Nobody listens: no need to wait or load.
            }
            let Ok(envelope) = Envelope::from_slice(message.payload().unwrap_or_default()) else {
                continue;
            };
            let Ok(event) = envelope.event() else {
                continue;
            }; // The projector dead-letters it.
            let topic = message.topic().to_owned();
            match live_event(&pool, &consistency, topic, &envelope, event).await {
                Ok(Some(live)) => {
                    let _ = sender.send(Arc::new(live));
                    metrics::counter!("agora_live_events_total").increment(1);
                }
                Ok(None) => {}
                Err(error) => tracing::warn!(error = format!("{error:#}"), "live feed cannot load an event's records"),
            }
        }
    }
}

fn assign_at_end(consumer: &StreamConsumer) -> anyhow::Result<()> {
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    for topic in TOPICS {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).with_context(|| format!("no metadata for {topic}"))?;
        for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
            let (_, high) = consumer.fetch_watermarks(topic, partition.id(), timeout)?;
            assignment.add_partition_offset(topic, partition.id(), Offset::Offset(high))?;
        }
    }
    consumer.assign(&assignment).context("cannot assign the live feed's partitions")?;
    Ok(())
}

async fn live_event(
    pool: &PgPool,
    consistency: &Consistency,
    topic: String,
    envelope: &Envelope,
    event: Event,
) -> anyhow::Result<Option<LiveEvent>> {
    let receipt = WriteReceipt { topic, aggregate_id: envelope.aggregate_id, aggregate_version: envelope.aggregate_version };
    if !consistency.wait(&[receipt], PROJECTION_WAIT).await? {
        tracing::warn!(event_id = %envelope.event_id, "the read model has not applied an event in time; pushing it anyway");
    }
    let user = |id| async move { anyhow::Ok(queries::users(pool, &[id]).await?.into_iter().next()) };
    Ok(match event {
        Event::PostCreated(post) => {
            queries::posts_by_ids(pool, &[post.post_id]).await?.into_iter().next().map(LiveEvent::PostCreated)
        }
        Event::UserRenamed(renamed) => user(renamed.user_id).await?.map(LiveEvent::UserRenamed),
        Event::PointsAwarded(points) => user(points.user_id).await?.map(|user| LiveEvent::PointsChanged {
            user,
            delta: points.delta,
            total: points.total,
            reason: points.reason,
        }),
        Event::UserRegistered(_) => None,
    })
}
