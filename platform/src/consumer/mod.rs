//! The at-least-once Kafka consumer that every durable reader of Agora's
//! topics runs (the gateway's projector, auth-service's points ledger):
//! creation, group membership, positioning, batching, decoding, dead
//! letters, backoff and offset hints in one place. Each user supplies only
//! a [`Handler`]: how to apply a batch inside a transaction, and how to
//! forget its state.
//!
//! Positions cannot lie:
//! - The database that holds the applied state holds the positions, written
//!   in the same transaction as the state (`consumer_position`), and they
//!   are the authority: when the group assigns partitions, they start at the
//!   stored positions (Kafka's committed offsets are only a hint), so a
//!   crash anywhere replays and never skips.
//! - A position is only used with the log it came from: it records the
//!   event read last, and on assignment the log must hold that event at
//!   that offset ([`LogProbe`]). A position from another log (a recreated
//!   topic, a replaced cluster, the embedded broker of an earlier run) is
//!   never used to skip: the consumer says so loudly, the handler forgets
//!   its state, and it is rebuilt from what the log holds.
//! - A reset starts a new generation; every replica of the consumer checks
//!   the generation in each batch's transaction and repositions itself when
//!   it changed.
//! - The batch commits synchronously (it waits for the WAL flush): a client
//!   told that its write was applied is never told otherwise by a crash.
//!
//! Nothing is dropped: a message that does not decode, or whose apply
//! fails deterministically (bad data, a violated constraint), becomes a
//! dead letter with its reason (recorded in the batch's transaction and
//! published to the dead-letter topic; an operator replays or skips it,
//! see [`dead_letters`]), and the partition keeps flowing; any
//! other failure is retried with a pause, the batch whole.

mod dead_letter;
pub mod dead_letters;
mod positions;
mod rebalance;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use agora_schema::{Envelope, Event};
use anyhow::Context;
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Headers, OwnedMessage};
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use dead_letter::{DeadLetters, Kind};
pub use positions::{hand_over, positions as stored_positions, remove, Partition, Position};

use crate::kafka::{KafkaSettings, LogProbe, LogVerdict};
use crate::trace_context::TraceParent;
use rebalance::{DeferredAssignment, Membership};

/// The migrations of the tables the consumer keeps its positions in; every
/// database a consumer writes to runs them.
pub fn migrations() -> sqlx::migrate::Migrator {
    sqlx::migrate!("./consumer-migrations")
}

/// One event as a handler receives it.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub envelope: Envelope,
    pub event: Event,
    /// The trace context the message carried (`traceparent` header).
    pub trace: TraceParent,
    /// The span of its apply (`<consumer> apply`), a child of the publish
    /// that sent it, open until its batch's transaction has ended; none for
    /// a message without a trace context (a backfill's, say) and outside
    /// the consumer. A handler runs its own work for the event in it.
    pub span: tracing::Span,
}

/// A message turned into an event, or the reason it cannot be.
pub fn decode(message: &impl Message) -> Result<Delivery, String> {
    let payload = message.payload().ok_or("the message has no payload")?;
    let envelope = Envelope::from_slice(payload).map_err(|error| error.to_string())?;
    let event = envelope.event().map_err(|error| error.to_string())?;
    let trace = TraceParent::parse(message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|header| header.key == TraceParent::HEADER)
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
    }));
    Ok(Delivery {
        topic: message.topic().to_owned(),
        partition: message.partition(),
        offset: message.offset(),
        envelope,
        event,
        trace,
        span: tracing::Span::none(),
    })
}

/// The span of `delivery`'s apply by `consumer` (see [`Delivery::span`]).
fn apply_span(consumer: &str, delivery: &Delivery) -> tracing::Span {
    if delivery.trace.as_deref().is_none() {
        return tracing::Span::none();
    }
    let span = tracing::info_span!(
        "consumer apply",
        otel.name = format!("{consumer} apply"),
        otel.kind = "consumer",
        consumer,
        topic = %delivery.topic,
        partition = delivery.partition,
        offset = delivery.offset,
        event_type = %delivery.envelope.event_type,
    );
    delivery.trace.continue_in(&span);
    span
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event can never be applied: it goes to the dead letters.
    #[error("{0}")]
    Poison(String),
    /// The failure may pass (the database is away): the batch is retried.
    #[error(transparent)]
    Transient(anyhow::Error),
}

impl From<sqlx::Error> for ApplyError {
    /// Bad data (SQLSTATE class 22) and violated constraints (23) recur
    /// however often the event is retried; anything else may pass.
    fn from(error: sqlx::Error) -> Self {
        let deterministic = error
            .as_database_error()
            .and_then(|error| error.code())
            .is_some_and(|code| code.starts_with("22") || code.starts_with("23"));
        if deterministic {
            ApplyError::Poison(format!("cannot apply: {error}"))
        } else {
            ApplyError::Transient(error.into())
        }
    }
}

