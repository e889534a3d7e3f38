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

use std::time::Duration;

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

/// Logs a warning when the serving generation has an older shape than
/// this build's [`SHAPE_SQL`] (it serves on: the shape ships by a rebuild).
pub async fn warn_if_outdated(pool: &PgPool) -> sqlx::Result<()> {
    let serving: Option<(i64, i32)> = sqlx::query_as(
        "select g.generation, g.shape_version from read_model_serving s join read_model_generation g using (generation)",
    )
    .fetch_optional(pool)
    .await?;
    let Some((generation, shape)) = serving else {
        tracing::error!("the read model records no serving generation (read_model_serving is empty): the projector cannot write");
        return Ok(());
    };
    if shape < SHAPE_VERSION {
        tracing::warn!(
            generation,
            serving_shape = shape,
            shape = SHAPE_VERSION,
            "the read model serving has an older shape than this gateway's; run `gateway rebuild` to ship the new one"
        );
    }
    Ok(())
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
    let next: i64 =
        sqlx::query_scalar("select coalesce(max(generation), 0) + 1 from read_model_generation").fetch_one(&mut *tx).await?;
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
pub async fn freeze_projection(connection: &mut PgConnection, lock_timeout: Duration) -> sqlx::Result<Generation> {
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
pub async fn switch(connection: &mut PgConnection, from: Generation, to: Generation, patience: Duration) -> sqlx::Result<()> {
    lock_views(connection, patience).await?;
    for view in VIEWS {
        point_view(connection, view, to).await?;
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

/// Takes the views from the readers (ACCESS EXCLUSIVE) for the switch,
/// trying for a short while at a time and letting go in between.
///
/// Queries take the views' locks in their own order (one reads `read_post`
/// first, another `read_user`), so a switch that held one view while it
/// waited for the other could deadlock with a query, and PostgreSQL would
/// abort one of the two, perhaps the query. Each try here waits less than
/// PostgreSQL's deadlock timeout (1 s by default) and gives up first, so a
/// query is at most delayed, never failed.
async fn lock_views(connection: &mut PgConnection, patience: Duration) -> sqlx::Result<()> {
    const TRY: Duration = Duration::from_millis(50);
    let started = std::time::Instant::now();
    sqlx::query("select set_config('lock_timeout', $1, true)")
        .bind(format!("{}ms", TRY.as_millis()))
        .execute(&mut *connection)
        .await?;
    loop {
        sqlx::query("savepoint lock_views").execute(&mut *connection).await?;
        let locked = sqlx::query(&format!(
            "lock table {} in access exclusive mode",
            VIEWS.map(|view| format!("public.{view}")).join(", ")
        ))
        .execute(&mut *connection)
        .await;
        match locked {
            Ok(_) => break,
            Err(error) if is_lock_timeout(&error) && started.elapsed() < patience => {
                sqlx::query("rollback to savepoint lock_views").execute(&mut *connection).await?;
            }
            Err(error) => return Err(error),
        }
    }
    sqlx::query("release savepoint lock_views").execute(&mut *connection).await?;
    sqlx::query("select set_config('lock_timeout', '0', true)").execute(&mut *connection).await?;
    Ok(())
}

fn is_lock_timeout(error: &sqlx::Error) -> bool {
    error.as_database_error().and_then(|error| error.code()).is_some_and(|code| code == "55P03")
}

/// Points the view `view` at `to`'s table. Replacing the view keeps its
/// identity, so a query that waited on the switch's lock reads the new
/// generation once the switch commits; dropping it would fail such a
/// query ("could not open relation"). Only a shape whose columns are not
/// the old ones plus new ones at the end needs the drop, in which case
/// the queries in flight at that moment may fail once.
async fn point_view(connection: &mut PgConnection, view: &str, to: Generation) -> sqlx::Result<()> {
    let select = format!("select * from {}.{view}", to.schema());
    sqlx::query("savepoint point_view").execute(&mut *connection).await?;
    match sqlx::query(&format!("create or replace view public.{view} as {select}")).execute(&mut *connection).await {
        Ok(_) => {
            sqlx::query("release savepoint point_view").execute(&mut *connection).await?;
        }
        Err(error) => {
            tracing::warn!(view, error = %error, "the new shape changes the view's columns; recreating it");
            sqlx::query("rollback to savepoint point_view").execute(&mut *connection).await?;
            sqlx::query(&format!("drop view public.{view}")).execute(&mut *connection).await?;
            sqlx::query(&format!("create view public.{view} as {select}")).execute(&mut *connection).await?;
        }
    }
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
