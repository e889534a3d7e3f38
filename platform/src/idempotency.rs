//! Idempotent commands. A client may send an `Idempotency-Key` header with a
//! mutation; the service that owns the data records the key, who sent it, a
//! fingerprint of the command's input and the command's answer in the
//! command's own transaction. A retry with the same key by the same caller
//! then gets the first answer (and its write receipts) without a second
//! effect, whichever gateway replica it goes through; the same key with a
//! different input is a CONFLICT. Keys are kept for [`TTL`].
//!
//! Each mutation field of a request has a key of its own: the header's
//! value and the field's response path (`key/createPost`), so one header on
//! a request with several mutations still names each of them apart.

use std::time::Duration;

use agora_schema::receipts::WriteReceipt;
use serde_json::Value;
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use crate::input::InputError;

/// The HTTP header a client sends its key in.
pub const HEADER: &str = "idempotency-key";

/// How long a key is remembered: a retry after that is a new command.
pub const TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// The longest key accepted (in bytes; visible ASCII only).
pub const MAX_KEY_LENGTH: usize = 255;

/// Expired keys removed by each keyed command, on the side.
const PURGE_BATCH: i64 = 100;

/// The raw `Idempotency-Key` header of a request, in its GraphQL data.
#[derive(Debug, Clone, Default)]
pub struct RequestKey(Option<String>);

impl RequestKey {
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        // A value that is not visible ASCII is kept as an empty one, which
        // `parse` refuses: a key the client sent is never silently ignored.
        RequestKey(headers.get(HEADER).map(|value| value.to_str().unwrap_or_default().to_owned()))
    }

    /// The key the client sent, checked; `None` without one.
    pub fn parse(value: Option<&str>) -> Result<Option<String>, InputError> {
        let Some(value) = value else { return Ok(None) };
        let value = value.trim();
        if value.is_empty() || value.len() > MAX_KEY_LENGTH || !value.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(InputError::new(
                "Idempotency-Key",
                format!("must be 1 to {MAX_KEY_LENGTH} visible ASCII characters (a UUID is a good key)"),
            ));
        }
        Ok(Some(value.to_owned()))
    }
}

/// A command's claim on its key: who sent it, the key of this field, and
/// what the command was asked to do.
#[derive(Debug, Clone)]
pub struct Keyed {
    scope: String,
    key: String,
    command: &'static str,
    fingerprint: Vec<u8>,
}

impl Keyed {
    /// The key of the mutation field being resolved, if its request has one
    /// (BAD_USER_INPUT when it is malformed). `caller` is the token's subject
    /// (`None`: anonymous); `input` the command's input, in a fixed order.
    pub fn of(
        ctx: &async_graphql::Context<'_>,
        caller: Option<Uuid>,
        command: &'static str,
        input: &[Option<&str>],
    ) -> Result<Option<Keyed>, InputError> {
        let header = ctx.data_opt::<RequestKey>().and_then(|key| key.0.as_deref());
        let Some(key) = RequestKey::parse(header)? else { return Ok(None) };
        let path = ctx.path_node.map(|path| path.to_string()).unwrap_or_else(|| command.to_owned());
        Ok(Some(Keyed::new(caller, format!("{key}/{path}"), command, input)))
    }

    pub fn new(caller: Option<Uuid>, key: String, command: &'static str, input: &[Option<&str>]) -> Keyed {
        let scope = caller.map_or_else(|| "anonymous".to_owned(), |subject| format!("user:{subject}"));
        Keyed { scope, key, command, fingerprint: fingerprint(command, input) }
    }
}

/// The first answer to a key, as the command recorded it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub answer: Value,
    pub writes: Vec<WriteReceipt>,
}

