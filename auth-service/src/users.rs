//! Users: the commands that change them (each writes its event to the
//! outbox in the same transaction) and the queries that read them.

use agora_platform::idempotency::{self, IdempotencyError, Keyed};
use agora_platform::outbox;
use agora_platform::trace_context::TraceParent;
use agora_schema::receipts::WriteReceipt;
use agora_schema::{topics, Event, UserRegistered, UserRenamed};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{DisplayName, Password, Username};
use crate::error::{is_unique_violation, ApiError};

/// A user as auth-service answers it.
#[derive(Debug, Clone, sqlx::FromRow, serde::Serialize, serde::Deserialize)]
pub struct UserRow {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub points: i32,
    pub created_at: DateTime<Utc>,
}

const SELECT_USER: &str = "select u.id, u.username, u.display_name, coalesce(p.total, 0) as points, u.created_at
     from app_user u left join points_account p on p.user_id = u.id";

/// Creates an account: the user and what it wrote. CONFLICT when the
/// username is taken. With an idempotency key, a retry (with the same
/// password) gets the first answer back and registers nothing.
#[tracing::instrument(skip_all, fields(username = username.as_str()))]
pub async fn register(
    pool: &PgPool,
    username: Username,
    password: Password,
    display_name: DisplayName,
    trace: &TraceParent,
    keyed: Option<&Keyed>,
) -> Result<(UserRow, Vec<WriteReceipt>), ApiError> {
    let plain = password.as_bytes().to_vec();
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
    if let Some(keyed) = keyed {
        if let Some(stored) = idempotency::claim(&mut tx, keyed).await? {
            let user: UserRow = serde_json::from_value(stored.answer).map_err(anyhow::Error::from)?;
            // The first answer (and a token for it) only to whoever knows the password.
            let hash: String =
                sqlx::query_scalar("select password_hash from app_user where id = $1").bind(user.id).fetch_one(&mut *tx).await?;
            if !verify_password(hash, plain).await? {
                return Err(IdempotencyError::Conflict("register").into());
            }
            return Ok((user, stored.writes));
        }
    }
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
    let writes = vec![outbox::append(&mut tx, topics::USER, &event.into_envelope(1, now), trace).await?];
    if let Some(keyed) = keyed {
        idempotency::record(&mut tx, keyed, &serde_json::to_value(&user).map_err(anyhow::Error::from)?, &writes).await?;
    }
    tx.commit().await?;
    metrics::counter!("agora_users_registered_total").increment(1);
    Ok((user, writes))
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
    let matches = verify_password(hash, password.as_bytes().to_vec()).await?;
    match id {
        Some(id) if matches => find(pool, id).await?.ok_or(ApiError::WrongCredentials),
        _ => Err(ApiError::WrongCredentials),
    }
}

/// Changes a user's display name. Renaming to the current name changes
/// nothing and publishes nothing. With an idempotency key, a retry gets the
/// first answer back.
#[tracing::instrument(skip_all, fields(%user_id))]
pub async fn rename(
    pool: &PgPool,
    user_id: Uuid,
    display_name: DisplayName,
    trace: &TraceParent,
    keyed: Option<&Keyed>,
) -> Result<(UserRow, Vec<WriteReceipt>), ApiError> {
    let mut tx = pool.begin().await?;
    if let Some(keyed) = keyed {
        if let Some(stored) = idempotency::claim(&mut tx, keyed).await? {
            let user = serde_json::from_value(stored.answer).map_err(anyhow::Error::from)?;
            return Ok((user, stored.writes));
        }
    }
    let current: Option<(String, i64)> = sqlx::query_as("select display_name, version from app_user where id = $1 for update")
        .bind(user_id)
        .fetch_optional(&mut *tx)
        .await?;
    let (current_name, version) = current.ok_or(ApiError::UserNotFound)?;
    let mut writes = Vec::new();
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
        writes.push(outbox::append(&mut tx, topics::USER, &event.into_envelope(version, now), trace).await?);
    }
    let user: UserRow = sqlx::query_as(&format!("{SELECT_USER} where u.id = $1")).bind(user_id).fetch_one(&mut *tx).await?;
    if let Some(keyed) = keyed {
        idempotency::record(&mut tx, keyed, &serde_json::to_value(&user).map_err(anyhow::Error::from)?, &writes).await?;
    }
    tx.commit().await?;
    Ok((user, writes))
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

/// Whether `password` matches the argon2 `hash` (off the async threads).
async fn verify_password(hash: String, password: Vec<u8>) -> Result<bool, ApiError> {
    let matches = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).is_ok_and(|hash| Argon2::default().verify_password(&password, &hash).is_ok())
    })
    .await
    .map_err(anyhow::Error::from)?;
    Ok(matches)
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
