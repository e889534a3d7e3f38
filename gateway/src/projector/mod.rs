//! The projector: a Kafka consumer group over the user, post and points
//! topics that applies every event to the read model.
//!
//! Events are applied in batches, one transaction each, and the batch's
//! consumer position is written to `projector_offset` in the same
//! transaction, so a crash replays, never skips; replayed events are skipped
//! by offset and are harmless anyway (every apply is idempotent). An event
//! that cannot be decoded, or whose apply fails deterministically, goes to
//! the dead-letter topic and the partition keeps flowing. Each committed
//! batch notifies `agora_projection`, which wakes read-your-writes waiters
//! on every gateway replica.

mod apply;
mod dead_letter;

use std::collections::HashMap;
use std::time::Duration;

use agora_platform::kafka::KafkaSettings;
use agora_schema::{topics, Envelope, Event};
use anyhow::Context;
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

pub use dead_letter::DeadLetters;

/// The Postgres channel notified when a batch of events is committed.
pub const NOTIFY_CHANNEL: &str = "agora_projection";

/// The topics the read model is built from.
pub const TOPICS: [&str; 3] = [topics::USER, topics::POST, topics::POINTS];

#[derive(Debug, Clone)]
pub struct ProjectorSettings {
    /// The consumer group; replicas sharing one read model share the group.
    pub group_id: String,
    /// The most events applied in one transaction.
    pub batch_size: usize,
    /// The pause before retrying a batch that failed for a passing reason.
    pub retry_backoff: Duration,
}

pub struct Projector {
    pool: PgPool,
    kafka: KafkaSettings,
    settings: ProjectorSettings,
}

/// A message turned into an event, or the reason it cannot be.
fn decode(message: &OwnedMessage) -> Result<(Envelope, Event), String> {
    let payload = message.payload().ok_or("the message has no payload")?;
    let envelope = Envelope::from_slice(payload).map_err(|error| error.to_string())?;
    let event = envelope.event().map_err(|error| error.to_string())?;
    Ok((envelope, event))
}

/// True for failures that will recur however often the event is retried
/// (bad data, a violated constraint), as opposed to a database that is away.
fn is_deterministic(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|error| error.code()).is_some_and(|code| code.starts_with("22") || code.starts_with("23"))
}

enum BatchError {
    /// An event failed deterministically: retry the batch event by event.
    Poisoned,
    Failed(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for BatchError {
    fn from(error: E) -> Self {
        BatchError::Failed(error.into())
    }
}

impl Projector {
    pub fn new(pool: PgPool, kafka: KafkaSettings, settings: ProjectorSettings) -> Self {
        Projector { pool, kafka, settings }
    }

    /// Consumes and applies events until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let consumer: StreamConsumer = self
            .kafka
            .consumer_config("gateway-projector", &self.settings.group_id)
            .create()
            .context("cannot create the projector's consumer")?;
        consumer.subscribe(&TOPICS).context("cannot subscribe to the event topics")?;
        let dead_letters = DeadLetters::new(&self.kafka, "gateway-projector")?;
        let mut batches = consumer.stream().ready_chunks(self.settings.batch_size);
        loop {
            let batch = tokio::select! {
                _ = shutdown.cancelled() => break,
                batch = batches.next() => batch,
            };
            let Some(batch) = batch else { break };
            let messages: Vec<OwnedMessage> = batch
                .into_iter()
                .filter_map(|received| match received {
                    Ok(message) => Some(message.detach()),
                    Err(error) => {
                        tracing::warn!(%error, "projector consumer error");
                        None
                    }
                })
                .collect();
            if messages.is_empty() {
                continue;
            }
            let mut careful = false;
            loop {
                match self.apply_batch(&messages, &dead_letters, careful).await {
                    Ok(applied) => {
                        tracing::debug!(received = messages.len(), applied, "projected a batch");
                        metrics::counter!("agora_projector_events_total").increment(applied as u64);
                        break;
                    }
                    Err(BatchError::Poisoned) => careful = true,
                    Err(BatchError::Failed(error)) => {
                        tracing::warn!(error = format!("{error:#}"), "projector cannot apply a batch yet; retrying");
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(self.settings.retry_backoff) => {}
                        }
                    }
                }
            }
            // Kafka's committed offset is only a hint: the database holds the position.
            let _ = consumer.commit(&partition_list(&next_offsets(&messages)), CommitMode::Async);
        }
        Ok(())
    }

