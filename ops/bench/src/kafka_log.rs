//! What the benchmark's broker holds of the read model's topics: how many
//! events were ever produced to them and how many it still retains. The
//! data set (to know how many events it made) and the rebuild (to know how
//! many it must replay) both read it.

use agora_platform::kafka::{KafkaSettings, LogProbe};
use serde::{Deserialize, Serialize};

/// The projected topics (the dead-letter topic is not replayed).
pub const PROJECTED: [&str; 3] = [agora_schema::topics::USER, agora_schema::topics::POST, agora_schema::topics::POINTS];

/// Offsets of the projected topics, summed over every partition.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct TopicOffsets {
    /// Events ever appended (the end offsets).
    pub produced: u64,
    /// Events still held by the broker (end − start offsets). The embedded
    /// broker (librdkafka's mock cluster) keeps at most 5 MiB or 100,000
    /// messages per partition and drops the oldest beyond that.
    pub retained: u64,
}

pub fn topic_offsets(kafka: &KafkaSettings) -> anyhow::Result<TopicOffsets> {
    let probe = LogProbe::new(kafka, "agora-bench-watermarks")?;
    let mut offsets = TopicOffsets::default();
    for (_, low, high) in probe.extents(&PROJECTED)? {
        offsets.produced += high.max(0) as u64;
        offsets.retained += (high - low.max(0)).max(0) as u64;
    }
    Ok(offsets)
}
