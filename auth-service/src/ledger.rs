//! The points ledger: consumes `agora.post.v1` and awards 10 points to the
//! author of every post, exactly once per PostCreated event (the event id
//! is recorded in `processed_event` in the same transaction as the award),
//! and publishes PointsAwarded with the new total through the outbox.
//!
//! The post producer knows nothing of this consumer: a new reaction to an
//! event is a new subscriber, not a change to the producer.

use std::time::Duration;

use agora_platform::consumer::{self, ApplyError as ConsumerError, ConsumerSettings, Delivery, Handler};
use agora_platform::kafka::KafkaSettings;
use agora_platform::outbox;
use agora_platform::trace_context::TraceParent;
use agora_schema::{topics, Envelope, Event, PointsAwarded, PostCreated};
use chrono::Utc;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

pub const POINTS_PER_POST: i32 = 10;
pub const REASON_POST_CREATED: &str = "POST_CREATED";
/// The consumer's name in its positions, dedupe rows and dead letters.
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

/// Consumes post events until `shutdown` on the platform's at-least-once
/// consumer: its positions live in this database, written with the awards
/// they caused, and the dedupe table makes a replay harmless. The events
/// that arrived together are applied in one transaction.
pub async fn run(pool: PgPool, kafka: KafkaSettings, group: String, shutdown: CancellationToken) -> anyhow::Result<()> {
    let settings = ConsumerSettings {
        name: CONSUMER_NAME.to_owned(),
        group_id: group,
        topics: vec![topics::POST.to_owned()],
        batch_size: BATCH_SIZE,
        retry_backoff: Duration::from_millis(500),
    };
    consumer::run(pool, kafka, settings, Ledger, consumer::Positioned::new(Vec::new()), shutdown).await
}

/// Runs an operator's `command` on the ledger's dead letters; a replay
/// awards as the ledger would.
pub async fn dead_letters(pool: &PgPool, command: consumer::dead_letters::Command) -> anyhow::Result<()> {
    consumer::dead_letters::execute(pool, CONSUMER_NAME, &Ledger, command).await
}

/// The ledger as a consumer's state.
struct Ledger;

#[async_trait::async_trait]
impl Handler for Ledger {
    async fn apply(&self, tx: &mut Transaction<'_, Postgres>, events: &[Delivery]) -> Result<(), ConsumerError> {
        let mut awarded = 0;
        for delivery in events {
            if let Event::PostCreated(post) = &delivery.event {
                let awarding = award(tx, &delivery.envelope, post, &delivery.trace).instrument(delivery.span.clone());
                if let Outcome::Awarded { .. } = awarding.await? {
                    awarded += 1;
                }
            }
        }
        metrics::counter!("agora_points_awarded_total").increment(awarded);
        Ok(())
    }

    /// Awards are the ledger's own data, not a projection: they stay, and
    /// the dedupe table keeps a replay of the new log from awarding twice.
    async fn reset(&self, _tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
        Ok(())
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

/// Applies one message of the post topic outside the consumer (tests,
/// tools): the same award, in a transaction of its own.
pub async fn apply(pool: &PgPool, payload: &[u8]) -> Result<Outcome, ApplyError> {
    let envelope = Envelope::from_slice(payload).map_err(|error| ApplyError::Poison(error.into()))?;
    let Event::PostCreated(post) = envelope.event().map_err(|error| ApplyError::Poison(error.into()))? else {
        return Ok(Outcome::NotForUs);
    };
    let transient = |error: sqlx::Error| ApplyError::Transient(error.into());
    let mut tx = pool.begin().await.map_err(transient)?;
    let outcome = award(&mut tx, &envelope, &post, &TraceParent::default()).await.map_err(transient)?;
    tx.commit().await.map_err(transient)?;
    Ok(outcome)
}

#[tracing::instrument(name = "ledger award", skip_all, fields(event_id = %envelope.event_id, author_id = %post.author_id))]
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
