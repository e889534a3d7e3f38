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
//!
//! Each push carries the feed's [`Position`] once it was pushed, the
//! subscriber's resume cursor. A subscription resumed from a position first
//! gets, read again from the log, the events the feed had settled when it
//! subscribed and the position had not, then the feed's pushes from then
//! on: nothing is missed, nothing comes twice. The position and the
//! subscribers are taken under one lock with every push, which is what makes
//! "from then on" exact.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agora_platform::consumer::{self, Delivery};
use agora_platform::kafka::{self, KafkaSettings, Start};
use agora_schema::receipts::WriteReceipt;
use agora_schema::Event;
use anyhow::Context;
use futures::{Stream, StreamExt};
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc, Notify, Semaphore};
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
use tokio_stream::wrappers::BroadcastStream;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::position::{topic_index, topic_name, Anchor, PartitionId, Position};
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

/// One pushed event and the feed's position once it was pushed: a
/// subscriber who got it (and every push before) has seen every settled
/// event up to that position ([`Position`]).
#[derive(Debug, Clone)]
pub struct Pushed {
    pub event: LiveEvent,
    pub position: Position,
}

/// Why a subscription cannot resume from a position.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// The events since the position cannot be served (any more).
    #[error("{0}")]
    Expired(String),
    /// The position is another subscription's: each field's results carry
    /// their own.
    #[error("the cursor is another subscription's: pass the cursor of this subscription's results")]
    Foreign,
    /// The log or the read model cannot be read now: retryable.
    #[error("cannot replay the missed events now: {0:#}")]
    Unavailable(anyhow::Error),
}

/// The sending side; subscriptions take their events from it.
#[derive(Clone)]
pub struct LiveFeed(Arc<Shared>);

struct Shared {
    sender: broadcast::Sender<Arc<Pushed>>,
    /// The feed's position. It is locked for every push and every new
    /// subscriber, so that a subscriber knows which pushes reach it: those
    /// after the position it was given.
    position: Mutex<Position>,
    resolver: Resolver,
    kafka: KafkaSettings,
    /// The most events a resumed subscription may have missed.
    max_replay: u64,
    /// Events held (read, waiting to be pushed), and a signal when one is
    /// pushed.
    held: AtomicUsize,
    released: Notify,
    /// Replays running at once.
    replays: Semaphore,
}

/// The most events held at once ([`LiveReader::run`]).
const MAX_HELD: usize = 4096;

/// The most replays that run at once; more wait their turn.
const MAX_REPLAYS: usize = 8;

/// How long one wait for the read model lasts before it is logged and
/// started again.
const PROJECTION_WAIT: Duration = Duration::from_secs(10);

/// How long a lane waits for an event's projection in all before it pushes
/// what the read model shows (the projector may have dead-lettered it).
const GIVE_UP_WAITING: Duration = Duration::from_secs(120);

/// How many aggregates' last pushed versions are remembered, to recognise
/// republished events.
const REMEMBERED_AGGREGATES: u64 = 1 << 18;

/// How long a replay may go without reading an event it expects.
const REPLAY_STALL: Duration = Duration::from_secs(30);

impl LiveFeed {
    /// A feed whose buffer holds `capacity` events for the slowest
    /// execution, and whose subscriptions resume over at most `max_replay`
    /// missed events; its reader is positioned at the current end of every
    /// event topic.
    pub async fn start(
        capacity: usize,
        max_replay: u64,
        kafka: &KafkaSettings,
        pool: PgPool,
        consistency: Consistency,
    ) -> anyhow::Result<(LiveFeed, LiveReader)> {
        let group = format!("agora-gateway-live-{}", Uuid::now_v7());
        let consumer: StreamConsumer =
            kafka.consumer_config("gateway-live-feed", &group).create().context("cannot create the live feed's consumer")?;
        let consumer = Arc::new(consumer);
        let positioned = consumer.clone();
        let assigned =
            tokio::task::spawn_blocking(move || kafka::assign_all(&*positioned, &READ_MODEL_TOPICS, Start::End)).await??;
        let start: Vec<_> = assigned
            .elements()
            .iter()
            .filter_map(|element| {
                let topic = topic_index(element.topic())?;
                Some(((topic, element.partition()), element.offset().to_raw().unwrap_or(0).max(0)))
            })
            .collect();
        let (sender, _) = broadcast::channel(capacity);
        let feed = LiveFeed(Arc::new(Shared {
            sender,
            position: Mutex::new(Position::starting(start)),
            resolver: Resolver { pool, consistency },
            kafka: kafka.clone(),
            max_replay,
            held: AtomicUsize::new(0),
            released: Notify::new(),
            replays: Semaphore::new(MAX_REPLAYS),
        }));
        Ok((feed.clone(), LiveReader { consumer, feed }))
    }

