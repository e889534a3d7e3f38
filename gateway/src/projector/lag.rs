//! How far the projector is behind the log: measured by every gateway
//! replica on a short interval, exported on `/metrics`, and a condition of
//! the gateway's `/readyz` (not ready while the lag is over
//! `READY_MAX_PROJECTOR_LAG` events).
//!
//! In events, per partition: the log's high watermark minus the next offset
//! the projector stored with its state (`consumer_position`; the
//! partition's first retained offset when it stored none, since it starts
//! there), never below 0 (a position from an earlier log, about to be
//! reset, is past the new log's end). The positions belong to the consumer
//! group, so every replica reports the lag of the whole group, whichever
//! replica holds a partition.
//!
//! In seconds: the age of the oldest event not applied yet. For each
//! partition that is behind, the message at the stored next offset is read
//! and its log timestamp (set when the outbox relay published it) taken;
//! the lag is the oldest one's age, 0 when no partition is behind. That
//! costs one fetch of one message per partition behind at each
//! measurement, and nothing while the projector keeps up.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use agora_platform::consumer::{self, Partition};
use agora_platform::health::Check;
use agora_platform::kafka::{KafkaSettings, LogProbe};
use serde_json::json;
use sqlx::PgPool;
use tokio_util::sync::CancellationToken;

use super::CONSUMER_NAME;
use crate::records::READ_MODEL_TOPICS;

/// One measurement of the lag.
#[derive(Debug, Clone, PartialEq)]
pub struct Lag {
    /// Events not applied yet, per partition that is behind.
    pub behind: BTreeMap<Partition, u64>,
    /// The age of the oldest of them.
    pub seconds: f64,
}

impl Lag {
    pub fn events(&self) -> u64 {
        self.behind.values().sum()
    }
}

#[derive(Debug, Clone)]
enum Measured {
    NotYet,
    Lag(Lag),
    Failed(String),
}

/// The last measured lag, shared by the monitor that measures it and the
/// readiness check that reads it.
#[derive(Clone)]
pub struct ProjectorLag {
    last: Arc<Mutex<Measured>>,
    max_events: u64,
}

impl ProjectorLag {
    /// A lag not measured yet; ready once a measurement is at most `max_events`.
    pub fn new(max_events: u64) -> Self {
        ProjectorLag { last: Arc::new(Mutex::new(Measured::NotYet)), max_events }
    }

    /// The last measurement, if the last attempt succeeded.
    pub fn last(&self) -> Option<Lag> {
        match &*self.last.lock().expect("the lag lock is never poisoned") {
            Measured::Lag(lag) => Some(lag.clone()),
            _ => None,
        }
    }

    fn set(&self, measured: Measured) {
        *self.last.lock().expect("the lag lock is never poisoned") = measured;
    }
}

impl Check for ProjectorLag {
    fn name(&self) -> &'static str {
        "projector"
    }

    fn status(&self) -> (bool, serde_json::Value) {
        if self.max_events == 0 {
            return (true, json!({ "status": "off" }));
        }
        let last = self.last.lock().expect("the lag lock is never poisoned").clone();
        match last {
            Measured::Lag(lag) => {
                let events = lag.events();
                let ok = events <= self.max_events;
                let behind: serde_json::Map<String, serde_json::Value> = lag
                    .behind
                    .iter()
                    .map(|((topic, partition), events)| (format!("{topic}/{partition}"), json!(events)))
                    .collect();
                let status = json!({
                    "status": if ok { "ok" } else { "behind" },
                    "lag_events": events,
                    "lag_seconds": lag.seconds,
                    "max_lag_events": self.max_events,
                    "behind": behind,
                });
                (ok, status)
            }
            Measured::NotYet => (false, json!({ "status": "unknown", "reason": "the lag has not been measured yet" })),
            Measured::Failed(reason) => (false, json!({ "status": "unknown", "reason": reason })),
        }
    }
}

/// Measures the lag every `interval` until shutdown.
pub struct LagMonitor {
    pool: PgPool,
    probe: Arc<LogProbe>,
    lag: ProjectorLag,
    interval: Duration,
}

