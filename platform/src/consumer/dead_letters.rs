//! What an operator does with a consumer's dead letters: list them, replay
//! them once the cause is fixed (through the consumer's own [`Handler`],
//! each in a transaction that also marks it replayed, so a replay is
//! applied once), or skip them. Every action is logged and leaves its note
//! on the row.

use chrono::{DateTime, Utc};
use rdkafka::message::{Header, OwnedHeaders, OwnedMessage, Timestamp};
use sqlx::PgPool;
use uuid::Uuid;

use super::{decode, ApplyError, Handler};
use crate::trace_context::TraceParent;

/// One dead letter as the operator sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: i64,
    pub consumer: String,
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub event_id: Option<Uuid>,
    pub event_type: Option<String>,
    pub kind: String,
    pub reason: String,
    pub status: String,
    pub note: Option<String>,
    /// The message's payload as text (events are JSON).
    pub event: Option<String>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// Which dead letters an action takes (pending ones only, for a replay).
#[derive(Debug, Clone, Copy)]
pub enum Selection {
    One(i64),
    /// From the first id to the last, both included.
    Range(i64, i64),
    AllPending,
}

impl Selection {
    fn bounds(self) -> (i64, i64) {
        match self {
            Selection::One(id) => (id, id),
            Selection::Range(first, last) => (first, last),
            Selection::AllPending => (i64::MIN, i64::MAX),
        }
    }
}

/// What a replay did.
#[derive(Debug, Default)]
pub struct Replayed {
    pub applied: Vec<i64>,
    /// Still failing, with the new reason; they stay pending.
    pub failed: Vec<(i64, String)>,
}

const COLUMNS: &str = "id, consumer, topic, partition, \"offset\", event_id, event_type, kind, reason, status, note,
     convert_from(payload, 'UTF8') as event, created_at, updated_at";

/// `consumer`'s dead letters, oldest first; only those in `status` if given.
pub async fn list(pool: &PgPool, consumer: &str, status: Option<&str>) -> sqlx::Result<Vec<DeadLetter>> {
    sqlx::query_as(&format!(
        "select {COLUMNS} from consumer_dead_letter where consumer = $1 and ($2::text is null or status = $2) order by id"
    ))
    .bind(consumer)
    .bind(status)
    .fetch_all(pool)
    .await
}

/// Applies the selected pending dead letters again, one transaction each.
pub async fn replay(
    pool: &PgPool,
    consumer: &str,
    handler: &impl Handler,
    selection: Selection,
    actor: &str,
) -> anyhow::Result<Replayed> {
    let (first, last) = selection.bounds();
    let ids: Vec<i64> = sqlx::query_scalar(
        "select id from consumer_dead_letter where consumer = $1 and status = 'pending' and id between $2 and $3 order by id",
    )
    .bind(consumer)
    .bind(first)
    .bind(last)
    .fetch_all(pool)
    .await?;
    let mut replayed = Replayed::default();
    for id in ids {
        let mut tx = pool.begin().await?;
        handler.begin(&mut tx).await?;
        // Locked and checked again: a concurrent replay or skip wins once.
        let row: Option<(String, i32, i64, Option<Vec<u8>>, Option<Vec<u8>>, Option<String>)> = sqlx::query_as(
            "select topic, partition, \"offset\", message_key, payload, traceparent from consumer_dead_letter
             where id = $1 and status = 'pending' for update",
        )
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((topic, partition, offset, key, payload, traceparent)) = row else { continue };
        let headers = traceparent
            .as_deref()
            .map(|value| OwnedHeaders::new().insert(Header { key: TraceParent::HEADER, value: Some(value) }));
        let message = OwnedMessage::new(payload, key, topic, Timestamp::NotAvailable, partition, offset, headers);
        let outcome = match decode(&message) {
            Ok(delivery) => {
                let mut savepoint = sqlx::Connection::begin(&mut *tx).await?;
                match handler.apply(&mut savepoint, std::slice::from_ref(&delivery)).await {
                    Ok(()) => savepoint.commit().await.map(|()| Ok(()))?,
                    Err(ApplyError::Poison(reason)) => {
                        savepoint.rollback().await?;
                        Err(reason)
                    }
                    Err(ApplyError::Transient(error)) => return Err(error.context(format!("cannot replay dead letter {id}"))),
                }
            }
            Err(reason) => Err(reason),
        };
        let (status, reason) = match &outcome {
            Ok(()) => ("replayed", None),
            Err(reason) => ("pending", Some(reason.as_str())),
        };
        sqlx::query(
            "update consumer_dead_letter set status = $2, reason = coalesce($3, reason), note = $4, updated_at = now() where id = $1",
        )
        .bind(id)
        .bind(status)
        .bind(reason)
        .bind(format!("{} by {actor}", if outcome.is_ok() { "replayed" } else { "replay failed" }))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        match outcome {
            Ok(()) => {
                tracing::info!(consumer, id, actor, "dead letter replayed");
                replayed.applied.push(id);
            }
            Err(reason) => {
                tracing::warn!(consumer, id, actor, %reason, "dead letter still fails; it stays pending");
                replayed.failed.push((id, reason));
            }
        }
    }
    refresh_pending(pool, consumer).await?;
    Ok(replayed)
}

