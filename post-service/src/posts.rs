//! Posts: the command that publishes one (with its event, in one
//! transaction) and the keyset-paginated queries that read them.

use agora_platform::idempotency::{self, Keyed};
use agora_platform::outbox;
use agora_platform::trace_context::TraceParent;
use agora_schema::receipts::WriteReceipt;
use agora_schema::{topics, Event, PostCreated, PostCursor};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{PostBody, PostTitle};
use crate::error::ApiError;

#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct PostRow {
    pub id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
}

impl PostRow {
    pub fn cursor(&self) -> PostCursor {
        PostCursor { created_at: self.created_at, id: self.id }
    }
}

/// Publishes a post by `author_id`: the post and what it wrote. With an
/// idempotency key, a retry gets the first answer back and publishes nothing.
#[tracing::instrument(name = "create post", skip_all, fields(%author_id))]
pub async fn create(
    pool: &PgPool,
    author_id: Uuid,
    title: PostTitle,
    body: PostBody,
    trace: &TraceParent,
    keyed: Option<&Keyed>,
) -> Result<(PostRow, Vec<WriteReceipt>), ApiError> {
    let mut tx = pool.begin().await?;
    if let Some(keyed) = keyed {
        if let Some(stored) = idempotency::claim(&mut tx, keyed).await? {
            let post = serde_json::from_value(stored.answer).map_err(|error| ApiError::Unexpected(error.into()))?;
            return Ok((post, stored.writes));
        }
    }
    // Microsecond precision, as PostgreSQL keeps it, so cursors round-trip.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now is representable");
    let post = PostRow {
        id: Uuid::now_v7(),
        author_id,
        title: title.as_str().to_owned(),
        body: body.as_str().to_owned(),
        created_at: now,
    };
    sqlx::query("insert into post (id, author_id, title, body, version, created_at) values ($1, $2, $3, $4, 1, $5)")
        .bind(post.id)
        .bind(post.author_id)
        .bind(&post.title)
        .bind(&post.body)
        .bind(post.created_at)
        .execute(&mut *tx)
        .await?;
    let event = Event::PostCreated(PostCreated {
        post_id: post.id,
        author_id,
        title: post.title.clone(),
        body: post.body.clone(),
        created_at: now,
    });
    let writes = vec![outbox::append(&mut tx, topics::POST, &event.into_envelope(1, now), trace).await?];
    if let Some(keyed) = keyed {
        let answer = serde_json::to_value(&post).map_err(|error| ApiError::Unexpected(error.into()))?;
        idempotency::record(&mut tx, keyed, &answer, &writes).await?;
    }
    tx.commit().await?;
    metrics::counter!("agora_posts_created_total").increment(1);
    Ok((post, writes))
}

const COLUMNS: &str = "id, author_id, title, body, created_at";

/// Up to `limit` posts after `after`, newest first, optionally by one author.
#[tracing::instrument(skip(pool))]
pub async fn page(pool: &PgPool, author_id: Option<Uuid>, after: Option<PostCursor>, limit: i64) -> sqlx::Result<Vec<PostRow>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from post
         where ($1::uuid is null or author_id = $1)
           and ($2::timestamptz is null or (created_at, id) < ($2, $3))
         order by created_at desc, id desc limit $4"
    ))
    .bind(author_id)
    .bind(after.map(|cursor| cursor.created_at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The same page for several authors at once: at most `limit` posts per author.
#[tracing::instrument(skip_all, fields(authors = authors.len()))]
pub async fn pages_by_authors(
    pool: &PgPool,
    authors: &[Uuid],
    after: Option<PostCursor>,
    limit: i64,
) -> sqlx::Result<Vec<PostRow>> {
    sqlx::query_as(&format!(
        // One index scan per author (newest first, `limit` rows), not a
        // ranking of every post of every author.
        "select p.* from unnest($1::uuid[]) as author(id)
         cross join lateral (
             select {COLUMNS} from post
             where author_id = author.id and ($2::timestamptz is null or (created_at, id) < ($2, $3))
             order by created_at desc, id desc limit $4
         ) p
         order by p.author_id, p.created_at desc, p.id desc"
    ))
    .bind(authors)
    .bind(after.map(|cursor| cursor.created_at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<PostRow>> {
    sqlx::query_as(&format!("select {COLUMNS} from post where id = any($1)")).bind(ids).fetch_all(pool).await
}

#[tracing::instrument(skip_all, fields(authors = authors.len()))]
pub async fn count_by_authors(pool: &PgPool, authors: &[Uuid]) -> sqlx::Result<Vec<(Uuid, i64)>> {
    sqlx::query_as("select author_id, count(*) from post where author_id = any($1) group by author_id")
        .bind(authors)
        .fetch_all(pool)
        .await
}
