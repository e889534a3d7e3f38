//! Rebuild: replays every read-model topic from its start into a new
//! generation while the serving one keeps answering, then switches every
//! gateway replica over (`gateway rebuild`).
//!
//! 1. A new generation is created (the current shape, or the one given)
//!    and a consumer of its own, in a group of its own, applies the whole
//!    log to it in large batches, reporting progress (events applied, lag
//!    per partition, the time left) in its log and in `/metrics`.
//! 2. Once it is within a batch of the log's end, the cut-over: the switch
//!    lock stops the serving projector from committing (readers go on), the
//!    new generation catches up to exactly where the serving one stands, the
//!    positions are handed over, the readers' views switched and every
//!    gateway notified, in one transaction. If the new generation cannot
//!    catch up within the cut-over timeout the lock is released and it tries
//!    again later, so the projector is never held for longer than that.
//! 3. The old generation is dropped, or kept for a rollback on request.
//!
//! What a reader sees is always a whole generation: the old one up to the
//! switch's commit, the new one, at least as far along, after it. A
//! read-your-writes wait that was satisfied before the switch stays
//! satisfied after it; one still waiting finds its write in the new one.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use agora_platform::consumer::{self, ConsumerSettings, Partition, Position};
use agora_platform::kafka::{KafkaSettings, LogProbe};
use anyhow::Context;
use serde::Serialize;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::generation::{self, Generation, SHAPE_SQL, SHAPE_VERSION};
use super::{ReadModel, CONSUMER_NAME};
use crate::records::READ_MODEL_TOPICS;

/// A read model's shape: the version recorded with the generation and the
/// DDL that creates its tables in an empty schema.
#[derive(Debug, Clone)]
pub struct Shape {
    pub version: i32,
    pub sql: String,
}

impl Shape {
    /// The shape this gateway reads and writes.
    pub fn current() -> Self {
        Shape { version: SHAPE_VERSION, sql: SHAPE_SQL.to_owned() }
    }
}

#[derive(Debug, Clone)]
pub struct RebuildSettings {
    pub shape: Shape,
    /// The most events applied in one transaction.
    pub batch_size: usize,
    /// The longest the serving projector may be held during the cut-over.
    pub cutover_timeout: Duration,
    /// Keep the old generation (for a rollback) instead of dropping it.
    pub keep_old: bool,
    /// How often progress is reported.
    pub progress_interval: Duration,
}