/// Marks the selected pending dead letters skipped, with `note`; the ids skipped.
pub async fn skip(pool: &PgPool, consumer: &str, selection: Selection, actor: &str, note: &str) -> sqlx::Result<Vec<i64>> {
    let (first, last) = selection.bounds();
    let skipped: Vec<i64> = sqlx::query_scalar(
        "update consumer_dead_letter set status = 'skipped', note = $4, updated_at = now()
         where consumer = $1 and status = 'pending' and id between $2 and $3 returning id",
    )
    .bind(consumer)
    .bind(first)
    .bind(last)
    .bind(format!("skipped by {actor}: {note}"))
    .fetch_all(pool)
    .await?;
    tracing::info!(consumer, ?skipped, actor, note, "dead letters skipped");
    refresh_pending(pool, consumer).await?;
    Ok(skipped)
}

/// Sets the gauge `agora_consumer_dead_letters_pending` of `consumer`.
pub async fn refresh_pending(pool: &PgPool, consumer: &str) -> sqlx::Result<i64> {
    let pending: i64 = sqlx::query_scalar("select count(*) from consumer_dead_letter where consumer = $1 and status = 'pending'")
        .bind(consumer)
        .fetch_one(pool)
        .await?;
    metrics::gauge!("agora_consumer_dead_letters_pending", "consumer" => consumer.to_owned()).set(pending as f64);
    Ok(pending)
}

/// The operator's command line for a consumer's dead letters, the same in
/// every binary that runs a consumer.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    /// Lists the dead letters (reason, source topic, partition, offset, event).
    List {
        /// Only those in this status.
        #[arg(long, value_parser = ["pending", "replayed", "skipped"])]
        status: Option<String>,
    },
    /// Applies pending dead letters again, after their cause was fixed.
    Replay(Target),
    /// Marks pending dead letters skipped: they will not be applied.
    Skip {
        #[command(flatten)]
        target: Target,
        /// Why (kept on the row and logged).
        #[arg(long)]
        note: String,
    },
}

/// Which dead letters: `--id 7`, `--from 7 --to 9`, or `--all`.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = true)]
pub struct Target {
    #[arg(long, conflicts_with_all = ["from", "to", "all"])]
    pub id: Option<i64>,
    #[arg(long, requires = "to", conflicts_with = "all")]
    pub from: Option<i64>,
    #[arg(long, requires = "from", conflicts_with = "all")]
    pub to: Option<i64>,
    /// Every pending one.
    #[arg(long)]
    pub all: bool,
}

impl Target {
    fn selection(&self) -> Selection {
        match (self.id, self.from, self.to) {
            (Some(id), _, _) => Selection::One(id),
            (None, Some(first), Some(last)) => Selection::Range(first, last),
            _ => Selection::AllPending,
        }
    }
}

/// Runs `command` on `consumer`'s dead letters and prints what it did; an
/// error when a replay left some still failing, or nothing matched.
pub async fn execute(pool: &PgPool, consumer: &str, handler: &impl Handler, command: Command) -> anyhow::Result<()> {
    let actor = std::env::var("USER").unwrap_or_else(|_| "an operator".to_owned());
    match command {
        Command::List { status } => {
            for letter in list(pool, consumer, status.as_deref()).await? {
                println!(
                    "{}\t{}\t{}\t{}/{}@{}\t{}\t{}\t{}\t{}",
                    letter.id,
                    letter.status,
                    letter.kind,
                    letter.topic,
                    letter.partition,
                    letter.offset,
                    letter.created_at.to_rfc3339(),
                    letter.reason,
                    letter.note.unwrap_or_default(),
                    letter.event.unwrap_or_default()
                );
            }
            Ok(())
        }
        Command::Replay(target) => {
            let replayed = replay(pool, consumer, handler, target.selection(), &actor).await?;
            println!("replayed {:?}", replayed.applied);
            for (id, reason) in &replayed.failed {
                println!("still failing {id}: {reason}");
            }
            anyhow::ensure!(replayed.failed.is_empty(), "{} dead letters still fail and stay pending", replayed.failed.len());
            anyhow::ensure!(!replayed.applied.is_empty(), "no pending dead letter of {consumer} matches");
            Ok(())
        }
        Command::Skip { target, note } => {
            let skipped = skip(pool, consumer, target.selection(), &actor, &note).await?;
            println!("skipped {skipped:?}");
            anyhow::ensure!(!skipped.is_empty(), "no pending dead letter of {consumer} matches");
            Ok(())
        }
    }
}
