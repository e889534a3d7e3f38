//! The transactional outbox and its relay.
//!
//! A command writes its state change and its event in one transaction
//! ([`append`]). The [`Relay`] publishes unpublished rows to Kafka in commit
//! order and marks them published only after the broker acknowledged them,
//! so a crash anywhere loses nothing (at worst a batch is published twice).
//!
//! Order: exactly one relay per database is active at a time (it holds a
//! Postgres session advisory lock; the others stand by and take over when
//! its connection dies), it enqueues a batch in id order on an idempotent
//! producer with the gapless guarantee, and on any delivery failure it rolls
//! the batch back and starts over with a fresh producer.
//!
//! Leadership moves within seconds: the leader claims its batches on the
//! session that holds the lock (a claim cannot outlive the lock), and
//! heartbeats on it, while idle and while it waits for the broker; a failed
//! or slow heartbeat makes it step down at once, abandoning its batch and
//! dropping its producer (which purges what it has not sent). The session
//! has server-side TCP keepalives and timeouts, so a leader whose host
//! vanishes loses the lock in about ten seconds, not hours.

mod backlog;

use std::time::Duration;

use agora_schema::receipts::WriteReceipt;
use agora_schema::Envelope;
use anyhow::Context;
use futures::future::join_all;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::postgres::{PgConnectOptions, PgListener};
use sqlx::{Connection, PgConnection, PgPool, Postgres, Transaction};
use tokio_util::sync::CancellationToken;

use crate::kafka::{KafkaSettings, LogProbe, LogVerdict};
use crate::trace_context::TraceParent;

/// The Postgres channel the outbox trigger notifies on commit.
const NOTIFY_CHANNEL: &str = "agora_outbox";

/// Writes an event to the outbox inside the caller's transaction and returns
/// the receipt the command hands back to its caller. The row carries this
/// insert's trace context (or, when traces are not exported, `trace`), so
/// that the relay's publish continues the trace of the command.
#[tracing::instrument(name = "outbox insert", skip_all, fields(event_type = %envelope.event_type, aggregate_id = %envelope.aggregate_id))]
pub async fn append(
    tx: &mut Transaction<'_, Postgres>,
    topic: &str,
    envelope: &Envelope,
    trace: &TraceParent,
) -> sqlx::Result<WriteReceipt> {
    sqlx::query(
        "insert into outbox (event_id, topic, event_type, aggregate_id, aggregate_version, payload, traceparent)
         values ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(envelope.event_id)
    .bind(topic)
    .bind(&envelope.event_type)
    .bind(envelope.aggregate_id)
    .bind(envelope.aggregate_version)
    .bind(sqlx::types::Json(envelope))
    .bind(TraceParent::current().or(trace).as_deref())
    .execute(&mut **tx)
    .await?;
    Ok(WriteReceipt {
        topic: topic.to_owned(),
        aggregate_id: envelope.aggregate_id,
        aggregate_version: envelope.aggregate_version,
    })
}

/// How a relay behaves.
#[derive(Debug, Clone)]
pub struct RelaySettings {
    /// The advisory lock that elects the one active relay of a database.
    pub lock_key: i64,
    /// Rows claimed and published per transaction.
    pub batch_size: i64,
    /// How often a standby relay tries to take over.
    pub standby_poll: Duration,
    /// How often the leader looks for rows when no notification came.
    pub idle_poll: Duration,
    /// The pause before starting over after a failure.
    pub retry_backoff: Duration,
    /// How often the leader checks that its leadership session is alive.
    pub heartbeat_interval: Duration,
    /// A heartbeat slower than this counts as failed: the leader steps down.
    pub heartbeat_timeout: Duration,
}

impl RelaySettings {
    pub fn new(lock_key: i64) -> Self {
        RelaySettings {
            lock_key,
            batch_size: 500,
            standby_poll: Duration::from_millis(500),
            idle_poll: Duration::from_secs(5),
            retry_backoff: Duration::from_millis(500),
            heartbeat_interval: Duration::from_secs(1),
            heartbeat_timeout: Duration::from_secs(3),
        }
    }
}

/// Publishes a database's outbox to Kafka.
pub struct Relay {
    pool: PgPool,
    kafka: KafkaSettings,
    settings: RelaySettings,
    client_id: String,
}

#[derive(sqlx::FromRow)]
struct OutboxRow {
    id: i64,
    event_id: uuid::Uuid,
    topic: String,
    event_type: String,
    aggregate_id: uuid::Uuid,
    payload: String,
    traceparent: Option<String>,
}

/// Rows published to Kafka and acknowledged, not yet marked: the claiming
/// transaction is still open, so no other relay can claim them. Dropping it
/// without [`ClaimedBatch::mark_published`] leaves them to be published again.
pub struct ClaimedBatch<'c> {
    tx: Transaction<'c, Postgres>,
    ids: Vec<i64>,
    /// Where the batch's last event of each partition landed.
    landed: Vec<Landed>,
}