/// What a consumer does with its events.
#[async_trait::async_trait]
pub trait Handler: Send + Sync + 'static {
    /// Runs first in every transaction the consumer opens for a batch,
    /// before the generation is checked: where a handler takes the locks
    /// or settings its batches need (the projector locks which read model
    /// it writes to against a switch, see `agora_gateway::projector`).
    async fn begin(&self, _tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
        Ok(())
    }

    /// Applies events (in log order per partition) inside the transaction
    /// that also stores their positions. Every apply must be idempotent:
    /// events are delivered at least once.
    async fn apply(&self, tx: &mut Transaction<'_, Postgres>, events: &[Delivery]) -> Result<(), ApplyError>;

    /// Forgets every state built from the events, inside the transaction
    /// that drops the positions, because they came from another log. What
    /// cannot be rebuilt from the log (a write model) must not be dropped:
    /// an idempotent apply then suffices.
    async fn reset(&self, tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()>;
}

/// How a consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Names the consumer in its positions, its client id and its dead letters.
    pub name: String,
    /// The consumer group; replicas that share one database share the group.
    pub group_id: String,
    pub topics: Vec<String>,
    /// The most events applied in one transaction.
    pub batch_size: usize,
    /// The pause before retrying a batch that failed for a passing reason.
    pub retry_backoff: Duration,
}

/// Where a consumer tells which partitions it is positioned on and
/// consuming: none before the group's first assignment and while a
/// rebalance moves partitions (the state also exported as the gauge
/// `agora_consumer_assigned_partitions`).
pub type Positioned = watch::Sender<Vec<Partition>>;

/// Consumes and applies events until `shutdown`.
pub async fn run(
    pool: PgPool,
    kafka: KafkaSettings,
    settings: ConsumerSettings,
    handler: impl Handler,
    positioned: Positioned,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let (context, mut membership) = DeferredAssignment::new();
    let consumer: StreamConsumer<DeferredAssignment> = kafka
        .consumer_config(&settings.name, &settings.group_id)
        .set("enable.auto.offset.store", "false")
        .create_with_context(context)
        .with_context(|| format!("cannot create the {} consumer", settings.name))?;
    let topics: Vec<&str> = settings.topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).context("cannot subscribe to the topics")?;
    let worker = Worker {
        probe: Arc::new(LogProbe::new(&kafka, &format!("{}-probe", settings.name))?),
        dead_letters: DeadLetters::new(&kafka, &settings.name)?,
        pool,
        settings,
        handler,
        generation: 0,
        assigned: Vec::new(),
        positioned,
        dead_lettered: Default::default(),
    };
    worker.consume(&consumer, &mut membership, &shutdown).await?;
    // Kafka's offsets are a hint; a failure to leave them is no loss.
    let _ = consumer.commit_consumer_state(CommitMode::Sync);
    Ok(())
}

struct Worker<H> {
    pool: PgPool,
    settings: ConsumerSettings,
    handler: H,
    probe: Arc<LogProbe>,
    dead_letters: DeadLetters,
    /// The generation the assigned partitions were positioned in.
    generation: i64,
    assigned: Vec<Partition>,
    positioned: Positioned,
    /// Whether a batch recorded a dead letter since the pending count was refreshed.
    dead_lettered: std::sync::atomic::AtomicBool,
}

/// How often the gauge of pending dead letters is recounted.
const DEAD_LETTERS_REFRESH: Duration = Duration::from_secs(30);

/// How a batch's events are applied within its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isolation {
    /// All at once: one call of the handler.
    WholeBatch,
    /// Each in a savepoint of its own, so that a poisoned one can be
    /// dead-lettered without losing the others (after the whole batch was
    /// poisoned).
    EachEvent,
}

