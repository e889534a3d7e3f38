//! Backfill: events for rows that predate the outbox (written before it
//! existed, or imported by SQL), so that every consumer of the service's
//! topics (the read model, the points ledger) learns about them.
//!
//! The service stays the only writer of its topics: a backfill appends the
//! events to the service's own outbox, and the relay publishes them as any
//! other. Each service says which of its rows lack their events and which
//! events recreate them ([`Source`]); this module runs it in batches, one
//! transaction each, until nothing is missing. A second run emits nothing,
//! because a row whose event is in the outbox is no longer missing.
//! Backfills of one database run one at a time (a transaction-scoped
//! advisory lock), so two concurrent runs never emit the same row twice.

use sqlx::{PgPool, Postgres, Transaction};

/// The rows of one kind that lack their events.
#[async_trait::async_trait]
pub trait Source: Send + Sync {
    /// What the rows are, for the log and the report (`users`, `posts`).
    fn name(&self) -> &'static str;

    /// Appends to the outbox, in `tx`, the events of at most `limit` rows
    /// that have none yet, locking those rows against a concurrent command;
    /// returns how many rows it covered (0: none is missing).
    async fn emit(&self, tx: &mut Transaction<'_, Postgres>, limit: i64) -> sqlx::Result<u64>;
}

/// The `backfill` subcommand's flags, the same in every service.
#[derive(Debug, Clone, clap::Args)]
pub struct BackfillArgs {
    /// Rows per transaction.
    #[arg(long, default_value_t = 1_000, value_parser = clap::value_parser!(i64).range(1..))]
    pub batch_size: i64,
}

/// How many rows of each source got their events.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub emitted: Vec<(&'static str, u64)>,
}

impl Report {
    pub fn total(&self) -> u64 {
        self.emitted.iter().map(|(_, count)| count).sum()
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.emitted.iter().map(|(name, count)| format!("{count} {name}")).collect();
        write!(formatter, "backfilled {}", parts.join(", "))
    }
}

/// Serialises backfills of one database (any value no relay uses).
const BACKFILL_LOCK_KEY: i64 = 0x6167_6f72_615f_6266; // "agora_bf"

/// Runs every source to its end, in order, `batch_size` rows per transaction.
pub async fn run(pool: &PgPool, sources: &[&dyn Source], batch_size: i64) -> anyhow::Result<Report> {
    anyhow::ensure!(batch_size > 0, "the batch size must be at least 1");
    let mut report = Report::default();
    for source in sources {
        let mut emitted = 0;
        loop {
            let mut tx = pool.begin().await?;
            sqlx::query("select pg_advisory_xact_lock($1)").bind(BACKFILL_LOCK_KEY).execute(&mut *tx).await?;
            let covered = source.emit(&mut tx, batch_size).await?;
            tx.commit().await?;
            if covered == 0 {
                break;
            }
            emitted += covered;
            tracing::info!(rows = source.name(), emitted, "backfill batch committed");
        }
        metrics::counter!("agora_backfill_rows_total", "rows" => source.name()).increment(emitted);
        report.emitted.push((source.name(), emitted));
    }
    tracing::info!(%report, "backfill done");
    Ok(report)
}
