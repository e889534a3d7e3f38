//! post-service's backfill: a `PostCreated` for every post with none in the
//! outbox (posts imported by SQL, or written before the outbox existed), at
//! the post's current version. The points ledger awards their authors as it
//! does for any post. The loop is the platform's (`agora_platform::backfill`).

use agora_platform::backfill::{self, Report, Source};
use agora_platform::outbox;
use agora_platform::trace_context::TraceParent;
use agora_schema::{topics, Event, PostCreated};
use chrono::{DateTime, Utc};
use sqlx::{PgPool, Postgres, Transaction};
use uuid::Uuid;

/// Emits the missing events of posts.
pub async fn run(pool: &PgPool, batch_size: i64) -> anyhow::Result<Report> {
    backfill::run(pool, &[&Posts], batch_size).await
}

struct Posts;

#[async_trait::async_trait]
impl Source for Posts {
    fn name(&self) -> &'static str {
        "posts"
    }

    async fn emit(&self, tx: &mut Transaction<'_, Postgres>, limit: i64) -> sqlx::Result<u64> {
        let rows: Vec<(Uuid, Uuid, String, String, i64, DateTime<Utc>)> = sqlx::query_as(
            "select p.id, p.author_id, p.title, p.body, p.version, p.created_at from post p
             where not exists (select 1 from outbox o where o.aggregate_id = p.id and o.event_type = 'PostCreated')
             order by p.created_at, p.id limit $1 for update of p",
        )
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?;
        for (post_id, author_id, title, body, version, created_at) in &rows {
            let event = Event::PostCreated(PostCreated {
                post_id: *post_id,
                author_id: *author_id,
                title: title.clone(),
                body: body.clone(),
                created_at: *created_at,
            });
            outbox::append(tx, topics::POST, &event.into_envelope(*version, *created_at), &TraceParent::default()).await?;
        }
        Ok(rows.len() as u64)
    }
}
