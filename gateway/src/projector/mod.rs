//! The projector: a Kafka consumer group over the user, post and points
//! topics that applies every event to the read model.
//!
//! It runs on the platform's at-least-once consumer
//! ([`agora_platform::consumer`]): batches of events are applied in one
//! transaction each, with their positions, which are the authority the
//! consumer starts from; a position from another log resets the read model
//! (it is rebuilt from what the log holds); an event that cannot be decoded
//! or applied goes to the dead letters. Each committed batch notifies
//! `agora_projection`, which wakes read-your-writes waiters on every gateway
//! replica.
//!
//! The read model has generations ([`generation`]): the projector writes to
//! the serving one; [`rebuild`] builds the next one from the start of the
//! log beside it and switches every replica over. [`lag`] measures how far
//! it is behind the log, for `/metrics` and `/readyz`.
//!
//! Stage: Kafka -> read model. Uses only `records` (the topics and the
//! channel); nothing of the request path.

mod apply;
pub mod generation;
pub mod lag;
pub mod rebuild;

use std::time::Duration;

use agora_platform::consumer::{self, ApplyError, ConsumerSettings, Delivery, Handler};
use agora_platform::kafka::KafkaSettings;
use agora_schema::Event;
use sqlx::{PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::records::{Tag, PROJECTION_CHANNEL, READ_MODEL_TOPICS};
use generation::Generation;

/// The consumer's name in its positions and dead letters.
pub const CONSUMER_NAME: &str = "gateway-projector";

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
    positioned: consumer::Positioned,
}

impl Projector {
    pub fn new(pool: PgPool, kafka: KafkaSettings, settings: ProjectorSettings, positioned: consumer::Positioned) -> Self {
        Projector { pool, kafka, settings, positioned }
    }

    /// Consumes and applies events until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let settings = ConsumerSettings {
            name: CONSUMER_NAME.to_owned(),
            group_id: self.settings.group_id,
            topics: READ_MODEL_TOPICS.iter().map(|topic| topic.to_string()).collect(),
            batch_size: self.settings.batch_size,
            retry_backoff: self.settings.retry_backoff,
        };
        consumer::run(self.pool, self.kafka, settings, ReadModel::Serving, self.positioned, shutdown).await
    }
}

/// The read model as a consumer's state: the serving generation, or one
/// being rebuilt.
enum ReadModel {
    /// Whichever generation serves, locked against a switch for each batch.
    Serving,
    /// A generation being built, which no reader sees yet.
    Building(Generation),
}

#[async_trait::async_trait]
impl Handler for ReadModel {
    async fn begin(&self, tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
        match self {
            ReadModel::Serving => generation::write_to_serving(tx).await.map(drop),
            ReadModel::Building(generation) => generation.write_here(tx).await,
        }
    }

    async fn apply(&self, tx: &mut Transaction<'_, Postgres>, events: &[Delivery]) -> Result<(), ApplyError> {
        apply::apply(tx, events.iter().map(|delivery| (&delivery.envelope, &delivery.event))).await?;
        if let ReadModel::Serving = self {
            notify(tx, &changes(events.iter().map(|delivery| &delivery.event))).await?;
        }
        Ok(())
    }

    /// Everything in the read model comes from the events: it is emptied, and
    /// the replay from the log rebuilds it.
    async fn reset(&self, tx: &mut Transaction<'_, Postgres>) -> sqlx::Result<()> {
        self.begin(tx).await?;
        sqlx::query("truncate read_post, read_user").execute(&mut **tx).await?;
        notify(tx, EVERYTHING).await
    }
}

/// Runs an operator's `command` on the projector's dead letters; a replay
/// applies them to the serving read model, as the projector would.
pub async fn dead_letters(pool: &PgPool, command: consumer::dead_letters::Command) -> anyhow::Result<()> {
    consumer::dead_letters::execute(pool, CONSUMER_NAME, &ReadModel::Serving, command).await
}

/// Tells every gateway that the read model changed, and what: the tags of
/// what changed, space-separated, or [`EVERYTHING`] (also for a list longer
/// than a notification holds).
async fn notify(tx: &mut Transaction<'_, Postgres>, changed: &str) -> sqlx::Result<()> {
    sqlx::query("select pg_notify($1, $2)").bind(PROJECTION_CHANNEL).bind(changed).execute(&mut **tx).await?;
    Ok(())
}

/// The notification that says everything may have changed.
pub const EVERYTHING: &str = "";

/// PostgreSQL's notification payloads are shorter than 8000 bytes.
const MAX_CHANGES: usize = 7000;

/// What applying `events` may change in the read model, as a notification.
fn changes<'a>(events: impl Iterator<Item = &'a Event>) -> String {
    let mut tags = Vec::new();
    for event in events {
        match event {
            Event::UserRegistered(user) => {
                tags.push(Tag::User(user.user_id));
                tags.extend(Tag::of_registration(user.user_id, user.username.clone()));
            }
            Event::UserRenamed(renamed) => tags.push(Tag::User(renamed.user_id)),
            Event::PointsAwarded(points) => tags.extend([Tag::User(points.user_id), Tag::Leaderboard]),
            Event::PostCreated(post) => tags.extend(Tag::of_post(post.post_id, post.author_id)),
        }
    }
    let mut texts: Vec<String> = tags.iter().map(Tag::to_text).collect();
    texts.sort();
    texts.dedup();
    let changed = texts.join(" ");
    if changed.len() > MAX_CHANGES || changed.is_empty() {
        EVERYTHING.to_owned()
    } else {
        changed
    }
}