enum BatchError {
    /// An event failed deterministically: retry the batch event by event.
    Poisoned,
    /// Another replica reset the consumer's state: reposition.
    NewGeneration,
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for BatchError {
    fn from(error: E) -> Self {
        BatchError::Failed(error.into())
    }
}

impl<H: Handler> Worker<H> {
    async fn consume(
        mut self,
        consumer: &StreamConsumer<DeferredAssignment>,
        membership: &mut tokio::sync::mpsc::UnboundedReceiver<Membership>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<()> {
        let mut batches = consumer.stream().ready_chunks(self.settings.batch_size);
        // The pending dead letters change by operators' actions elsewhere too.
        let mut pending_refresh = tokio::time::interval(DEAD_LETTERS_REFRESH);
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => return Ok(()),
                _ = pending_refresh.tick() => self.refresh_dead_letters().await,
                decision = membership.recv() => match latest(decision, membership) {
                    Some(Membership::Assigned(partitions)) => {
                        self.assigned = partitions;
                        if !self.position(consumer, shutdown).await? {
                            return Ok(());
                        }
                    }
                    Some(Membership::Revoked) => {
                        self.assigned.clear();
                        self.report_positioned();
                    }
                    None => return Ok(()),
                },
                batch = batches.next() => {
                    let Some(batch) = batch else { return Ok(()) };
                    let messages: Vec<OwnedMessage> = batch
                        .into_iter()
                        .filter_map(|received| match received {
                            Ok(message) => Some(message.detach()),
                            Err(error) => {
                                tracing::warn!(consumer = %self.settings.name, %error, "consumer error");
                                None
                            }
                        })
                        .collect();
                    if messages.is_empty() {
                        continue;
                    }
                    match self.process(&messages, shutdown).await {
                        Some(true) => {
                            if self.dead_lettered.swap(false, std::sync::atomic::Ordering::Relaxed) {
                                self.refresh_dead_letters().await;
                            }
                            let _ = consumer.commit(&offset_hint(&messages), CommitMode::Async);
                        }
                        Some(false) => {
                            if !self.position(consumer, shutdown).await? {
                                return Ok(());
                            }
                        }
                        None => return Ok(()),
                    }
                }
            }
        }
    }

    /// Assigns the partitions the group gave us at their stored positions,
    /// after checking those against the log. False on shutdown.
    async fn position(
        &mut self,
        consumer: &StreamConsumer<DeferredAssignment>,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<bool> {
        loop {
            match self.stored_positions().await {
                Ok(positions) => {
                    let mut assignment = TopicPartitionList::new();
                    for partition in &self.assigned {
                        let offset = positions.get(partition).map_or(Offset::Beginning, |p| Offset::Offset(p.next_offset));
                        assignment.add_partition_offset(&partition.0, partition.1, offset)?;
                    }
                    consumer.assign(&assignment).context("cannot assign the partitions")?;
                    tracing::info!(consumer = %self.settings.name, generation = self.generation, partitions = self.assigned.len(), "positioned");
                    self.report_positioned();
                    return Ok(true);
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.settings.name, error = format!("{error:#}"), "cannot position the consumer yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(false),
                        _ = tokio::time::sleep(self.settings.retry_backoff) => {}
                    }
                }
            }
        }
    }

    async fn refresh_dead_letters(&self) {
        if let Err(error) = dead_letters::refresh_pending(&self.pool, &self.settings.name).await {
            tracing::warn!(consumer = %self.settings.name, %error, "cannot count the pending dead letters");
        }
    }

    fn report_positioned(&self) {
        metrics::gauge!("agora_consumer_assigned_partitions", "consumer" => self.settings.name.clone())
            .set(self.assigned.len() as f64);
        self.positioned.send_replace(self.assigned.clone());
    }

    /// The positions to start the assigned partitions from; when any of
    /// them comes from another log, the state is reset and there are none.
    async fn stored_positions(&mut self) -> anyhow::Result<HashMap<Partition, Position>> {
        let (generation, positions) = positions::load(&self.pool, &self.settings.name).await?;
        self.generation = generation;
        let mine: Vec<(Partition, Position)> =
            self.assigned.iter().filter_map(|partition| positions.get(partition).map(|p| (partition.clone(), *p))).collect();
        let probe = self.probe.clone();
        let foreign = tokio::task::spawn_blocking(move || -> anyhow::Result<Option<String>> {
            for ((topic, partition), position) in mine {
                let read_last = position.next_offset - 1;
                if let LogVerdict::Foreign(reason) = probe.verify(&topic, partition, read_last, position.last_event_id)? {
                    return Ok(Some(reason));
                }
            }
            Ok(None)
        })
        .await??;
        let Some(reason) = foreign else { return Ok(positions) };
        metrics::counter!("agora_consumer_resets_total", "consumer" => self.settings.name.clone()).increment(1);
        tracing::error!(
            consumer = %self.settings.name,
            %reason,
            "the stored positions come from another log (a recreated topic or a new cluster): \
             forgetting them and rebuilding this consumer's state from what the log holds"
        );
        let mut tx = self.pool.begin().await?;
        self.handler.reset(&mut tx).await?;
        self.generation = positions::forget(&mut tx, &self.settings.name).await?;
        tx.commit().await?;
        Ok(HashMap::new())
    }

