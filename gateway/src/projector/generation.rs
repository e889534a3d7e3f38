//! Generations of the read model. Each lives in a schema of its own
//! (`read_g1`, `read_g2`, ...) with the tables of [`SHAPE_SQL`]; exactly one
//! serves. Readers see it through the views `read_user` and `read_post` in
//! the public schema; the projector writes to its tables directly. A
//! rebuild builds the next generation beside the serving one and then
//! [`switch`]es to it in one transaction, which is also how a change of the
//! read model's shape ships.
//!
//! The switch and the projector's batches exclude each other through a lock
//! on `read_model_serving` (SHARE in every batch, EXCLUSIVE in the switch):
//! no batch commits to a generation after it stopped serving, and PostgreSQL
//! queues lock requests, so a waiting switch is not starved by a stream of
//! batches.

use sqlx::{PgConnection, PgPool};

use crate::records::PROJECTION_CHANNEL;

/// The shape [`SHAPE_SQL`] creates; recorded with every generation.
pub const SHAPE_VERSION: i32 = 1;

/// The tables and indexes of one generation, created in its schema.
pub const SHAPE_SQL: &str = include_str!("shape.sql");

/// The views readers use, one per table of the shape.
const VIEWS: [&str; 2] = ["read_user", "read_post"];

/// One generation of the read model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Generation(pub i64);

impl Generation {
    /// The schema its tables live in (a valid identifier by construction).
    pub fn schema(self) -> String {
        format!("read_g{}", self.0)
    }

    /// Makes this generation's tables the ones unqualified names reach until
    /// the transaction ends.
    pub async fn write_here(self, connection: &mut PgConnection) -> sqlx::Result<()> {
        sqlx::query("select set_config('search_path', $1, true)")
            .bind(format!("{}, public", self.schema()))
            .execute(connection)
            .await?;
        Ok(())
    }

    /// A lowercase name for consumers and logs: `g2`.
    pub fn label(self) -> String {
        format!("g{}", self.0)
    }
}

/// A generation and how it stands, as `read_model_generation` records it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GenerationRow {
    pub generation: i64,
    pub shape_version: i32,
    pub state: String,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub serving_since: Option<chrono::DateTime<chrono::Utc>>,
}

/// The serving generation.
pub async fn serving(connection: &mut PgConnection) -> sqlx::Result<Generation> {
    sqlx::query_scalar("select generation from read_model_serving").fetch_one(connection).await.map(Generation)
}

/// Locks the serving generation against a switch until the transaction
/// ends (waiting for a switch in progress), and makes its tables the ones
/// the transaction writes to.
pub async fn write_to_serving(connection: &mut PgConnection) -> sqlx::Result<Generation> {
    sqlx::query("lock table read_model_serving in share mode").execute(&mut *connection).await?;
    let generation = serving(connection).await?;
    generation.write_here(connection).await?;
    Ok(generation)
}

/// Every generation recorded, oldest first.
pub async fn list(pool: &PgPool) -> sqlx::Result<Vec<GenerationRow>> {
    sqlx::query_as(
        "select generation, shape_version, state, created_at, serving_since from read_model_generation order by generation",
    )
    .fetch_all(pool)
    .await
}

/// Creates the next generation, empty, with the shape `shape_sql`
/// (version `shape_version`), and records it as building.
pub async fn create(pool: &PgPool, shape_version: i32, shape_sql: &str) -> sqlx::Result<Generation> {
    let mut tx = pool.begin().await?;
    // Serializes concurrent creations; numbers are never reused.
    sqlx::query("lock table read_model_generation in exclusive mode").execute(&mut *tx).await?;
    let next: i64 = sqlx::query_scalar("select coalesce(max(generation), 0) + 1 from read_model_generation")
        .fetch_one(&mut *tx)
        .await?;
    let generation = Generation(next);
    sqlx::query(&format!("drop schema if exists {} cascade", generation.schema())).execute(&mut *tx).await?;
    sqlx::query(&format!("create schema {}", generation.schema())).execute(&mut *tx).await?;
    generation.write_here(&mut tx).await?;
    sqlx::raw_sql(shape_sql).execute(&mut *tx).await?;
    sqlx::query("insert into read_model_generation (generation, shape_version, state) values ($1, $2, 'building')")
        .bind(next)
        .bind(shape_version)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(generation)
}

/// Takes the switch lock: from here until the transaction ends no
/// projector batch commits (a batch in progress finishes first), readers
/// go on. Waits at most `lock_timeout` for it.
pub async fn freeze_projection(connection: &mut PgConnection, lock_timeout: std::time::Duration) -> sqlx::Result<Generation> {
    sqlx::query("select set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", lock_timeout.as_millis().max(1)))
        .execute(&mut *connection)
        .await?;
    sqlx::query("lock table read_model_serving in exclusive mode").execute(&mut *connection).await?;
    serving(connection).await
}

/// Makes `to` the serving generation, inside the transaction that holds
/// the switch lock ([`freeze_projection`]): the readers' views point at its
/// tables, the old one is recorded as retired, and every gateway is
/// notified (its response cache drops what it held, its read-your-writes
/// waiters look again).
pub async fn switch(connection: &mut PgConnection, from: Generation, to: Generation) -> sqlx::Result<()> {
    for view in VIEWS {
        sqlx::query(&format!("drop view if exists public.{view}")).execute(&mut *connection).await?;
        sqlx::query(&format!("create view public.{view} as select * from {}.{view}", to.schema()))
            .execute(&mut *connection)
            .await?;
    }
    sqlx::query("update read_model_serving set generation = $1, switched_at = now()")
        .bind(to.0)
        .execute(&mut *connection)
        .await?;
    sqlx::query(
        "update read_model_generation set
             state = case when generation = $2 then 'serving' else 'retired' end,
             serving_since = case when generation = $2 then now() else serving_since end,
             retired_at = case when generation = $1 then now() else retired_at end
         where generation in ($1, $2)",
    )
    .bind(from.0)
    .bind(to.0)
    .execute(&mut *connection)
    .await?;
    sqlx::query("select pg_notify($1, '')").bind(PROJECTION_CHANNEL).execute(connection).await?;
    Ok(())
}

/// Drops a generation that does not serve (`dropped` for a retired one
/// once it is no longer wanted for rollback, `abandoned` for a build that
/// did not finish).
pub async fn drop(pool: &PgPool, generation: Generation, state: &str) -> sqlx::Result<()> {
    let mut tx = pool.begin().await?;
    if serving(&mut tx).await? == generation {
        return Err(sqlx::Error::Protocol(format!("generation {} serves: it cannot be dropped", generation.0)));
    }
    sqlx::query(&format!("drop schema if exists {} cascade", generation.schema())).execute(&mut *tx).await?;
    sqlx::query("update read_model_generation set state = $2, retired_at = coalesce(retired_at, now()) where generation = $1")
        .bind(generation.0)
        .bind(state)
        .execute(&mut *tx)
        .await?;
    tx.commit().await
}