/// An acknowledged event's place in its topic.
struct Landed {
    topic: String,
    partition: i32,
    offset: i64,
    event_id: uuid::Uuid,
}

impl ClaimedBatch<'_> {
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub async fn mark_published(mut self) -> sqlx::Result<usize> {
        // Kafka has the events already; a mark lost in a crash before the WAL
        // flush only publishes them again (at least once, as always), so the
        // commit does not wait for the flush.
        sqlx::query("set local synchronous_commit = off").execute(&mut *self.tx).await?;
        sqlx::query("update outbox set published_at = now() where id = any($1)").bind(&self.ids).execute(&mut *self.tx).await?;
        sqlx::query(
            "insert into outbox_published_position (topic, partition, last_offset, last_event_id)
             select * from unnest($1::text[], $2::int[], $3::bigint[], $4::uuid[])
             on conflict (topic, partition) do update
             set last_offset = excluded.last_offset, last_event_id = excluded.last_event_id, updated_at = now()",
        )
        .bind(self.landed.iter().map(|landed| landed.topic.as_str()).collect::<Vec<_>>())
        .bind(self.landed.iter().map(|landed| landed.partition).collect::<Vec<_>>())
        .bind(self.landed.iter().map(|landed| landed.offset).collect::<Vec<_>>())
        .bind(self.landed.iter().map(|landed| landed.event_id).collect::<Vec<_>>())
        .execute(&mut *self.tx)
        .await?;
        self.tx.commit().await?;
        Ok(self.ids.len())
    }
}

impl Relay {
    pub fn new(pool: PgPool, kafka: KafkaSettings, settings: RelaySettings, client_id: impl Into<String>) -> Self {
        Relay { pool, kafka, settings, client_id: client_id.into() }
    }

