//! Users: the commands that change them (each writes its event to the
//! outbox in the same transaction) and the queries that read them.

use agora_platform::graphql::{TraceParent, WriteReceipt};
use agora_platform::outbox;
use agora_schema::{topics, Event, UserRegistered, UserRenamed};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{DisplayName, Password, Username};
use crate::error::{is_unique_violation, ApiError};

/// A user as auth-service answers it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub points: i32,
    pub created_at: DateTime<Utc>,
}

const SELECT_USER: &str = "select u.id, u.username, u.display_name, coalesce(p.total, 0) as points, u.created_at
     from app_user u left join points_account p on p.user_id = u.id";

/// Creates an account. CONFLICT when the username is taken.
#[tracing::instrument(skip_all, fields(username = username.as_str()))]
pub async fn register(
    pool: &PgPool,
    username: Username,
    password: Password,
    display_name: DisplayName,
    trace: &TraceParent,
) -> Result<(UserRow, WriteReceipt), ApiError> {
    let password_hash = hash_password(password).await?;
    // Microsecond precision, as PostgreSQL keeps it: the answer, the event and
    // every later read show the same instant.
    let now = DateTime::from_timestamp_micros(Utc::now().timestamp_micros()).expect("now is representable");
    let user = UserRow {
        id: Uuid::now_v7(),
        username: username.as_str().to_owned(),
        display_name: display_name.as_str().to_owned(),
        points: 0,
        created_at: now,
    };
    let mut tx = pool.begin().await?;
    sqlx::query(
        "insert into app_user (id, username, display_name, password_hash, version, created_at, updated_at)
         values ($1, $2, $3, $4, 1, $5, $5)",
    )
    .bind(user.id)
    .bind(&user.username)
    .bind(&user.display_name)
    .bind(&password_hash)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|error| if is_unique_violation(&error) { ApiError::UsernameTaken } else { error.into() })?;
    let event = Event::UserRegistered(UserRegistered {
        user_id: user.id,
        username: user.username.clone(),
        display_name: user.display_name.clone(),
        registered_at: now,
    });
    let receipt = outbox::append(&mut tx, topics::USER, &event.into_envelope(1, now), trace).await?;
    tx.commit().await?;
    metrics::counter!("agora_users_registered_total").increment(1);
    Ok((user, receipt))
}

/// Checks a username and password; the same error whichever is wrong, and
/// about the same time spent either way.
#[tracing::instrument(skip_all)]
pub async fn authenticate(pool: &PgPool, username: &str, password: &str) -> Result<UserRow, ApiError> {
    let stored: Option<(Uuid, String)> =
        sqlx::query_as("select id, password_hash from app_user where username = $1").bind(username).fetch_optional(pool).await?;
    let (id, hash) = match stored {
        Some((id, hash)) => (Some(id), hash),
        None => (None, dummy_hash().to_owned()),
    };
    let password = password.to_owned();
    let matches = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|hash| Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
    })
    .await
    .map_err(anyhow::Error::from)?;
    match id {
        Some(id) if matches => find(pool, id).await?.ok_or(ApiError::WrongCredentials),
        _ => Err(ApiError::WrongCredentials),
    }
}

/// Changes a user's display name. Renaming to the current name changes
/// nothing and publishes nothing.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn rename(pool: &PgPool, user_id: Uuid, display_name: DisplayName, trace: &TraceParent) -> Result<(UserRow, Option<WriteReceipt>), ApiError> {
    let mut tx = pool.begin().await?;
    let current: Option<(String, i64)> = sqlx::query_as("select display_name, version from app_user where id = $1 for update")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (current_name, version) = current.ok_or(ApiError::UserNotFound)?;
    let mut receipt = None;
    if current_name != display_name.as_str() {
        let now = Utc::now();
        let version = version + 1;
        sqlx::query("update app_user set display_name = $2, version = $3, updated_at = $4 where id = $1")
            .bind(user_id)
            .bind(display_name.as_str())
            .bind(version)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let event = Event::UserRenamed(UserRenamed { user_id, display_name: display_name.as_str().to_owned(), renamed_at: now });
        receipt = Some(outbox::append(&mut tx, topics::USER, &event.into_envelope(version, now), trace).await?);
    }
    tx.commit().await?;
    let user = find(pool, user_id).await?.ok_or(ApiError::UserNotFound)?;
    Ok((user, receipt))
}

#[tracing::instrument(skip(pool))]
pub async fn find(pool: &PgPool, id: Uuid) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!("{SELECT_USER} where u.id = $1")).bind(id).fetch_optional(pool).await
}

#[tracing::instrument(skip(pool))]
pub async fn find_by_username(pool: &PgPool, username: &str) -> sqlx::Result<Option<UserRow>> {
    sqlx::query_as(&format!("{SELECT_USER} where u.username = $1")).bind(username).fetch_optional(pool).await
}

#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn find_many(pool: &PgPool, ids: &[Uuid]) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(&format!("{SELECT_USER} where u.id = any($1)")).bind(ids).fetch_all(pool).await
}

/// Users by points, highest first; ties by earliest registration.
#[tracing::instrument(skip(pool))]
pub async fn leaderboard(pool: &PgPool, first: i64) -> sqlx::Result<Vec<UserRow>> {
    sqlx::query_as(&format!("{SELECT_USER} order by points desc, u.created_at, u.id limit $1")).bind(first).fetch_all(pool).await
}

async fn hash_password(password: Password) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default().hash_password(password.as_bytes(), &salt).map(|hash| hash.to_string())
    })
    .await
    .map_err(anyhow::Error::from)?
    .map_err(|error| ApiError::Unexpected(anyhow::anyhow!("cannot hash a password: {error}")))
}

/// A valid argon2id hash of a random password, verified against when the
/// username is unknown so that answer takes as long as a wrong password.
fn dummy_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| {
        let salt = SaltString::generate(&mut argon2::password_hash::rand_core::OsRng);
        Argon2::default().hash_password(Uuid::new_v4().as_bytes(), &salt).expect("hashing works").to_string()
    })
}