    fn position(&self) -> MutexGuard<'_, Position> {
        // Nothing panics while the lock is held with the position half-changed.
        self.0.position.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The feed's position now, and every push from then on.
    fn subscribe(&self) -> (Position, broadcast::Receiver<Arc<Pushed>>) {
        let position = self.position();
        (position.clone(), self.0.sender.subscribe())
    }

    /// The feed's events for one subscriber, from now on. Falling behind the
    /// shared buffer ends the stream and tells `slow`, so the connection
    /// drops the subscriber.
    pub fn events(&self, slow: Option<SlowSubscriber>) -> impl Stream<Item = Arc<Pushed>> {
        live(self.subscribe().1, slow)
    }

    /// The events of `topic` a subscriber at `from` missed, in order, then
    /// the feed's events from now on, with no gap and no repeat; each carries the
    /// subscriber's position (`from` and what it got since). A position
    /// this feed cannot serve ends the stream with an error.
    pub fn resume(
        &self,
        from: Position,
        topic: &str,
        slow: Option<SlowSubscriber>,
    ) -> impl Stream<Item = Result<Arc<Pushed>, ResumeError>> {
        let (at, receiver) = self.subscribe();
        let (replayed, missed) = mpsc::channel(64);
        tokio::spawn(replay(self.0.clone(), from.clone(), topic_index(topic), at, replayed));
        let live = live(receiver, slow).filter_map(move |pushed| {
            // Pushed after the subscribe; the subscriber may have got it
            // from another replica before it resumed here.
            let seen = pushed.position.anchor().is_some_and(|anchor| from.is_settled(anchor.partition, anchor.offset));
            std::future::ready(
                (!seen).then(|| Ok(Arc::new(Pushed { event: pushed.event.clone(), position: from.union(&pushed.position) }))),
            )
        });
        // The replay first; an error ends the stream.
        futures::stream::unfold((Some(missed), Some(live.boxed())), |(missed, live)| async move {
            if let Some(mut missed) = missed {
                match missed.recv().await {
                    Some(Ok(pushed)) => return Some((Ok(pushed), (Some(missed), live))),
                    Some(Err(error)) => return Some((Err(error), (None, None))),
                    None => {} // Replayed all: live events follow.
                }
            }
            let mut live = live?;
            let next = live.next().await?;
            Some((next, (None, Some(live))))
        })
    }
}

/// A subscriber's stream of pushes; falling behind ends it and tells `slow`.
fn live(receiver: broadcast::Receiver<Arc<Pushed>>, slow: Option<SlowSubscriber>) -> impl Stream<Item = Arc<Pushed>> {
    BroadcastStream::new(receiver)
        .map(move |received| match received {
            Ok(pushed) => Some(pushed),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                if let Some(slow) = &slow {
                    slow.fell_behind(missed);
                }
                None
            }
        })
        .take_while(|pushed| std::future::ready(pushed.is_some()))
        .filter_map(std::future::ready)
}