impl LagMonitor {
    pub fn new(pool: PgPool, kafka: &KafkaSettings, lag: ProjectorLag, interval: Duration) -> anyhow::Result<Self> {
        let probe = Arc::new(LogProbe::new(kafka, "gateway-projector-lag")?);
        Ok(LagMonitor { pool, probe, lag, interval })
    }

    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let mut ticks = tokio::time::interval(self.interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return Ok(()),
                _ = ticks.tick() => {}
            }
            match self.measure().await {
                Ok(lag) => {
                    if failing {
                        tracing::info!("the projector's lag is measured again");
                        failing = false;
                    }
                    export(&lag);
                    self.lag.set(Measured::Lag(lag));
                }
                Err(error) => {
                    let reason = format!("{error:#}");
                    // Once per outage, not at every tick.
                    if !failing {
                        tracing::warn!(error = %reason, "cannot measure the projector's lag");
                        failing = true;
                    }
                    self.lag.set(Measured::Failed(reason));
                }
            }
        }
    }

    async fn measure(&self) -> anyhow::Result<Lag> {
        // The positions first: the log only grows meanwhile, so the lag is
        // never under-reported.
        let positions = {
            let mut connection = self.pool.acquire().await?;
            consumer::stored_positions(&mut connection, CONSUMER_NAME).await?
        };
        let probe = self.probe.clone();
        tokio::task::spawn_blocking(move || {
            let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as i64;
            let mut behind = BTreeMap::new();
            let mut oldest = 0_i64;
            for (partition, low, high) in probe.extents(&READ_MODEL_TOPICS)? {
                let next = positions.get(&partition).map_or(low, |position| position.next_offset).max(low);
                let events = (high - next).max(0);
                gauge(&partition, events);
                if events > 0 {
                    if let Some(timestamp) = probe.timestamp_at(&partition.0, partition.1, next)? {
                        oldest = oldest.max(now - timestamp);
                    }
                    behind.insert(partition, events as u64);
                }
            }
            Ok(Lag { behind, seconds: oldest.max(0) as f64 / 1000.0 })
        })
        .await?
    }
}

fn gauge(partition: &Partition, events: i64) {
    metrics::gauge!(
        "agora_projector_lag_events",
        "topic" => partition.0.clone(),
        "partition" => partition.1.to_string()
    )
    .set(events as f64);
}

fn export(lag: &Lag) {
    metrics::gauge!("agora_projector_lag_seconds").set(lag.seconds);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lag(behind: &[(&str, i32, u64)]) -> Lag {
        Lag {
            behind: behind.iter().map(|(topic, partition, events)| (((*topic).to_owned(), *partition), *events)).collect(),
            seconds: 2.5,
        }
    }

    #[test]
    fn is_ready_while_the_lag_is_at_most_the_limit() {
        let projector = ProjectorLag::new(10);
        projector.set(Measured::Lag(lag(&[("agora.user.v1", 0, 4), ("agora.post.v1", 1, 6)])));
        let (ready, status) = projector.status();
        assert!(ready, "{status}");
        assert_eq!(status["lag_events"], 10);
        assert_eq!(status["status"], "ok");
    }

    #[test]
    fn is_not_ready_past_the_limit_and_names_the_partitions_behind() {
        let projector = ProjectorLag::new(10);
        projector.set(Measured::Lag(lag(&[("agora.user.v1", 0, 11)])));
        let (ready, status) = projector.status();
        assert!(!ready);
        assert_eq!(status["status"], "behind");
        assert_eq!(status["behind"]["agora.user.v1/0"], 11);
        assert_eq!(status["lag_seconds"], 2.5);
    }

    #[test]
    fn is_not_ready_before_the_first_measurement_nor_after_a_failed_one() {
        let projector = ProjectorLag::new(10);
        assert!(!projector.status().0);
        projector.set(Measured::Failed("no broker".into()));
        let (ready, status) = projector.status();
        assert!(!ready);
        assert_eq!(status["reason"], "no broker");
    }
}