    /// Runs until `shutdown`: stands by until it is the leader, then publishes.
    /// Leader or not, it exports the outbox's backlog ([`backlog`]).
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        tokio::select! {
            result = self.relay(&shutdown) => result,
            never = backlog::watch(&self.pool, &self.client_id) => match never {},
        }
    }

    async fn relay(&self, shutdown: &CancellationToken) -> anyhow::Result<()> {
        loop {
            let mut leader = tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                connection = self.become_leader() => connection?,
            };
            tracing::info!(client_id = %self.client_id, "outbox relay is the leader");
            match self.lead(&mut leader, shutdown).await {
                Ok(()) => return Ok(()),
                Err(error) => {
                    metrics::counter!("agora_outbox_relay_restarts_total").increment(1);
                    tracing::warn!(error = format!("{error:#}"), "outbox relay failed; starting over");
                    drop(leader);
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(self.settings.retry_backoff) => {}
                    }
                }
            }
        }
    }

    /// Waits until this relay holds the leadership lock. The lock lives as
    /// long as the returned connection (a dedicated one, not from the pool).
    async fn become_leader(&self) -> anyhow::Result<PgConnection> {
        let options = self.session_options();
        loop {
            // Bounded: a database host that does not answer must not hold a standby back.
            let connected = tokio::time::timeout(crate::db::ACQUIRE_TIMEOUT, PgConnection::connect_with(&options)).await;
            match connected.unwrap_or_else(|_| Err(sqlx::Error::Io(std::io::ErrorKind::TimedOut.into()))) {
                Ok(mut connection) => {
                    let acquired: bool = sqlx::query_scalar("select pg_try_advisory_lock($1)")
                        .bind(self.settings.lock_key)
                        .fetch_one(&mut connection)
                        .await
                        .unwrap_or(false);
                    if acquired {
                        return Ok(connection);
                    }
                }
                Err(error) => tracing::warn!(%error, "outbox relay cannot reach the database"),
            }
            tokio::time::sleep(self.settings.standby_poll).await;
        }
    }

    /// The leadership session's settings: its name (`<client id> relay`,
    /// for `pg_stat_activity`), and server-side keepalives and timeouts, so
    /// that the server ends the session (and frees the lock) within about
    /// ten seconds when the relay's host vanishes or stops answering.
    fn session_options(&self) -> PgConnectOptions {
        (*self.pool.connect_options()).clone().application_name(&format!("{} relay", self.client_id)).options([
            ("tcp_keepalives_idle", "5"),
            ("tcp_keepalives_interval", "1"),
            ("tcp_keepalives_count", "3"),
            // Data the relay's host does not acknowledge within 8 s ends the session too.
            ("tcp_user_timeout", "8000"),
            ("statement_timeout", "30s"),
            // The leader heartbeats inside its claim while it waits for the
            // broker: a transaction idle for long belongs to a stuck relay.
            ("idle_in_transaction_session_timeout", "10s"),
        ])
    }

    async fn lead(&self, leader: &mut PgConnection, shutdown: &CancellationToken) -> anyhow::Result<()> {
        self.check_log(leader).await.context("cannot check the topics against the outbox")?;
        let producer = self.producer()?;
        let mut listener = PgListener::connect_with(&self.pool).await.context("cannot listen for outbox rows")?;
        listener.listen(NOTIFY_CHANNEL).await?;
        loop {
            // (A block, so that the claim's borrow of the session ends with it.)
            let published = {
                let batch = tokio::select! {
                    // An in-flight batch is abandoned on shutdown only after a grace period.
                    _ = cancelled_after(shutdown, Duration::from_secs(5)) => return Ok(()),
                    batch = self.claim_and_publish(leader, &producer) => batch?,
                };
                match batch {
                    Some(batch) => batch.mark_published().await?,
                    None => 0,
                }
            };
            if published > 0 {
                metrics::counter!("agora_outbox_published_total").increment(published as u64);
            }
            if published as i64 == self.settings.batch_size {
                continue;
            }
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                notification = self.while_leading(leader, listener.recv()) => {
                    notification?.context("lost the outbox notifications")?;
                }
                _ = tokio::time::sleep(self.settings.idle_poll) => {}
            }
        }
    }

    /// Makes sure the topics still hold what this outbox published there.
    /// A topic whose log does not (it was recreated, or the cluster
    /// replaced, as the embedded broker is on every local run) gets every
    /// event of the outbox published again, in order: the outbox is the
    /// service's durable history, the topic a copy of it.
    pub async fn check_log(&self, connection: &mut PgConnection) -> anyhow::Result<()> {
        let landed: Vec<(String, i32, i64, uuid::Uuid)> =
            sqlx::query_as("select topic, partition, last_offset, last_event_id from outbox_published_position")
                .fetch_all(&mut *connection)
                .await?;
        if landed.is_empty() {
            return Ok(());
        }
        let probe = LogProbe::new(&self.kafka, &format!("{}-log-check", self.client_id))?;
        let foreign = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<(String, String)>> {
            let mut foreign = Vec::new();
            for (topic, partition, offset, event_id) in landed {
                if foreign.iter().any(|(seen, _)| *seen == topic) {
                    continue;
                }
                if let LogVerdict::Foreign(reason) = probe.verify(&topic, partition, offset, Some(event_id))? {
                    foreign.push((topic, reason));
                }
            }
            Ok(foreign)
        })
        .await??;
        for (topic, reason) in foreign {
            let mut tx = connection.begin().await?;
            let republished = sqlx::query("update outbox set published_at = null where topic = $1 and published_at is not null")
                .bind(&topic)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            sqlx::query("delete from outbox_published_position where topic = $1").bind(&topic).execute(&mut *tx).await?;
            tx.commit().await?;
            metrics::counter!("agora_outbox_republished_total").increment(republished);
            tracing::warn!(
                %topic,
                %reason,
                republished,
                "the topic does not hold what this outbox published (recreated, or a new cluster): publishing its events again"
            );
        }
        Ok(())
    }

    /// A producer configured for ordered, idempotent publishing.
    pub fn producer(&self) -> anyhow::Result<FutureProducer> {
        self.kafka.producer_config(&self.client_id).create().context("cannot create the Kafka producer")
    }

    /// Claims the oldest unpublished rows (locking them), publishes them in
    /// order and waits for every acknowledgement. `None` when there was nothing
    /// to publish. Any failure rolls the claim back.
    pub async fn claim_and_publish<'c>(
        &self,
        connection: &'c mut PgConnection,
        producer: &FutureProducer,
    ) -> anyhow::Result<Option<ClaimedBatch<'c>>> {
        let mut tx = connection.begin().await?;
        let rows: Vec<OutboxRow> = sqlx::query_as(
            "select id, event_id, topic, event_type, aggregate_id, payload::text as payload, traceparent
             from outbox where published_at is null order by id limit $1 for update skip locked",
        )
        .bind(self.settings.batch_size)
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            return Ok(None);
        }
        let started = std::time::Instant::now();
        let mut deliveries = Vec::with_capacity(rows.len());
        // One span per event, from its enqueueing to the broker's acknowledgement,
        // continuing the trace of the command that wrote it.
        let mut spans = Vec::with_capacity(rows.len());
        for row in &rows {
            // (None for a row written without a trace, a backfill's say: a
            // replay of thousands of rows is no trace of its own.)
            let written_by = TraceParent::parse(row.traceparent.as_deref());
            let span = match written_by.as_deref() {
                Some(_) => tracing::info_span!(
                    "outbox publish",
                    otel.kind = "producer",
                    relay = %self.client_id,
                    topic = %row.topic,
                    event_type = %row.event_type,
                    outbox_id = row.id,
                ),
                None => tracing::Span::none(),
            };
            written_by.continue_in(&span);
            let traceparent = TraceParent::of_span(&span).or(&written_by);
            let key = row.aggregate_id.to_string();
            let mut headers = OwnedHeaders::new().insert(Header { key: "event_type", value: Some(&row.event_type) });
            if let Some(traceparent) = traceparent.as_deref() {
                headers = headers.insert(Header { key: TraceParent::HEADER, value: Some(traceparent) });
            }
            let record = FutureRecord::to(&row.topic).key(&key).payload(&row.payload).headers(headers);
            // Enqueued one by one, in id order: librdkafka keeps that order per partition.
            let delivery = producer.send_result(record).map_err(|(error, _)| error).context("cannot enqueue an event")?;
            deliveries.push(delivery);
            spans.push(span);
        }
        let mut landed: Vec<Landed> = Vec::new();
        for (row, delivery) in rows.iter().zip(self.while_leading(&mut tx, join_all(deliveries)).await?) {
            match delivery {
                Ok(Ok(delivery)) => {
                    let place = Landed {
                        topic: row.topic.clone(),
                        partition: delivery.partition,
                        offset: delivery.offset,
                        event_id: row.event_id,
                    };
                    match landed.iter_mut().find(|l| l.topic == place.topic && l.partition == place.partition) {
                        Some(last) if last.offset < place.offset => *last = place,
                        Some(_) => {}
                        None => landed.push(place),
                    }
                }
                Ok(Err((error, _))) => {
                    return Err(error).with_context(|| format!("Kafka did not acknowledge outbox row {}", row.id))
                }
                Err(_) => anyhow::bail!("the producer dropped outbox row {}", row.id),
            }
        }
        metrics::histogram!("agora_outbox_publish_duration_seconds", "relay" => self.client_id.clone())
            .record(started.elapsed().as_secs_f64());
        drop(spans);
        Ok(Some(ClaimedBatch { tx, ids: rows.iter().map(|row| row.id).collect(), landed }))
    }
}

