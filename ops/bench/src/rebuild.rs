//! Rebuild: the operator's `gateway rebuild` (`agora_gateway::projector::
//! rebuild::run`, here in the benchmark's process) replays every projected
//! topic from its start into a new read-model generation while the live
//! gateway keeps answering, then switches it over. Readers query the live
//! gateway throughout; every failed or shrunken page is counted. Afterwards
//! the new generation must show the same counts as the old one did.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_gateway::projector::rebuild::{self, RebuildSettings};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::dataset::{self, Observed};
use crate::kafka_log::topic_offsets;
use crate::system::{self, System};

/// Concurrent readers of the live gateway while the rebuild runs.
pub const READERS: usize = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RebuildReport {
    /// Events replayed (all the broker still held).
    pub events: u64,
    /// Events ever produced to the projected topics.
    pub produced: u64,
    /// Partitions of each topic on the benchmark's broker.
    #[serde(default)]
    pub partitions: usize,
    /// From the start of the rebuild to its switch.
    pub seconds: f64,
    pub events_per_second: f64,
    /// The most events applied in one transaction.
    #[serde(default)]
    pub batch_size: usize,
    /// How long the serving projector was held at the switch.
    #[serde(default)]
    pub cutover_ms: f64,
    /// Pages read from the live gateway during the rebuild, and how many
    /// of them failed or showed fewer posts than one read before.
    #[serde(default)]
    pub reads: u64,
    #[serde(default)]
    pub failed_reads: u64,
    /// The new generation shows the same counts as the live read model
    /// before the rebuild.
    pub same_counts_as_live: bool,
}

pub async fn run(system: &System, partitions: usize) -> anyhow::Result<RebuildReport> {
    let offsets = topic_offsets(&system.kafka.settings())?;
    let pool = system::pool(&system.postgres, system::READ_DB, 2).await?;
    let live = dataset::observe(&pool).await?;

    let stop = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..READERS).map(|_| tokio::spawn(read_until(system.gateway_graphql(), stop.clone()))).collect();
    let settings = RebuildSettings::default();
    let batch_size = settings.batch_size;
    let started = Instant::now();
    let outcome = rebuild::run(pool.clone(), system.kafka.settings(), "agora-bench", settings, CancellationToken::new()).await;
    let seconds = started.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let (mut reads, mut failed_reads) = (0, 0);
    for reader in readers {
        let (n, failed) = reader.await?;
        reads += n;
        failed_reads += failed;
    }
    let report = outcome?;
    let rebuilt: Observed = dataset::observe(&pool).await?;
    pool.close().await;
    Ok(RebuildReport {
        events: report.events,
        produced: offsets.produced,
        partitions,
        seconds,
        events_per_second: report.events as f64 / seconds.max(1e-9),
        batch_size,
        cutover_ms: report.cutover_ms,
        reads,
        failed_reads,
        same_counts_as_live: rebuilt == live,
    })
}

/// Reads the newest page of posts with their authors until `stop`; returns
/// the pages read and those that failed or had fewer posts than before.
async fn read_until(url: String, stop: Arc<AtomicBool>) -> (u64, u64) {
    let client = crate::gql::client();
    let headers = [("cache-control".to_owned(), "no-cache".to_owned())];
    let (mut reads, mut failed, mut most) = (0, 0, 0);
    while !stop.load(Ordering::Relaxed) {
        reads += 1;
        let page = crate::gql::call(
            &client,
            &url,
            "{ posts(first: 50) { edges { node { id author { username postCount } } } } }",
            json!({}),
            &headers,
        )
        .await;
        let shown = page.ok().and_then(|body| body["data"]["posts"]["edges"].as_array().map(Vec::len));
        match shown {
            Some(n) if n >= most => most = n,
            _ => failed += 1,
        }
        // A steady pace of pages (about 100 per second per reader), not a flood
        // that would take the rebuild's CPU.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    (reads, failed)
}
