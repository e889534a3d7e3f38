//! PostgreSQL setup shared by every part: create the database when it does
//! not exist yet, open the pool, run the outbox's and the part's migrations.

use std::time::Duration;

use anyhow::Context;
use secrecy::{ExposeSecret, SecretString};
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};

/// The migrations every publishing part has: the outbox (and where its
/// events landed) and the idempotency keys of its commands.
pub fn outbox_migrations() -> Migrator {
    sqlx::migrate!("./migrations")
}

/// How long a request waits for a connection before it answers UNAVAILABLE:
/// a database that is away fails fast, well within the gateway's
/// `UPSTREAM_TIMEOUT_MS` (5 s), so a client gets the retryable code rather
/// than a timeout.
pub const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// True when `error` says the database is away for now (unreachable,
/// restarting, shutting down, out of connections) rather than that the
/// statement is wrong: the one place that decides UNAVAILABLE over INTERNAL.
pub fn is_unavailable(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Tls(_) => true,
        sqlx::Error::Protocol(message) => message.contains("connection closed") || message.contains("unexpected end"),
        sqlx::Error::Database(error) => {
            let code = error.code();
            let code = code.as_deref().unwrap_or_default();
            // 08: connection exception; 57P01-03: admin/crash shutdown, cannot
            // connect now (starting up, shutting down); 53300: too many connections.
            code.starts_with("08")
                || matches!(code, "57P01" | "57P02" | "57P03" | "53300")
                || error.message().contains("the database system is starting up")
        }
        _ => false,
    }
}

/// Where and how to connect.
#[derive(Debug, Clone)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
}

/// Opens a pool on the database (creating the database first if it is
/// missing) and brings its schema up to date with `migrators`, in order.
#[tracing::instrument(skip_all)]
pub async fn connect_and_migrate(settings: &DatabaseSettings, migrators: Vec<Migrator>) -> anyhow::Result<PgPool> {
    let url = settings.url.expose_secret();
    let options: PgConnectOptions = url.parse().context("DATABASE_URL is not a valid PostgreSQL URL")?;
    if !Postgres::database_exists(url).await.context("cannot reach PostgreSQL")? {
        match Postgres::create_database(url).await {
            Ok(()) => tracing::info!(database = options.get_database(), "created the database"),
            // Another replica may have created it in the meantime.
            Err(error) if Postgres::database_exists(url).await.unwrap_or(false) => {
                tracing::debug!(%error, "the database appeared concurrently")
            }
            Err(error) => return Err(error).context("cannot create the database"),
        }
    }
    let pool = PgPoolOptions::new()
        .max_connections(settings.max_connections)
        .acquire_timeout(ACQUIRE_TIMEOUT)
        .connect_with(options)
        .await
        .context("cannot connect to the database")?;
    for mut migrator in migrators {
        // Several migrators share one history table; each ignores the others' rows.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await.context("cannot migrate the database")?;
    }
    Ok(pool)
}

/// The same URL with another database name: tests give every case its own.
pub fn with_database(url: &str, database: &str) -> anyhow::Result<String> {
    let mut parsed = reqwest::Url::parse(url).context("not a URL")?;
    parsed.set_path(&format!("/{database}"));
    Ok(parsed.to_string())
}

/// A clap value parser that keeps a setting (a URL with a password) secret.
pub fn secret(value: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(value.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::is_unavailable;

    #[test]
    fn a_pool_timeout_and_a_broken_connection_are_unavailable() {
        assert!(is_unavailable(&sqlx::Error::PoolTimedOut));
        assert!(is_unavailable(&sqlx::Error::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused))));
    }

    #[test]
    fn a_missing_row_or_a_bad_column_is_not() {
        assert!(!is_unavailable(&sqlx::Error::RowNotFound));
        assert!(!is_unavailable(&sqlx::Error::ColumnNotFound("id".into())));
    }
}