/// Reads the events and feeds them to subscribers.
pub struct LiveReader {
    consumer: Arc<StreamConsumer>,
    feed: LiveFeed,
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
        let LiveReader { consumer, feed } = self;
        let mut lanes: HashMap<Aggregate, Lane> = HashMap::new();
        let pushed_versions: moka::sync::Cache<Aggregate, i64> = moka::sync::Cache::new(REMEMBERED_AGGREGATES);
        loop {
            // At most MAX_HELD events wait for the read model at once: a
            // stalled projection holds the feed back rather than growing
            // every position (and so every cursor) without bound.
            while feed.0.held.load(Ordering::Acquire) >= MAX_HELD {
                // A release between the check and the wait left a permit.
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = feed.0.released.notified() => {}
                }
            }
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
            let Some(partition) = topic_index(message.topic()).map(|topic| (topic, message.partition())) else { continue };
            // Whatever is not held below is settled as it is read: the
            // position and the subscribers are taken under one lock.
            let mut position = feed.position();
            position.read(partition, message.offset());
            let Ok(delivery) = consumer::decode(&message) else { continue }; // The projector dead-letters it.
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
            // Nobody listens: no need to wait or load (a resumed subscription
            // replays it), unless the aggregate's earlier events still wait
            // in its lane (this one must not be settled before them).
            let waiting = lanes.get(&aggregate).is_some_and(|lane| lane.pending.load(Ordering::Acquire) > 0);
            if feed.0.sender.receiver_count() == 0 && !waiting {
                continue;
            }
            position.hold(partition, delivery.offset);
            drop(position);
            if lanes.len() > 1024 {
                lanes.retain(|_, lane| lane.pending.load(Ordering::Acquire) > 0);
            }
            let lane = lanes.entry(aggregate).or_insert_with(|| open_lane(feed.clone(), shutdown.child_token()));
            lane.pending.fetch_add(1, Ordering::AcqRel);
            feed.0.held.fetch_add(1, Ordering::AcqRel);
            let _ = lane.events.send(delivery);
        }
    }
}

/// A task that pushes one aggregate's events in the order it gets them.
fn open_lane(feed: LiveFeed, shutdown: CancellationToken) -> Lane {
    let (events, mut received) = mpsc::unbounded_channel::<Delivery>();
    let pending = Arc::new(AtomicUsize::new(0));
    let done = pending.clone();
    tokio::spawn(async move {
        while let Some(delivery) = received.recv().await {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = push(&feed, delivery) => {}
            }
            done.fetch_sub(1, Ordering::AcqRel);
        }
    });
    Lane { events, pending }
}

/// Pushes one held event once the read model shows it, and settles it.
async fn push(feed: &LiveFeed, delivery: Delivery) {
    let live = feed.0.resolver.resolve(&delivery, GIVE_UP_WAITING).await;
    feed.0.held.fetch_sub(1, Ordering::AcqRel);
    feed.0.released.notify_one();
    let Some(partition) = topic_index(&delivery.topic).map(|topic| (topic, delivery.partition)) else { return };
    let mut position = feed.position();
    position.settle(partition, delivery.offset);
    if let Some(event) = live {
        let anchor = Anchor::new(partition, delivery.offset, delivery.envelope.event_id);
        let _ = feed.0.sender.send(Arc::new(Pushed { event, position: position.clone().anchored(anchor) }));
        metrics::counter!("agora_live_events_total").increment(1);
    }
}

/// Replays to a subscriber at `from` the events of `topic` (the one its
/// subscription shows) settled at `at` (the feed's position when it
/// subscribed) that were not settled at `from`, in each partition's order,
/// then ends (the feed's pushes follow).
async fn replay(
    shared: Arc<Shared>,
    from: Position,
    topic: Option<u8>,
    at: Position,
    out: mpsc::Sender<Result<Arc<Pushed>, ResumeError>>,
) {
    let replayed = async {
        let _turn = shared.replays.acquire().await.map_err(|error| ResumeError::Unavailable(error.into()))?;
        replay_into(&shared, &from, topic, &at, &out).await
    };
    let outcome = tokio::select! {
        outcome = replayed => outcome,
        // The subscriber left: nothing more to replay.
        _ = out.closed() => Ok(()),
    };
    if let Err(error) = outcome {
        metrics::counter!("agora_live_resumes_refused_total", "reason" => match error {
            ResumeError::Expired(_) => "expired",
            ResumeError::Foreign => "foreign",
            ResumeError::Unavailable(_) => "unavailable",
        })
        .increment(1);
        let _ = out.send(Err(error)).await;
    }
}