impl Default for RebuildSettings {
    fn default() -> Self {
        RebuildSettings {
            shape: Shape::current(),
            batch_size: 5_000,
            cutover_timeout: Duration::from_secs(5),
            keep_old: false,
            progress_interval: Duration::from_secs(1),
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub from: i64,
    pub to: i64,
    /// Events applied to the new generation.
    pub events: u64,
    /// From the start to the switch.
    pub seconds: f64,
    pub events_per_second: f64,
    /// How long the serving projector was held at the switch.
    pub cutover_ms: f64,
    /// Cut-overs that had to be retried (the new generation did not catch up in time).
    pub cutover_retries: u32,
    pub old_generation_kept: bool,
}

/// Rebuilds the read model and switches to it; on failure or `shutdown`
/// before the switch the new generation is abandoned and the serving one is
/// untouched.
pub async fn run(
    pool: PgPool,
    kafka: KafkaSettings,
    group_prefix: &str,
    settings: RebuildSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<RebuildReport> {
    let target = generation::create(&pool, settings.shape.version, &settings.shape.sql)
        .await
        .context("cannot create the new generation")?;
    let name = format!("{CONSUMER_NAME}@{}", target.label());
    tracing::info!(generation = target.0, shape = settings.shape.version, "rebuilding the read model into {}", target.schema());
    let build = Build::start(&pool, &kafka, group_prefix, &name, target, &settings);
    let outcome = build.follow(&pool, &kafka, &settings, &shutdown).await;
    match outcome {
        Ok(report) => Ok(report),
        Err(error) => {
            tracing::error!(
                generation = target.0,
                error = format!("{error:#}"),
                "the rebuild stopped; abandoning its generation"
            );
            let mut connection = pool.acquire().await?;
            consumer::remove(&mut connection, &name).await?;
            generation::drop(&pool, target, "abandoned").await?;
            Err(error)
        }
    }
}

/// The new generation's consumer, running.
struct Build {
    target: Generation,
    name: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    started: Instant,
}

impl Build {
    fn start(
        pool: &PgPool,
        kafka: &KafkaSettings,
        group_prefix: &str,
        name: &str,
        target: Generation,
        settings: &RebuildSettings,
    ) -> Self {
        let consumer_settings = ConsumerSettings {
            name: name.to_owned(),
            group_id: format!("{group_prefix}-rebuild-{}", target.label()),
            topics: READ_MODEL_TOPICS.iter().map(|topic| topic.to_string()).collect(),
            batch_size: settings.batch_size,
            retry_backoff: Duration::from_millis(500),
        };
        let stop = CancellationToken::new();
        let task = tokio::spawn(consumer::run(
            pool.clone(),
            kafka.clone(),
            consumer_settings,
            ReadModel::Building(target),
            consumer::Positioned::new(Vec::new()),
            stop.clone(),
        ));
        Build { target, name: name.to_owned(), stop, task, started: Instant::now() }
    }

    /// Reports progress until the new generation is near the log's end,
    /// then cuts over.
    async fn follow(
        mut self,
        pool: &PgPool,
        kafka: &KafkaSettings,
        settings: &RebuildSettings,
        shutdown: &CancellationToken,
    ) -> anyhow::Result<RebuildReport> {
        let probe = std::sync::Arc::new(LogProbe::new(kafka, &format!("{}-progress", self.name))?);
        let mut progress = Progress::new(self.target);
        let mut retries = 0;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.stop.cancel();
                    let _ = (&mut self.task).await;
                    anyhow::bail!("shut down before the switch");
                }
                finished = &mut self.task => {
                    finished.context("the rebuild's consumer panicked")??;
                    anyhow::bail!("the rebuild's consumer stopped");
                }
                _ = tokio::time::sleep(settings.progress_interval) => {}
            }
            let extents = {
                let probe = probe.clone();
                let topics: Vec<&'static str> = READ_MODEL_TOPICS.to_vec();
                tokio::task::spawn_blocking(move || probe.extents(&topics)).await??
            };
            let mut connection = pool.acquire().await?;
            let reached = consumer::stored_positions(&mut connection, &self.name).await?;
            drop(connection);
            let lag = progress.report(&extents, &reached);
            if lag <= settings.batch_size as i64 && under_way(&extents, &reached) {
                match self.cut_over(pool, settings).await? {
                    CutOver::Done(cutover) => {
                        let events = progress.applied(&cutover.reached);
                        return self.finish(pool, settings, cutover, retries, events).await;
                    }
                    CutOver::Behind => retries += 1,
                }
            }
        }
    }