#[derive(Debug, thiserror::Error)]
pub enum IdempotencyError {
    #[error("this Idempotency-Key was already used for a different {0} input; send a new key for a new command")]
    Conflict(&'static str),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// Claims `keyed` in the command's transaction: waits for any command with
/// the same key to end (a transaction-scoped lock), then returns the answer
/// it recorded, if any. `None`: run the command, then [`record`] it.
pub async fn claim(tx: &mut Transaction<'_, Postgres>, keyed: &Keyed) -> Result<Option<Stored>, IdempotencyError> {
    sqlx::query("select pg_advisory_xact_lock(hashtextextended($1 || '/' || $2, 0))")
        .bind(&keyed.scope)
        .bind(&keyed.key)
        .execute(&mut **tx)
        .await?;
    sqlx::query("delete from idempotency_key where scope = $1 and key = $2 and created_at <= now() - make_interval(secs => $3)")
        .bind(&keyed.scope)
        .bind(&keyed.key)
        .bind(TTL.as_secs_f64())
        .execute(&mut **tx)
        .await?;
    let stored: Option<StoredRow> =
        sqlx::query_as("select command, fingerprint, answer, writes from idempotency_key where scope = $1 and key = $2")
            .bind(&keyed.scope)
            .bind(&keyed.key)
            .fetch_optional(&mut **tx)
            .await?;
    match stored {
        None => Ok(None),
        Some(row) if row.command != keyed.command || row.fingerprint != keyed.fingerprint => {
            Err(IdempotencyError::Conflict(keyed.command))
        }
        Some(row) => {
            metrics::counter!("agora_idempotent_replays_total", "command" => keyed.command).increment(1);
            Ok(Some(Stored { answer: row.answer.0, writes: row.writes.0 }))
        }
    }
}

#[derive(sqlx::FromRow)]
struct StoredRow {
    command: String,
    fingerprint: Vec<u8>,
    answer: sqlx::types::Json<Value>,
    writes: sqlx::types::Json<Vec<WriteReceipt>>,
}

/// Records the answer to a claimed key, in the transaction of the command
/// that produced it (so the key exists exactly when the effect does).
pub async fn record(
    tx: &mut Transaction<'_, Postgres>,
    keyed: &Keyed,
    answer: &Value,
    writes: &[WriteReceipt],
) -> sqlx::Result<()> {
    sqlx::query("insert into idempotency_key (scope, key, command, fingerprint, answer, writes) values ($1, $2, $3, $4, $5, $6)")
        .bind(&keyed.scope)
        .bind(&keyed.key)
        .bind(keyed.command)
        .bind(&keyed.fingerprint)
        .bind(sqlx::types::Json(answer))
        .bind(sqlx::types::Json(writes))
        .execute(&mut **tx)
        .await?;
    // The cleanup: a few expired keys go with every keyed command.
    sqlx::query(
        "delete from idempotency_key where (scope, key) in (
             select scope, key from idempotency_key where created_at <= now() - make_interval(secs => $1)
             limit $2 for update skip locked)",
    )
    .bind(TTL.as_secs_f64())
    .bind(PURGE_BATCH)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// SHA-256 of the command and its input, each part length-prefixed (an
/// absent part differs from an empty one).
fn fingerprint(command: &str, input: &[Option<&str>]) -> Vec<u8> {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    let mut part = |bytes: Option<&[u8]>| match bytes {
        Some(bytes) => {
            context.update(&(bytes.len() as u64).to_be_bytes());
            context.update(bytes);
        }
        None => context.update(&u64::MAX.to_be_bytes()),
    };
    part(Some(command.as_bytes()));
    for value in input {
        part(value.map(str::as_bytes));
    }
    context.finish().as_ref().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_input_has_the_same_fingerprint_and_another_input_another() {
        let first = fingerprint("createPost", &[Some("Title"), Some("Body")]);
        assert_eq!(first, fingerprint("createPost", &[Some("Title"), Some("Body")]));
        assert_ne!(first, fingerprint("createPost", &[Some("TitleB"), Some("ody")]));
        assert_ne!(first, fingerprint("renameUser", &[Some("Title"), Some("Body")]));
        assert_ne!(fingerprint("register", &[Some("ada"), None]), fingerprint("register", &[Some("ada"), Some("")]));
    }

    #[test]
    fn keys_are_scoped_by_caller() {
        let ada = Keyed::new(Some(Uuid::now_v7()), "k/createPost".into(), "createPost", &[]);
        let anonymous = Keyed::new(None, "k/createPost".into(), "createPost", &[]);
        assert_ne!(ada.scope, anonymous.scope);
        assert_eq!(anonymous.scope, "anonymous");
    }

    #[test]
    fn refuses_an_empty_or_oversized_or_non_ascii_key() {
        assert_eq!(RequestKey::parse(None), Ok(None));
        assert_eq!(RequestKey::parse(Some(" abc-123 ")), Ok(Some("abc-123".to_owned())));
        for bad in ["", "   ", "with space", "clé", &"k".repeat(MAX_KEY_LENGTH + 1)] {
            assert!(RequestKey::parse(Some(bad)).is_err(), "{bad:?}");
        }
    }
}
