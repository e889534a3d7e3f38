//! How each event changes the read model. Every apply is idempotent and
//! tolerant of order across aggregates: a row remembers the version of the
//! last event applied to it and older or repeated events change nothing; an
//! event about a user who is not known yet creates the row it needs.

use agora_schema::{Envelope, Event, PointsAwarded, PostCreated, UserRegistered, UserRenamed};
use sqlx::PgConnection;

/// Applies one decoded event.
pub async fn apply(connection: &mut PgConnection, envelope: &Envelope, event: &Event) -> sqlx::Result<()> {
    let version = envelope.aggregate_version;
    match event {
        Event::UserRegistered(event) => user_registered(connection, event, version).await,
        Event::UserRenamed(event) => user_renamed(connection, event, version).await,
        Event::PostCreated(event) => post_created(connection, event, version).await,
        Event::PointsAwarded(event) => points_awarded(connection, event, version).await,
    }
}

async fn user_registered(connection: &mut PgConnection, event: &UserRegistered, version: i64) -> sqlx::Result<()> {
    // Username and registration time never change; the display name is the
    // registration's only if no later rename was applied first.
    sqlx::query(
        "insert into read_user (id, username, display_name, created_at, profile_version) values ($1, $2, $3, $4, $5)
         on conflict (id) do update set
             username = excluded.username,
             created_at = excluded.created_at,
             display_name = case when read_user.profile_version < excluded.profile_version
                                 then excluded.display_name else read_user.display_name end,
             profile_version = greatest(read_user.profile_version, excluded.profile_version)",
    )
    .bind(event.user_id)
    .bind(&event.username)
    .bind(&event.display_name)
    .bind(event.registered_at)
    .bind(version)
    .execute(connection)
    .await?;
    Ok(())
}

async fn user_renamed(connection: &mut PgConnection, event: &UserRenamed, version: i64) -> sqlx::Result<()> {
    sqlx::query(
        "insert into read_user (id, display_name, profile_version) values ($1, $2, $3)
         on conflict (id) do update set display_name = excluded.display_name, profile_version = excluded.profile_version
         where read_user.profile_version < excluded.profile_version",
    )
    .bind(event.user_id)
    .bind(&event.display_name)
    .bind(version)
    .execute(connection)
    .await?;
    Ok(())
}

async fn post_created(connection: &mut PgConnection, event: &PostCreated, version: i64) -> sqlx::Result<()> {
    let inserted = sqlx::query(
        "insert into read_post (id, author_id, title, body, created_at, version) values ($1, $2, $3, $4, $5, $6)
         on conflict (id) do nothing",
    )
    .bind(event.post_id)
    .bind(event.author_id)
    .bind(&event.title)
    .bind(&event.body)
    .bind(event.created_at)
    .bind(version)
    .execute(&mut *connection)
    .await?
    .rows_affected();
    if inserted == 1 {
        sqlx::query(
            "insert into read_user (id, post_count) values ($1, 1)
             on conflict (id) do update set post_count = read_user.post_count + 1",
        )
        .bind(event.author_id)
        .execute(connection)
        .await?;
    }
    Ok(())
}

async fn points_awarded(connection: &mut PgConnection, event: &PointsAwarded, version: i64) -> sqlx::Result<()> {
    // The event carries the new total, so applying the latest one suffices.
    sqlx::query(
        "insert into read_user (id, points, points_version) values ($1, $2, $3)
         on conflict (id) do update set points = excluded.points, points_version = excluded.points_version
         where read_user.points_version < excluded.points_version",
    )
    .bind(event.user_id)
    .bind(event.total)
    .bind(version)
    .execute(connection)
    .await?;
    Ok(())
}