    /// Holds the serving projector, catches up to it, hands over and
    /// switches; or lets go after the cut-over timeout.
    async fn cut_over(&mut self, pool: &PgPool, settings: &RebuildSettings) -> anyhow::Result<CutOver> {
        let started = Instant::now();
        let mut tx = pool.begin().await?;
        let from =
            generation::freeze_projection(&mut tx, settings.cutover_timeout).await.context("cannot take the switch lock")?;
        let serving = consumer::stored_positions(&mut tx, CONSUMER_NAME).await?;
        loop {
            let mut connection = pool.acquire().await?;
            let reached = consumer::stored_positions(&mut connection, &self.name).await?;
            drop(connection);
            if covers(&reached, &serving) {
                break;
            }
            if started.elapsed() > settings.cutover_timeout {
                tx.rollback().await?;
                tracing::warn!(
                    generation = self.target.0,
                    timeout_ms = settings.cutover_timeout.as_millis() as u64,
                    "the new generation did not catch up with the serving one in time; letting the projector go on and retrying"
                );
                return Ok(CutOver::Behind);
            }
            if self.task.is_finished() {
                anyhow::bail!("the rebuild's consumer stopped during the cut-over");
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // Everything the serving generation shows is in the new one: stop
        // building (its last batch commits first) and hand over.
        self.stop.cancel();
        (&mut self.task).await.context("the rebuild's consumer panicked")??;
        let reached = consumer::stored_positions(&mut tx, &self.name).await?;
        anyhow::ensure!(covers(&reached, &serving), "the new generation's positions moved back during the cut-over");
        consumer::hand_over(&mut tx, &self.name, CONSUMER_NAME).await?;
        generation::switch(&mut tx, from, self.target, settings.cutover_timeout).await?;
        tx.commit().await.context("cannot commit the switch")?;
        Ok(CutOver::Done(Switched { from, held: started.elapsed(), reached }))
    }

    async fn finish(
        self,
        pool: &PgPool,
        settings: &RebuildSettings,
        switched: Switched,
        retries: u32,
        events: u64,
    ) -> anyhow::Result<RebuildReport> {
        let seconds = self.started.elapsed().as_secs_f64();
        tracing::info!(
            from = switched.from.0,
            to = self.target.0,
            events,
            seconds,
            cutover_ms = switched.held.as_secs_f64() * 1e3,
            "switched every gateway to the rebuilt read model"
        );
        if settings.keep_old {
            tracing::info!(generation = switched.from.0, "kept the old generation ({}) for a rollback", switched.from.schema());
        } else {
            generation::drop(pool, switched.from, "dropped").await.context("cannot drop the old generation")?;
        }
        metrics::gauge!("agora_read_model_rebuild_lag_events").set(0.0);
        Ok(RebuildReport {
            from: switched.from.0,
            to: self.target.0,
            events,
            seconds,
            events_per_second: events as f64 / seconds.max(1e-9),
            cutover_ms: switched.held.as_secs_f64() * 1e3,
            cutover_retries: retries,
            old_generation_kept: settings.keep_old,
        })
    }
}

enum CutOver {
    Done(Switched),
    /// The new generation was still behind the serving one at the timeout.
    Behind,
}

struct Switched {
    from: Generation,
    held: Duration,
    /// Where the new generation stood when it took over.
    reached: HashMap<Partition, Position>,
}

/// Whether positions `reached` are at or past `target` in every partition
/// `target` names.
fn covers(reached: &HashMap<Partition, Position>, target: &HashMap<Partition, Position>) -> bool {
    target.iter().all(|(partition, position)| reached.get(partition).is_some_and(|r| r.next_offset >= position.next_offset))
}

/// Whether the new generation's consumer has read from every partition
/// that holds events (until it has joined its group and been assigned them,
/// a short lag says nothing).
fn under_way(extents: &[(Partition, i64, i64)], reached: &HashMap<Partition, Position>) -> bool {
    extents.iter().all(|(partition, low, high)| high <= low || reached.contains_key(partition))
}

/// The rebuild's progress, in the log and in `/metrics`.
struct Progress {
    target: Generation,
    started: Instant,
    /// Where each partition's log began when first seen.
    first: HashMap<Partition, i64>,
    last: Option<(Instant, u64)>,
}

impl Progress {
    fn new(target: Generation) -> Self {
        Progress { target, started: Instant::now(), first: HashMap::new(), last: None }
    }

    /// Events applied so far (from each partition's first retained offset).
    fn applied(&self, reached: &HashMap<Partition, Position>) -> u64 {
        reached
            .iter()
            .map(|(partition, position)| (position.next_offset - self.first.get(partition).copied().unwrap_or(0)).max(0) as u64)
            .sum()
    }

    /// Logs and exports where the rebuild stands; returns the events left.
    fn report(&mut self, extents: &[(Partition, i64, i64)], reached: &HashMap<Partition, Position>) -> i64 {
        let mut left = 0;
        for (partition, low, high) in extents {
            self.first.entry(partition.clone()).or_insert(*low);
            let at = reached.get(partition).map_or(*low, |p| p.next_offset.max(*low));
            let lag = (high - at).max(0);
            left += lag;
            metrics::gauge!(
                "agora_read_model_rebuild_partition_lag_events",
                "topic" => partition.0.clone(),
                "partition" => partition.1.to_string()
            )
            .set(lag as f64);
        }
        let applied = self.applied(reached);
        let now = Instant::now();
        let rate = match self.last {
            Some((at, before)) if now > at => (applied.saturating_sub(before)) as f64 / (now - at).as_secs_f64(),
            _ => applied as f64 / self.started.elapsed().as_secs_f64().max(1e-3),
        };
        self.last = Some((now, applied));
        let eta = if rate > 0.0 { left as f64 / rate } else { f64::INFINITY };
        metrics::gauge!("agora_read_model_rebuild_generation").set(self.target.0 as f64);
        metrics::gauge!("agora_read_model_rebuild_applied_events").set(applied as f64);
        metrics::gauge!("agora_read_model_rebuild_lag_events").set(left as f64);
        metrics::gauge!("agora_read_model_rebuild_events_per_second").set(rate);
        metrics::gauge!("agora_read_model_rebuild_eta_seconds").set(if eta.is_finite() { eta } else { -1.0 });
        let lag_per_partition: Vec<String> = extents
            .iter()
            .map(|((topic, partition), low, high)| {
                let at = reached.get(&(topic.clone(), *partition)).map_or(*low, |p| p.next_offset.max(*low));
                format!("{topic}/{partition}:{}", (high - at).max(0))
            })
            .collect();
        tracing::info!(
            generation = self.target.0,
            applied,
            left,
            events_per_second = rate.round(),
            eta_seconds = if eta.is_finite() { (eta * 10.0).round() / 10.0 } else { -1.0 },
            lag = lag_per_partition.join(" "),
            "rebuild progress"
        );
        left
    }
}
