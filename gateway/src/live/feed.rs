//! The live feed: one Kafka reader and one fan-out per gateway process.
//!
//! Each process reads the event topics itself (no consumer group shared
//! with other replicas, starting at the current end), so every subscriber on
//! every replica sees every event. An event is published to subscribers only
//! once the read model reflects it, with the records loaded once for all
//! subscribers. The subscribers of one operation share its execution
//! (`pipeline::subscriptions`), and executions share one bounded buffer: one
//! that falls too far behind is told so and its subscribers are dropped,
//! instead of slowing the others down.
//!
//! Each event is pushed once, in its aggregate's order, and none is dropped:
//! - events of one aggregate go through one lane, in log order; lanes run
//!   side by side, so an event whose projection is slow holds back only
//!   the later events of its own aggregate;
//! - a lane waits for the read model as long as it takes (a failing
//!   database is retried), and pushes what the read model shows if the
//!   projection has still not come after [`GIVE_UP_WAITING`];
//! - a republished event (the outbox publishes at least once) carries an
//!   aggregate version already seen and is not pushed again.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use agora_platform::consumer::{self, Delivery};
use agora_platform::kafka::{self, KafkaSettings, Start};
use agora_schema::receipts::WriteReceipt;
use agora_schema::Event;
use anyhow::Context;
use futures::{Stream, StreamExt};
use rdkafka::consumer::StreamConsumer;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::SlowSubscriber;
use crate::commands::Consistency;
use crate::records::{PostRecord, UserRecord, READ_MODEL_TOPICS};
use crate::sources::read_model::queries;

/// What subscribers receive: an event with the records it concerns, as the
/// read model shows them once it has applied the event.
#[derive(Debug, Clone)]
pub enum LiveEvent {
    PostCreated(PostRecord),
    UserRenamed(UserRecord),
    PointsChanged { user: UserRecord, delta: i32, total: i32, reason: String },
}

/// The sending side; subscriptions take their events from it.
#[derive(Clone)]
pub struct LiveFeed {
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

/// How long one wait for the read model lasts before it is logged and
/// started again.
const PROJECTION_WAIT: Duration = Duration::from_secs(10);

/// How long a lane waits for an event's projection in all before it pushes
/// what the read model shows (the projector may have dead-lettered it).
const GIVE_UP_WAITING: Duration = Duration::from_secs(120);

/// How many aggregates' last pushed versions are remembered, to recognise
/// republished events.
const REMEMBERED_AGGREGATES: u64 = 1 << 18;

impl LiveFeed {
    /// A feed whose buffer holds `capacity` events for the slowest execution.
    pub fn new(capacity: usize) -> Self {
        let (sender, _) = broadcast::channel(capacity);
        LiveFeed { sender }
    }

    /// The feed's events for one subscriber, from now on. Falling behind the
    /// shared buffer ends the stream and tells `slow`, so the connection
    /// drops the subscriber.
    pub fn events(&self, slow: Option<SlowSubscriber>) -> impl Stream<Item = Arc<LiveEvent>> {
        BroadcastStream::new(self.sender.subscribe())
            .map(move |received| match received {
                Ok(event) => Some(event),
                Err(BroadcastStreamRecvError::Lagged(missed)) => {
                    if let Some(slow) = &slow {
                        slow.fell_behind(missed);
                    }
                    None
                }
            })
            .take_while(|event| std::future::ready(event.is_some()))
            .filter_map(std::future::ready)
    }

