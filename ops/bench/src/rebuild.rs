//! Rebuild: a fresh, empty read-model database and a new projector consumer
//! group (a second gateway process) replaying every topic from the start.
//! Done when the projector's stored positions reach the topics' ends.

use std::time::{Duration, Instant};

use anyhow::bail;
use serde::{Deserialize, Serialize};

use crate::dataset::{self, Observed};
use crate::kafka_log::{topic_offsets, PROJECTED};
use crate::system::{self, System};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildReport {
    /// Events replayed (all the broker still held).
    pub events: u64,
    /// Events ever produced to the projected topics.
    pub produced: u64,
    /// From the new gateway process answering /healthz to the last position stored.
    pub seconds: f64,
    pub events_per_second: f64,
    /// Including the process start and migrations.
    pub seconds_with_startup: f64,
    pub peak_rss_mib: Option<f64>,
    /// The rebuilt read model shows the same counts as the live one.
    pub same_counts_as_live: bool,
}

pub async fn run(system: &System) -> anyhow::Result<RebuildReport> {
    system::drop_database(&system.postgres, system::REBUILD_DB).await?;
    let offsets = topic_offsets(&system.kafka.settings())?;
    let events = offsets.retained;
    let live_pool = system::pool(&system.postgres, system::READ_DB, 1).await?;
    let live = dataset::observe(&live_pool).await?;
    live_pool.close().await;
    let group = format!("agora-bench-rebuild-{}", uuid::Uuid::now_v7().simple());
    let spawned = Instant::now();
    let mut gateway = system.spawn_gateway("gateway-rebuild", system::REBUILD_DB, &group)?;
    let client = crate::gql::client();
    gateway.wait_ready(&client, "/healthz", false, Duration::from_secs(60)).await?;
    let ready = Instant::now();
    let pool = system::pool(&system.postgres, system::REBUILD_DB, 1).await?;
    let topics: Vec<String> = PROJECTED.iter().map(|t| t.to_string()).collect();
    let done = loop {
        let position: i64 = sqlx::query_scalar(
            "select coalesce(sum(next_offset), 0)::bigint from consumer_position where consumer = $1 and topic = any($2)",
        )
        .bind(agora_gateway::projector::CONSUMER_NAME)
        .bind(&topics)
        .fetch_one(&pool)
        .await
        .unwrap_or(0);
        // Done when every partition's stored position is its end offset.
        if position as u64 >= offsets.produced {
            break Instant::now();
        }
        if ready.elapsed() > Duration::from_secs(1200) {
            bail!("the rebuild did not finish in 20 minutes ({position} of {events} events)");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let rebuilt: Observed = dataset::observe(&pool).await?;
    pool.close().await;
    let peak_rss_mib = gateway.peak_rss_mib();
    gateway.stop(Duration::from_secs(10)).await;
    let seconds = (done - ready).as_secs_f64();
    Ok(RebuildReport {
        events,
        produced: offsets.produced,
        seconds,
        events_per_second: events as f64 / seconds.max(1e-9),
        seconds_with_startup: (done - spawned).as_secs_f64(),
        peak_rss_mib,
        same_counts_as_live: rebuilt == live,
    })
}