async fn replay_into(
    shared: &Shared,
    from: &Position,
    topic: Option<u8>,
    at: &Position,
    out: &mpsc::Sender<Result<Arc<Pushed>, ResumeError>>,
) -> Result<(), ResumeError> {
    // Per partition, the offsets to read: from the first one `from` has
    // not settled to the last one the feed had read.
    let ranges: BTreeMap<PartitionId, (i64, i64)> = at
        .extents()
        .filter(|(partition, _, _)| Some(partition.0) == topic)
        .filter_map(|(partition, _, next)| {
            Some((partition, (from.first_unsettled(partition), next))).filter(|(_, (start, end))| start < end)
        })
        .collect();
    if from.anchor().is_some_and(|anchor| Some(anchor.partition.0) != topic) {
        return Err(ResumeError::Foreign);
    }
    let missed: i64 = ranges.values().map(|(start, end)| end - start).sum();
    if missed as u64 > shared.max_replay {
        return Err(ResumeError::Expired(format!(
            "the subscription missed {missed} events, more than the {} a resume replays: subscribe again without a cursor",
            shared.max_replay
        )));
    }
    let consumer = replay_consumer(&shared.kafka, from, &ranges).await?;
    metrics::counter!("agora_live_resumes_total").increment(1);
    if ranges.is_empty() {
        return Ok(());
    }
    // How far each partition is replayed: offsets below are done.
    let mut progress: BTreeMap<PartitionId, i64> = ranges.iter().map(|(&partition, &(start, _))| (partition, start)).collect();
    let mut pushed_versions: HashMap<Aggregate, i64> = HashMap::new();
    let mut replayed = 0u64;
    while progress.iter().any(|(partition, done)| *done < ranges[partition].1) {
        let message = match tokio::time::timeout(REPLAY_STALL, consumer.recv()).await {
            Err(_) => return Err(ResumeError::Unavailable(anyhow::anyhow!("the log stalled for {REPLAY_STALL:?}"))),
            Ok(Err(error)) => return Err(ResumeError::Unavailable(error.into())),
            Ok(Ok(message)) => message,
        };
        let Some(partition) = topic_index(message.topic()).map(|topic| (topic, message.partition())) else { continue };
        let (Some(done), Some(&(_, end))) = (progress.get_mut(&partition), ranges.get(&partition)) else { continue };
        let offset = message.offset();
        if offset < *done || offset >= end {
            continue;
        }
        *done = offset + 1;
        let Ok(delivery) = consumer::decode(&message) else { continue };
        if matches!(delivery.event, Event::UserRegistered(_)) {
            continue;
        }
        // Every version in the range counts, seen before, to be pushed live
        // or replayed: a republished copy of any of them is not replayed.
        let aggregate = (delivery.topic.clone(), delivery.envelope.aggregate_id);
        if pushed_versions.get(&aggregate).is_some_and(|&seen| seen >= delivery.envelope.aggregate_version) {
            continue; // Republished.
        }
        pushed_versions.insert(aggregate, delivery.envelope.aggregate_version);
        if !at.is_settled(partition, offset) || from.is_settled(partition, offset) {
            continue; // Still to be pushed live, or seen before.
        }
        let resolved = tokio::time::timeout(REPLAY_STALL, shared.resolver.resolve(&delivery, PROJECTION_WAIT)).await;
        let resolved = resolved
            .map_err(|_| ResumeError::Unavailable(anyhow::anyhow!("the read model could not be read for {REPLAY_STALL:?}")))?;
        let Some(event) = resolved else { continue };
        let anchor = Anchor::new(partition, offset, delivery.envelope.event_id);
        let position = from.union(&at.before(&progress)).anchored(anchor);
        replayed += 1;
        if out.send(Ok(Arc::new(Pushed { event, position }))).await.is_err() {
            return Ok(()); // The subscriber left.
        }
    }
    metrics::counter!("agora_live_events_replayed_total").increment(replayed);
    Ok(())
}

/// A consumer on `ranges`, once the log is known to still hold them and to
/// be the log `from` was taken on.
async fn replay_consumer(
    kafka: &KafkaSettings,
    from: &Position,
    ranges: &BTreeMap<PartitionId, (i64, i64)>,
) -> Result<StreamConsumer, ResumeError> {
    let retained = Arc::new(consumer_for(kafka)?);
    let (checked, from_at, ranges_at) = (retained.clone(), from.clone(), ranges.clone());
    tokio::task::spawn_blocking(move || check_retained(&checked, &from_at, &ranges_at))
        .await
        .map_err(|error| ResumeError::Unavailable(error.into()))??;
    if let Some(anchor) = from.anchor() {
        check_anchor(&consumer_for(kafka)?, anchor).await?;
    }
    let mut assignment = TopicPartitionList::new();
    for (&(topic, partition), &(start, _)) in ranges {
        assignment.add_partition_offset(topic_name(topic), partition, Offset::Offset(start)).map_err(unavailable)?;
    }
    retained.assign(&assignment).map_err(unavailable)?;
    Ok(Arc::into_inner(retained).expect("the check is done with the consumer"))
}