    /// A reader positioned at the current end of every event topic.
    pub async fn reader(&self, kafka: &KafkaSettings, pool: PgPool, consistency: Consistency) -> anyhow::Result<LiveReader> {
        let group = format!("agora-gateway-live-{}", Uuid::now_v7());
        let consumer: StreamConsumer =
            kafka.consumer_config("gateway-live-feed", &group).create().context("cannot create the live feed's consumer")?;
        let consumer = Arc::new(consumer);
        let positioned = consumer.clone();
        tokio::task::spawn_blocking(move || kafka::assign_all(&*positioned, &READ_MODEL_TOPICS, Start::End)).await??;
        let pusher = Pusher { pool, consistency, sender: self.sender.clone() };
        Ok(LiveReader { consumer, pusher: Arc::new(pusher) })
    }
}

/// Reads the events and feeds them to subscribers.
pub struct LiveReader {
    consumer: Arc<StreamConsumer>,
    pusher: Arc<Pusher>,
}

/// An aggregate, by its topic and id.
type Aggregate = (String, Uuid);

/// The events of one aggregate waiting to be pushed, in order.
struct Lane {
    events: mpsc::UnboundedSender<Delivery>,
    /// Events sent and not yet pushed; an idle lane is closed.
    pending: Arc<AtomicUsize>,
}

impl LiveReader {
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let LiveReader { consumer, pusher } = self;
        let mut lanes: HashMap<Aggregate, Lane> = HashMap::new();
        let pushed_versions: moka::sync::Cache<Aggregate, i64> = moka::sync::Cache::new(REMEMBERED_AGGREGATES);
        loop {
            let message = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                message = consumer.recv() => message,
            };
            let delivery = match message.as_ref().map(consumer::decode) {
                Ok(Ok(delivery)) => delivery,
                Ok(Err(_)) => continue, // The projector dead-letters it.
                Err(error) => {
                    tracing::warn!(%error, "live feed consumer error");
                    continue;
                }
            };
            if matches!(delivery.event, Event::UserRegistered(_)) {
                continue; // No subscription shows a registration.
            }
            let aggregate = (delivery.topic.clone(), delivery.envelope.aggregate_id);
            let version = delivery.envelope.aggregate_version;
            if pushed_versions.get(&aggregate).is_some_and(|seen| seen >= version) {
                metrics::counter!("agora_live_duplicates_skipped_total").increment(1);
                continue;
            }
            pushed_versions.insert(aggregate.clone(), version);
            if pusher.sender.receiver_count() == 0 {
                continue; // Nobody listens: no need to wait or load.
            }
            if lanes.len() > 1024 {
                lanes.retain(|_, lane| lane.pending.load(Ordering::Acquire) > 0);
            }
            let lane = lanes.entry(aggregate).or_insert_with(|| pusher.clone().open_lane(shutdown.child_token()));
            lane.pending.fetch_add(1, Ordering::AcqRel);
            let _ = lane.events.send(delivery);
        }
    }
}

/// Turns events into live events, once the read model reflects them.
struct Pusher {
    pool: PgPool,
    consistency: Consistency,
    sender: broadcast::Sender<Arc<LiveEvent>>,
}

impl Pusher {
    /// A task that pushes one aggregate's events in the order it gets them.
    fn open_lane(self: Arc<Self>, shutdown: CancellationToken) -> Lane {
        let (events, mut received) = mpsc::unbounded_channel::<Delivery>();
        let pending = Arc::new(AtomicUsize::new(0));
        let done = pending.clone();
        tokio::spawn(async move {
            while let Some(delivery) = received.recv().await {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = self.push(delivery) => {}
                }
                done.fetch_sub(1, Ordering::AcqRel);
            }
        });
        Lane { events, pending }
    }

    async fn push(&self, delivery: Delivery) {
        let receipt = WriteReceipt {
            topic: delivery.topic.clone(),
            aggregate_id: delivery.envelope.aggregate_id,
            aggregate_version: delivery.envelope.aggregate_version,
        };
        let started = tokio::time::Instant::now();
        loop {
            match self.consistency.wait(std::slice::from_ref(&receipt), PROJECTION_WAIT).await {
                Ok(true) => break,
                Ok(false) if started.elapsed() >= GIVE_UP_WAITING => {
                    metrics::counter!("agora_live_events_unprojected_total").increment(1);
                    tracing::error!(event_id = %delivery.envelope.event_id, "the read model has not applied an event in time; pushing what it shows");
                    break;
                }
                Ok(false) => {
                    tracing::warn!(event_id = %delivery.envelope.event_id, "still waiting for the read model to apply an event")
                }
                Err(error) => {
                    tracing::warn!(%error, "the live feed cannot check the read model yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
        loop {
            match live_event(&self.pool, &delivery.event).await {
                Ok(Some(live)) => {
                    let _ = self.sender.send(Arc::new(live));
                    metrics::counter!("agora_live_events_total").increment(1);
                    return;
                }
                Ok(None) => return,
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "the live feed cannot load an event's records yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        }
    }
}

/// The live event for `event`, with the records the read model shows.
async fn live_event(pool: &PgPool, event: &Event) -> anyhow::Result<Option<LiveEvent>> {
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
            reason: points.reason.clone(),
        }),
        Event::UserRegistered(_) => None,
    })
}
