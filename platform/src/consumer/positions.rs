//! A consumer's positions in the database that holds the state they
//! produced: read when partitions are assigned, written in each batch's
//! transaction, and dropped together with that state when they turn out to
//! come from another log.

use std::collections::HashMap;

use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// A partition of a topic.
pub type Partition = (String, i32);

/// Where a consumer stands in one partition: the next offset to read, and
/// the event it read last (`None` for a message that did not decode).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    pub next_offset: i64,
    pub last_event_id: Option<Uuid>,
}

/// The stored positions of `consumer` and the generation they belong to.
pub async fn load(pool: &PgPool, consumer: &str) -> sqlx::Result<(i64, HashMap<Partition, Position>)> {
    let mut connection = pool.acquire().await?;
    sqlx::query("insert into consumer_generation (consumer) values ($1) on conflict do nothing")
        .bind(consumer)
        .execute(&mut *connection)
        .await?;
    let generation = sqlx::query_scalar("select generation from consumer_generation where consumer = $1")
        .bind(consumer)
        .fetch_one(&mut *connection)
        .await?;
    let positions = positions(&mut connection, consumer).await?;
    Ok((generation, positions))
}

/// The consumer's generation, locked against a concurrent reset until the
/// transaction ends (the row exists once [`load`] ran).
pub async fn generation(connection: &mut PgConnection, consumer: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar("select generation from consumer_generation where consumer = $1 for share")
        .bind(consumer)
        .fetch_one(connection)
        .await
}

pub async fn positions(connection: &mut PgConnection, consumer: &str) -> sqlx::Result<HashMap<Partition, Position>> {
    let rows: Vec<(String, i32, i64, Option<Uuid>)> =
        sqlx::query_as("select topic, partition, next_offset, last_event_id from consumer_position where consumer = $1")
            .bind(consumer)
            .fetch_all(connection)
            .await?;
    Ok(rows
        .into_iter()
        .map(|(topic, partition, next_offset, last_event_id)| ((topic, partition), Position { next_offset, last_event_id }))
        .collect())
}

/// Stores the positions a batch reached (never moving one back).
pub async fn store(connection: &mut PgConnection, consumer: &str, reached: &HashMap<Partition, Position>) -> sqlx::Result<()> {
    let (mut topics, mut partitions, mut offsets, mut events) = (vec![], vec![], vec![], vec![]);
    for ((topic, partition), position) in reached {
        topics.push(topic.as_str());
        partitions.push(*partition);
        offsets.push(position.next_offset);
        events.push(position.last_event_id);
    }
    sqlx::query(
        "insert into consumer_position (consumer, topic, partition, next_offset, last_event_id, updated_at)
         select $1, topic, partition, next_offset, last_event_id, now()
         from unnest($2::text[], $3::int[], $4::bigint[], $5::uuid[]) as p (topic, partition, next_offset, last_event_id)
         on conflict (consumer, topic, partition) do update
         set next_offset = excluded.next_offset, last_event_id = excluded.last_event_id, updated_at = now()
         where consumer_position.next_offset < excluded.next_offset",
    )
    .bind(consumer)
    .bind(topics)
    .bind(partitions)
    .bind(offsets)
    .bind(events)
    .execute(connection)
    .await?;
    Ok(())
}

/// Forgets every position of `consumer` and starts a new generation.
pub async fn forget(connection: &mut PgConnection, consumer: &str) -> sqlx::Result<i64> {
    sqlx::query("delete from consumer_position where consumer = $1").bind(consumer).execute(&mut *connection).await?;
    // The replay of the new log dead-letters again whatever still fails.
    supersede_dead_letters(connection, consumer, "superseded: the consumer was reset and replays its log").await?;
    next_generation(connection, consumer).await
}

/// Starts a new generation of `consumer`'s positions.
async fn next_generation(connection: &mut PgConnection, consumer: &str) -> sqlx::Result<i64> {
    sqlx::query_scalar(
        "insert into consumer_generation (consumer, generation) values ($1, 1)
         on conflict (consumer) do update set generation = consumer_generation.generation + 1
         returning generation",
    )
    .bind(consumer)
    .fetch_one(connection)
    .await
}

/// Hands the positions of consumer `from` over to consumer `to`, inside the
/// caller's transaction: `to`'s positions become `from`'s, `from` is
/// forgotten, and `to` starts a new generation, so that every replica of
/// `to` repositions itself at its next batch. For a consumer whose state
/// was rebuilt under another name (the projector's rebuild), once that
/// state replaces the old one.
pub async fn hand_over(connection: &mut PgConnection, from: &str, to: &str) -> sqlx::Result<i64> {
    sqlx::query("delete from consumer_position where consumer = $1").bind(to).execute(&mut *connection).await?;
    sqlx::query("update consumer_position set consumer = $2, updated_at = now() where consumer = $1")
        .bind(from)
        .bind(to)
        .execute(&mut *connection)
        .await?;
    sqlx::query("delete from consumer_generation where consumer = $1").bind(from).execute(&mut *connection).await?;
    // The rebuild met every event again: its dead letters replace the old ones.
    supersede_dead_letters(connection, to, &format!("superseded: the rebuild {from} replaced this state")).await?;
    sqlx::query("update consumer_dead_letter set consumer = $2, updated_at = now() where consumer = $1")
        .bind(from)
        .bind(to)
        .execute(&mut *connection)
        .await?;
    next_generation(connection, to).await
}

/// Marks `consumer`'s pending dead letters skipped: the state they were
/// missing from is gone.
async fn supersede_dead_letters(connection: &mut PgConnection, consumer: &str, note: &str) -> sqlx::Result<()> {
    sqlx::query(
        "update consumer_dead_letter set status = 'skipped', note = $2, updated_at = now()
         where consumer = $1 and status = 'pending'",
    )
    .bind(consumer)
    .bind(note)
    .execute(connection)
    .await?;
    Ok(())
}

/// Forgets consumer `name` entirely: its positions and its generation (an
/// abandoned rebuild).
pub async fn remove(connection: &mut PgConnection, name: &str) -> sqlx::Result<()> {
    sqlx::query("delete from consumer_dead_letter where consumer = $1").bind(name).execute(&mut *connection).await?;
    sqlx::query("delete from consumer_position where consumer = $1").bind(name).execute(&mut *connection).await?;
    sqlx::query("delete from consumer_generation where consumer = $1").bind(name).execute(connection).await?;
    Ok(())
}