impl Relay {
    /// Runs `work` while heartbeating on the leadership `session`: an error
    /// as soon as a heartbeat fails or takes longer than the timeout, and
    /// `work` (a batch waiting for the broker) is abandoned with it.
    async fn while_leading<F: std::future::Future>(&self, session: &mut PgConnection, work: F) -> anyhow::Result<F::Output> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                output = &mut work => return Ok(output),
                _ = tokio::time::sleep(self.settings.heartbeat_interval) => {
                    let timeout = self.settings.heartbeat_timeout;
                    match tokio::time::timeout(timeout, sqlx::query("select 1").execute(&mut *session)).await {
                        Ok(Ok(_)) => {}
                        Ok(Err(error)) => return Err(error).context("the leadership session failed its heartbeat; stepping down"),
                        Err(_) => anyhow::bail!("the leadership session did not answer its heartbeat within {timeout:?}; stepping down"),
                    }
                }
            }
        }
    }
}

async fn cancelled_after(token: &CancellationToken, grace: Duration) {
    token.cancelled().await;
    tokio::time::sleep(grace).await;
}

/// How many outbox rows wait for the relay; for metrics and tests.
pub async fn pending(pool: &PgPool) -> sqlx::Result<i64> {
    sqlx::query_scalar("select count(*) from outbox where published_at is null").fetch_one(pool).await
}