    /// Applies a batch in one transaction with its position. `careful`
    /// isolates each event in a savepoint so that a poisoned one can be
    /// dead-lettered without losing the others.
    async fn apply_batch(
        &self,
        messages: &[OwnedMessage],
        dead_letters: &DeadLetters,
        careful: bool,
    ) -> Result<usize, BatchError> {
        let mut tx = self.pool.begin().await?;
        // The batch and its position commit together and can be replayed from
        // Kafka, so the commit need not wait for the WAL flush: a crash loses
        // at most the last few batches, which the projector then applies again.
        sqlx::query("set local synchronous_commit = off").execute(&mut *tx).await?;
        let applied_before: HashMap<(String, i32), i64> =
            sqlx::query_as::<_, (String, i32, i64)>("select topic, partition, next_offset from projector_offset")
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .map(|(topic, partition, next)| ((topic, partition), next))
                .collect();
        let mut applied = 0;
        for message in messages {
            let position = (message.topic().to_owned(), message.partition());
            if applied_before.get(&position).is_some_and(|next| message.offset() < *next) {
                continue;
            }
            let (envelope, event) = match decode(message) {
                Ok(decoded) => decoded,
                Err(reason) => {
                    dead_letters.publish(message, &reason).await?;
                    continue;
                }
            };
            if !careful {
                match apply::apply(&mut tx, &envelope, &event).await {
                    Ok(()) => applied += 1,
                    Err(error) if is_deterministic(&error) => return Err(BatchError::Poisoned),
                    Err(error) => return Err(error.into()),
                }
                continue;
            }
            let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
            match apply::apply(&mut savepoint, &envelope, &event).await {
                Ok(()) => {
                    savepoint.commit().await?;
                    applied += 1;
                }
                Err(error) if is_deterministic(&error) => {
                    savepoint.rollback().await?;
                    dead_letters.publish(message, &format!("cannot apply: {error}")).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
        // Every partition's position in one statement.
        let positions = next_offsets(messages);
        sqlx::query(
            "insert into projector_offset (topic, partition, next_offset, updated_at)
             select topic, partition, next_offset, now() from unnest($1::text[], $2::int[], $3::bigint[]) as p (topic, partition, next_offset)
             on conflict (topic, partition) do update
             set next_offset = greatest(projector_offset.next_offset, excluded.next_offset), updated_at = now()",
        )
        .bind(positions.iter().map(|&(topic, _, _)| topic).collect::<Vec<_>>())
        .bind(positions.iter().map(|&(_, partition, _)| partition).collect::<Vec<_>>())
        .bind(positions.iter().map(|&(_, _, next)| next).collect::<Vec<_>>())
        .execute(&mut *tx)
        .await?;
        sqlx::query("select pg_notify($1, '')").bind(NOTIFY_CHANNEL).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(applied)
    }
}

/// For each partition in the batch, the offset after its last message.
fn next_offsets(messages: &[OwnedMessage]) -> Vec<(&str, i32, i64)> {
    let mut last: HashMap<(&str, i32), i64> = HashMap::new();
    for message in messages {
        let entry = last.entry((message.topic(), message.partition())).or_insert(message.offset());
        *entry = (*entry).max(message.offset());
    }
    last.into_iter().map(|((topic, partition), offset)| (topic, partition, offset + 1)).collect()
}

/// The same positions as Kafka wants them for a commit.
fn partition_list(positions: &[(&str, i32, i64)]) -> TopicPartitionList {
    let mut list = TopicPartitionList::new();
    for &(topic, partition, next) in positions {
        let _ = list.add_partition_offset(topic, partition, Offset::Offset(next));
    }
    list
}
