//! Reads of the read model. "Posts with their authors" is one statement:
//! the author comes joined with each post.

use agora_schema::PostCursor;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::records::{PostRecord, UserRecord};

#[derive(sqlx::FromRow)]
struct PostWithAuthor {
    id: Uuid,
    author_id: Uuid,
    title: String,
    body: String,
    created_at: DateTime<Utc>,
    author_username: String,
    author_display_name: String,
    author_points: i32,
    author_post_count: i32,
    author_created_at: DateTime<Utc>,
}

impl From<PostWithAuthor> for PostRecord {
    fn from(row: PostWithAuthor) -> Self {
        PostRecord {
            id: row.id,
            author_id: row.author_id,
            title: row.title,
            body: row.body,
            created_at: row.created_at,
            author: Some(UserRecord {
                id: row.author_id,
                username: row.author_username,
                display_name: row.author_display_name,
                points: row.author_points,
                post_count: Some(row.author_post_count),
                created_at: row.author_created_at,
            }),
        }
    }
}

const USER_COLUMNS: &str = "id, username, display_name, points, post_count, created_at";
const POST_WITH_AUTHOR: &str = "select p.id, p.author_id, p.title, p.body, p.created_at,
        u.username as author_username, u.display_name as author_display_name, u.points as author_points,
        u.post_count as author_post_count, u.created_at as author_created_at
     from read_post p join read_user u on u.id = p.author_id and u.username is not null";

#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn users(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<UserRecord>> {
    sqlx::query_as(&format!("select {USER_COLUMNS} from read_user where id = any($1) and username is not null"))
        .bind(ids)
        .fetch_all(pool)
        .await
}

#[tracing::instrument(skip(pool))]
pub async fn user_by_username(pool: &PgPool, username: &str) -> sqlx::Result<Option<UserRecord>> {
    sqlx::query_as(&format!("select {USER_COLUMNS} from read_user where username = $1")).bind(username).fetch_optional(pool).await
}

/// Users by points, highest first; ties by earliest registration.
#[tracing::instrument(skip(pool))]
pub async fn leaderboard(pool: &PgPool, first: i64) -> sqlx::Result<Vec<UserRecord>> {
    sqlx::query_as(&format!(
        "select {USER_COLUMNS} from read_user where username is not null
         order by points desc, created_at, id limit $1"
    ))
    .bind(first)
    .fetch_all(pool)
    .await
}

/// Up to `limit` posts after `after`, newest first, each with its author.
#[tracing::instrument(skip(pool))]
pub async fn posts(
    pool: &PgPool,
    author_id: Option<Uuid>,
    after: Option<PostCursor>,
    limit: i64,
) -> sqlx::Result<Vec<PostRecord>> {
    let rows: Vec<PostWithAuthor> = sqlx::query_as(&format!(
        "{POST_WITH_AUTHOR}
         where ($1::uuid is null or p.author_id = $1)
           and ($2::timestamptz is null or (p.created_at, p.id) < ($2, $3))
         order by p.created_at desc, p.id desc limit $4"
    ))
    .bind(author_id)
    .bind(after.map(|cursor| cursor.created_at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(PostRecord::from).collect())
}

/// Several authors' pages at once: at most `limit` posts per author.
#[tracing::instrument(skip_all, fields(authors = authors.len()))]
pub async fn posts_by_authors(
    pool: &PgPool,
    authors: &[Uuid],
    after: Option<PostCursor>,
    limit: i64,
) -> sqlx::Result<Vec<PostRecord>> {
    // One index scan per author (newest first, `limit` rows), not a ranking
    // of every post of every author.
    let rows: Vec<PostWithAuthor> = sqlx::query_as(
        "select p.id, p.author_id, p.title, p.body, p.created_at,
                u.username as author_username, u.display_name as author_display_name, u.points as author_points,
                u.post_count as author_post_count, u.created_at as author_created_at
         from unnest($1::uuid[]) as author(id)
         join read_user u on u.id = author.id and u.username is not null
         cross join lateral (
             select * from read_post p
             where p.author_id = author.id and ($2::timestamptz is null or (p.created_at, p.id) < ($2, $3))
             order by p.created_at desc, p.id desc limit $4
         ) p
         order by p.author_id, p.created_at desc, p.id desc",
    )
    .bind(authors)
    .bind(after.map(|cursor| cursor.created_at))
    .bind(after.map(|cursor| cursor.id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(PostRecord::from).collect())
}

#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn posts_by_ids(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<PostRecord>> {
    let rows: Vec<PostWithAuthor> =
        sqlx::query_as(&format!("{POST_WITH_AUTHOR} where p.id = any($1)")).bind(ids).fetch_all(pool).await?;
    Ok(rows.into_iter().map(PostRecord::from).collect())
}