    /// Applies a batch until it sticks. `Some(true)`: applied; `Some(false)`:
    /// the consumer must reposition first; `None`: shut down meanwhile.
    async fn process(&self, messages: &[OwnedMessage], shutdown: &CancellationToken) -> Option<bool> {
        let mut isolation = Isolation::WholeBatch;
        loop {
            match self.apply_batch(messages, isolation).await {
                Ok(applied) => {
                    metrics::counter!("agora_consumer_events_total", "consumer" => self.settings.name.clone())
                        .increment(applied as u64);
                    return Some(true);
                }
                Err(BatchError::Poisoned) => isolation = Isolation::EachEvent,
                Err(BatchError::NewGeneration) => {
                    tracing::warn!(
                        consumer = %self.settings.name,
                        "the consumer's positions were replaced elsewhere (a reset, or a switch to a rebuilt read model); repositioning"
                    );
                    return Some(false);
                }
                Err(BatchError::Failed(error)) => {
                    tracing::warn!(consumer = %self.settings.name, error = format!("{error:#}"), "cannot apply a batch yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return None,
                        _ = tokio::time::sleep(self.settings.retry_backoff) => {}
                    }
                }
            }
        }
    }

    /// Applies a batch in one transaction with its positions, its events
    /// together or each on its own (see [`Isolation`]).
    async fn apply_batch(&self, messages: &[OwnedMessage], isolation: Isolation) -> Result<usize, BatchError> {
        let name = &self.settings.name;
        let mut tx = self.pool.begin().await?;
        self.handler.begin(&mut tx).await?;
        if positions::generation(&mut tx, name).await? != self.generation {
            return Err(BatchError::NewGeneration);
        }
        let applied_before = positions::positions(&mut tx, name).await?;
        let mut fresh = Vec::with_capacity(messages.len());
        for message in messages {
            let partition = (message.topic().to_owned(), message.partition());
            if applied_before.get(&partition).is_some_and(|p| message.offset() < p.next_offset) {
                continue; // Applied before (a replay after a crash or rebalance).
            }
            match decode(message) {
                Ok(mut delivery) => {
                    delivery.span = apply_span(name, &delivery);
                    fresh.push(delivery);
                }
                Err(reason) => {
                    self.dead_letters.publish(&mut tx, message, Kind::Undecodable, &reason).await?;
                    self.dead_lettered.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
        }
        if !fresh.is_empty() {
            if isolation == Isolation::EachEvent {
                for delivery in &fresh {
                    let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                    match self.handler.apply(&mut savepoint, std::slice::from_ref(delivery)).await {
                        Ok(()) => savepoint.commit().await?,
                        Err(ApplyError::Poison(reason)) => {
                            savepoint.rollback().await?;
                            let message = messages
                                .iter()
                                .find(|m| {
                                    m.offset() == delivery.offset
                                        && m.partition() == delivery.partition
                                        && m.topic() == delivery.topic
                                })
                                .expect("every delivery comes from a message of the batch");
                            self.dead_letters.publish(&mut tx, message, Kind::Rejected, &reason).await?;
                            self.dead_lettered.store(true, std::sync::atomic::Ordering::Relaxed);
                        }
                        Err(ApplyError::Transient(error)) => return Err(error.into()),
                    }
                }
            } else {
                match self.handler.apply(&mut tx, &fresh).await {
                    Ok(()) => {}
                    Err(ApplyError::Poison(_)) => return Err(BatchError::Poisoned),
                    Err(ApplyError::Transient(error)) => return Err(error.into()),
                }
            }
        }
        positions::store(&mut tx, name, &reached(messages)).await?;
        tx.commit().await?;
        Ok(fresh.len())
    }
}

/// The group's latest decision: a rebalance that followed another while
/// the consumer was positioning itself makes the earlier one moot.
fn latest(decision: Option<Membership>, membership: &mut tokio::sync::mpsc::UnboundedReceiver<Membership>) -> Option<Membership> {
    let mut latest = decision?;
    while let Ok(next) = membership.try_recv() {
        latest = next;
    }
    Some(latest)
}

/// For each partition in the batch, the position after its last message.
fn reached(messages: &[OwnedMessage]) -> HashMap<Partition, Position> {
    let mut last: HashMap<(&str, i32), &OwnedMessage> = HashMap::new();
    for message in messages {
        let entry = last.entry((message.topic(), message.partition())).or_insert(message);
        if entry.offset() < message.offset() {
            *entry = message;
        }
    }
    last.into_iter()
        .map(|((topic, partition), message)| {
            let last_event_id =
                message.payload().and_then(|payload| Envelope::from_slice(payload).ok()).map(|envelope| envelope.event_id);
            ((topic.to_owned(), partition), Position { next_offset: message.offset() + 1, last_event_id })
        })
        .collect()
}

/// The same positions as Kafka wants them for a commit.
fn offset_hint(messages: &[OwnedMessage]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for ((topic, partition), position) in reached(messages) {
        let _ = list.add_partition_offset(&topic, partition, Offset::Offset(position.next_offset));
    }
    list
}