fn consumer_for(kafka: &KafkaSettings) -> Result<StreamConsumer, ResumeError> {
    // Assigned, never in a group: the id only names it.
    let group = format!("agora-gateway-replay-{}", Uuid::now_v7());
    kafka.consumer_config("gateway-live-replay", &group).create().map_err(unavailable)
}

fn unavailable(error: rdkafka::error::KafkaError) -> ResumeError {
    ResumeError::Unavailable(error.into())
}

fn another_log() -> ResumeError {
    ResumeError::Expired(
        "the cursor was taken on another log (the topics were replaced): subscribe again without a cursor".into(),
    )
}

/// Whether the log still holds what a replay from `from` reads, and holds
/// every event `from` names. Blocking.
fn check_retained(
    consumer: &StreamConsumer,
    from: &Position,
    ranges: &BTreeMap<PartitionId, (i64, i64)>,
) -> Result<(), ResumeError> {
    for (partition, _, next) in from.extents() {
        let (low, high) =
            consumer.fetch_watermarks(topic_name(partition.0), partition.1, Duration::from_secs(10)).map_err(unavailable)?;
        if next > high {
            return Err(another_log());
        }
        if ranges.get(&partition).is_some_and(|&(start, _)| start < low) {
            return Err(ResumeError::Expired(
                "the events since the cursor are no longer retained: subscribe again without a cursor".into(),
            ));
        }
    }
    Ok(())
}

/// Whether the log holds the cursor's own event where the cursor says.
async fn check_anchor(consumer: &StreamConsumer, anchor: Anchor) -> Result<(), ResumeError> {
    let mut assignment = TopicPartitionList::new();
    let (topic, partition) = (topic_name(anchor.partition.0), anchor.partition.1);
    assignment.add_partition_offset(topic, partition, Offset::Offset(anchor.offset)).map_err(unavailable)?;
    consumer.assign(&assignment).map_err(unavailable)?;
    let timeout = Duration::from_secs(10);
    let message = match tokio::time::timeout(timeout, consumer.recv()).await {
        Err(_) => return Err(ResumeError::Unavailable(anyhow::anyhow!("the cursor's event was not read within {timeout:?}"))),
        Ok(message) => message.map_err(unavailable)?,
    };
    match consumer::decode(&message) {
        Ok(delivery) if message.offset() == anchor.offset && anchor.is(delivery.envelope.event_id) => Ok(()),
        _ => Err(another_log()),
    }
}

/// Turns events into live events once the read model reflects them.
struct Resolver {
    pool: PgPool,
    consistency: Consistency,
}

impl Resolver {
    /// The live event of `delivery` once the read model shows it (or, after
    /// `give_up`, what the read model shows); `None` if it shows nothing.
    async fn resolve(&self, delivery: &Delivery, give_up: Duration) -> Option<LiveEvent> {
        let receipt = WriteReceipt {
            topic: delivery.topic.clone(),
            aggregate_id: delivery.envelope.aggregate_id,
            aggregate_version: delivery.envelope.aggregate_version,
        };
        let started = tokio::time::Instant::now();
        loop {
            match self.consistency.wait(std::slice::from_ref(&receipt), PROJECTION_WAIT.min(give_up)).await {
                Ok(true) => break,
                Ok(false) if started.elapsed() >= give_up => {
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
                Ok(live) => return live,
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
        // The name the event gave, though the read model may show a later one.
        Event::UserRenamed(renamed) => user(renamed.user_id)
            .await?
            .map(|user| LiveEvent::UserRenamed(UserRecord { display_name: renamed.display_name.clone(), ..user })),
        Event::PointsAwarded(points) => user(points.user_id).await?.map(|user| LiveEvent::PointsChanged {
            user,
            delta: points.delta,
            total: points.total,
            reason: points.reason.clone(),
        }),
        Event::UserRegistered(_) => None,
    })
}
