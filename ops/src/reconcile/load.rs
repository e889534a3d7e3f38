//! Reading a system's state: the services' write models and outboxes, the
//! gateway's read model, and (when brokers are given) the topics.

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

use super::topics::{self, TopicMessage};

/// Where the system's state lives.
#[derive(Debug, Clone)]
pub struct Sources {
    /// auth-service's database (users, points accounts and entries, outbox).
    pub auth_database_url: String,
    /// post-service's database (posts, outbox).
    pub post_database_url: String,
    /// The gateway's read model.
    pub read_database_url: String,
    /// Kafka bootstrap servers; without them the topics are not compared.
    pub kafka_brokers: Option<String>,
    /// How long reading one topic to its end may take.
    pub topic_timeout: Duration,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub version: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AccountRow {
    pub user_id: Uuid,
    pub total: i32,
    pub version: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PostRow {
    pub id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub version: i64,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ReadUserRow {
    pub id: Uuid,
    pub username: Option<String>,
    pub display_name: Option<String>,
    pub profile_version: i64,
    pub points: i32,
    pub points_version: i64,
    pub post_count: i32,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    pub event_id: Uuid,
    pub topic: String,
    pub event_type: String,
    pub aggregate_id: Uuid,
    pub aggregate_version: i64,
    pub payload: sqlx::types::Json<serde_json::Value>,
    pub published: bool,
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EntryRow {
    pub id: i64,
    pub user_id: Uuid,
    pub cause_event_id: Uuid,
}

/// Everything compared, read once.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub users: Vec<UserRow>,
    pub accounts: Vec<AccountRow>,
    pub entries: Vec<EntryRow>,
    pub posts: Vec<PostRow>,
    pub read_users: Vec<ReadUserRow>,
    pub read_posts: Vec<PostRow>,
    pub auth_outbox: Vec<OutboxRow>,
    pub post_outbox: Vec<OutboxRow>,
    /// `None` when no brokers were given.
    pub topics: Option<Vec<TopicMessage>>,
    /// Messages on the dead-letter topic.
    pub dead_letters: usize,
    /// Topics whose first offset is above 0.
    pub truncated_topics: Vec<String>,
}

const OUTBOX: &str = "select event_id, topic, event_type, aggregate_id, aggregate_version, payload,
                             published_at is not null as published
                      from outbox order by id";

async fn connect(url: &str, what: &str) -> anyhow::Result<PgConnection> {
    tokio::time::timeout(Duration::from_secs(10), PgConnection::connect(url))
        .await
        .with_context(|| format!("connecting to {what}: timed out"))?
        .with_context(|| format!("cannot connect to {what}"))
}

impl Snapshot {
    /// Reads the sources of truth first, then what is derived from them, so
    /// that a quiet system shows no difference.
    pub async fn load(sources: &Sources) -> anyhow::Result<Snapshot> {
        let mut snapshot = Snapshot::default();
        let mut auth = connect(&sources.auth_database_url, "auth-service's database").await?;
        snapshot.users = sqlx::query_as("select id, username, display_name, version from app_user")
            .fetch_all(&mut auth)
            .await
            .context("reading app_user")?;
        snapshot.accounts = sqlx::query_as("select user_id, total, version from points_account")
            .fetch_all(&mut auth)
            .await
            .context("reading points_account")?;
        snapshot.entries = sqlx::query_as("select id, user_id, cause_event_id from points_entry")
            .fetch_all(&mut auth)
            .await
            .context("reading points_entry")?;
        snapshot.auth_outbox = sqlx::query_as(OUTBOX).fetch_all(&mut auth).await.context("reading auth's outbox")?;
        let _ = auth.close().await;

        let mut post = connect(&sources.post_database_url, "post-service's database").await?;
        snapshot.posts = sqlx::query_as("select id, author_id, title, body, created_at, version from post")
            .fetch_all(&mut post)
            .await
            .context("reading post")?;
        snapshot.post_outbox = sqlx::query_as(OUTBOX).fetch_all(&mut post).await.context("reading post's outbox")?;
        let _ = post.close().await;

        if let Some(brokers) = &sources.kafka_brokers {
            let mut messages = Vec::new();
            for topic in [agora_schema::topics::USER, agora_schema::topics::POST, agora_schema::topics::POINTS] {
                let read = topics::read_topic(brokers, topic, sources.topic_timeout).await?;
                if read.truncated {
                    snapshot.truncated_topics.push(topic.to_owned());
                }
                messages.extend(read.messages);
            }
            let dead = topics::read_topic(brokers, agora_schema::topics::DEAD_LETTER, sources.topic_timeout).await?;
            snapshot.dead_letters = dead.messages.len() + dead.undecodable;
            snapshot.topics = Some(messages);
        }

        let mut read = connect(&sources.read_database_url, "the gateway's read model").await?;
        snapshot.read_users = sqlx::query_as(
            "select id, username, display_name, profile_version, points, points_version, post_count from read_user",
        )
        .fetch_all(&mut read)
        .await
        .context("reading read_user")?;
        snapshot.read_posts = sqlx::query_as("select id, author_id, title, body, created_at, version from read_post")
            .fetch_all(&mut read)
            .await
            .context("reading read_post")?;
        let _ = read.close().await;
        Ok(snapshot)
    }
}
