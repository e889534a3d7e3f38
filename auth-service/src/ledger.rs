//! The points ledger: consumes `agora.post.v1` and awards 10 points to the
//! author of every post, exactly once per PostCreated event (the event id
//! is recorded in `processed_event` in the same transaction as the award),
//! and publishes PointsAwarded with the new total through the outbox.
//!
//! The post producer knows nothing of this consumer: a new reaction to an
//! event is a new subscriber, not a change to the producer.

use std::time::Duration;

use agora_platform::graphql::TraceParent;
use agora_platform::kafka::KafkaSettings;
use agora_platform::outbox;
use agora_schema::{topics, Envelope, Event, PointsAwarded, PostCreated};
use anyhow::Context;
use chrono::Utc;
use futures::StreamExt;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Headers;
use rdkafka::Message;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

pub const POINTS_PER_POST: i32 = 10;
pub const REASON_POST_CREATED: &str = "POST_CREATED";
const CONSUMER_NAME: &str = "points-ledger";

/// What became of one event.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Awarded { total: i32 },
    AlreadyApplied,
    NotForUs,
}

/// The most events applied in one transaction.
const BATCH_SIZE: usize = 200;

/// Consumes post events until `shutdown`, committing offsets only after the
/// awards they caused committed (at least once; dedupe makes it exactly
/// once). The events that arrived together are applied in one transaction.
pub async fn run(pool: PgPool, kafka: KafkaSettings, group: String, shutdown: CancellationToken) -> anyhow::Result<()> {
    let mut config = kafka.consumer_config("auth-points-ledger", &group);
    config.set("enable.auto.commit", "true").set("auto.commit.interval.ms", "1000").set("enable.auto.offset.store", "false");
    let consumer: StreamConsumer = config.create().context("cannot create the ledger consumer")?;
    consumer.subscribe(&[topics::POST]).context("cannot subscribe to post events")?;
    let mut batches = consumer.stream().ready_chunks(BATCH_SIZE);
    loop {
        let batch = tokio::select! {
            _ = shutdown.cancelled() => break,
            batch = batches.next() => batch,
        };
        let Some(batch) = batch else { break };
        let messages: Vec<_> = batch
            .into_iter()
            .filter_map(|received| received.map_err(|error| tracing::warn!(%error, "ledger consumer error")).ok())
            .collect();
        let mut awards = Vec::with_capacity(messages.len());
        for message in &messages {
            match decode(message.payload().unwrap_or_default()) {
                Ok(Some((envelope, post))) => awards.push((envelope, post, trace_of(message))),
                Ok(None) => {}
                Err(error) => {
                    metrics::counter!("agora_ledger_poison_events_total").increment(1);
                    tracing::error!(
                        error = format!("{error:#}"),
                        topic = message.topic(),
                        partition = message.partition(),
                        offset = message.offset(),
                        "ledger skipped an event it cannot read"
                    );
                }
            }
        }
        loop {
            match award_all(&pool, &awards).await {
                Ok(outcomes) => {
                    tracing::debug!(events = messages.len(), ?outcomes, "ledger applied a batch");
                    break;
                }
                Err(error) => {
                    tracing::warn!(error = format!("{error:#}"), "ledger cannot apply a batch yet; retrying");
                    tokio::select! {
                        _ = shutdown.cancelled() => return commit_on_exit(&consumer),
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
        }
        // Fails when a rebalance took the partition away meanwhile: its new
        // owner gets the message again, and the dedupe table makes that harmless.
        for message in &messages {
            if let Err(error) = consumer.store_offset_from_message(message) {
                tracing::warn!(%error, "cannot store the ledger offset");
            }
        }
    }
    commit_on_exit(&consumer)
}

/// The trace context a message carries, if any.
fn trace_of(message: &impl Message) -> TraceParent {
    TraceParent::parse(message.headers().and_then(|headers| {
        headers
            .iter()
            .find(|header| header.key == TraceParent::HEADER)
            .and_then(|header| header.value)
            .and_then(|value| std::str::from_utf8(value).ok())
    }))
}

fn commit_on_exit(consumer: &StreamConsumer) -> anyhow::Result<()> {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) | Err(rdkafka::error::KafkaError::ConsumerCommit(rdkafka::types::RDKafkaErrorCode::NoOffset)) => Ok(()),
        Err(error) => Err(error).context("cannot commit the ledger offsets on shutdown"),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    /// The event can never be applied (it does not decode).
    #[error(transparent)]
    Poison(anyhow::Error),
    /// Applying failed for a reason that may pass (the database is away).
    #[error(transparent)]
    Transient(anyhow::Error),
}

/// Applies one message of the post topic.
pub async fn apply(pool: &PgPool, payload: &[u8]) -> Result<Outcome, ApplyError> {
    apply_traced(pool, payload, &TraceParent::default()).await
}

/// The same, continuing the trace of the post that earned the points.
pub async fn apply_traced(pool: &PgPool, payload: &[u8], trace: &TraceParent) -> Result<Outcome, ApplyError> {
    let Some((envelope, post)) = decode(payload).map_err(ApplyError::Poison)? else {
        return Ok(Outcome::NotForUs);
    };
    let outcomes =
        award_all(pool, &[(envelope, post, trace.clone())]).await.map_err(|error| ApplyError::Transient(error.into()))?;
    Ok(outcomes.into_iter().next().expect("one outcome per award"))
}

/// The PostCreated event in `payload`; `None` for the topic's other events.
fn decode(payload: &[u8]) -> anyhow::Result<Option<(Envelope, PostCreated)>> {
    let envelope = Envelope::from_slice(payload)?;
    if envelope.event_type != "PostCreated" {
        return Ok(None);
    }
    match envelope.event()? {
        Event::PostCreated(post) => Ok(Some((envelope, post))),
        _ => Ok(None),
    }
}

/// Awards the points of every post in one transaction.
async fn award_all(pool: &PgPool, awards: &[(Envelope, PostCreated, TraceParent)]) -> sqlx::Result<Vec<Outcome>> {
    if awards.is_empty() {
        return Ok(Vec::new());
    }
    let mut tx = pool.begin().await?;
    let mut outcomes = Vec::with_capacity(awards.len());
    for (envelope, post, trace) in awards {
        outcomes.push(award(&mut tx, envelope, post, trace).await?);
    }
    tx.commit().await?;
    let awarded = outcomes.iter().filter(|outcome| matches!(outcome, Outcome::Awarded { .. })).count();
    metrics::counter!("agora_points_awarded_total").increment(awarded as u64);
    Ok(outcomes)
}

#[tracing::instrument(skip_all, fields(event_id = %envelope.event_id, author_id = %post.author_id))]
async fn award(
    tx: &mut Transaction<'_, Postgres>,
    envelope: &Envelope,
    post: &PostCreated,
    trace: &TraceParent,
) -> sqlx::Result<Outcome> {
    let first_time = sqlx::query("insert into processed_event (consumer, event_id) values ($1, $2) on conflict do nothing")
        .bind(CONSUMER_NAME)
        .bind(envelope.event_id)
        .execute(&mut **tx)
        .await?
        .rows_affected()
        == 1;
    if !first_time {
        return Ok(Outcome::AlreadyApplied);
    }
    let now = Utc::now();
    let (total, version): (i32, i64) = sqlx::query_as(
        "insert into points_account (user_id, total, version, updated_at) values ($1, $2, 1, $3)
         on conflict (user_id) do update
         set total = points_account.total + excluded.total, version = points_account.version + 1, updated_at = excluded.updated_at
         returning total, version",
    )
    .bind(post.author_id)
    .bind(POINTS_PER_POST)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    sqlx::query("insert into points_entry (user_id, delta, reason, cause_event_id) values ($1, $2, $3, $4)")
        .bind(post.author_id)
        .bind(POINTS_PER_POST)
        .bind(REASON_POST_CREATED)
        .bind(envelope.event_id)
        .execute(&mut **tx)
        .await?;
    let event = Event::PointsAwarded(PointsAwarded {
        user_id: post.author_id,
        delta: POINTS_PER_POST,
        total,
        reason: REASON_POST_CREATED.to_owned(),
        cause_event_id: envelope.event_id,
        awarded_at: now,
    });
    outbox::append(tx, topics::POINTS, &event.into_envelope(version, now), trace).await?;
    Ok(Outcome::Awarded { total })
}
