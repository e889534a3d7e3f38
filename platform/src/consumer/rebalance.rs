//! Group membership without Kafka's positions: when the group hands this
//! consumer partitions, they are not assigned at once (librdkafka would
//! start them at the group's committed offsets, which are only a hint);
//! the consumer loop assigns them itself, once it has read the stored
//! positions and checked them against the log. librdkafka's rebalance
//! callback runs synchronously inside a poll and must not wait for a
//! database, so the callback only passes the partitions on; librdkafka
//! waits for the assignment call meanwhile (its `WAIT_ASSIGN_CALL` state).

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaResult;
use rdkafka::types::RDKafkaRespErr;
use rdkafka::TopicPartitionList;
use tokio::sync::mpsc;

use super::positions::Partition;

/// What the group decided.
#[derive(Debug)]
pub enum Membership {
    /// These partitions are ours now: assign them at their stored positions.
    Assigned(Vec<Partition>),
    /// Every partition was taken away (eager rebalancing revokes all).
    Revoked,
}

/// The consumer's context: forwards the group's decisions to the loop.
pub struct DeferredAssignment {
    decisions: mpsc::UnboundedSender<Membership>,
}

impl DeferredAssignment {
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Membership>) {
        let (decisions, received) = mpsc::unbounded_channel();
        (DeferredAssignment { decisions }, received)
    }
}

impl ClientContext for DeferredAssignment {}

impl ConsumerContext for DeferredAssignment {
    fn rebalance(&self, consumer: &BaseConsumer<Self>, error: RDKafkaRespErr, partitions: &mut TopicPartitionList) {
        match error {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => {
                let assigned = partitions.elements().iter().map(|p| (p.topic().to_owned(), p.partition())).collect();
                let _ = self.decisions.send(Membership::Assigned(assigned));
            }
            _ => {
                // Revoked, or the rebalance failed: either way nothing is ours.
                if let Err(error) = consumer.unassign() {
                    tracing::warn!(%error, "cannot release revoked partitions");
                }
                let _ = self.decisions.send(Membership::Revoked);
            }
        }
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        // Kafka's committed offsets are a hint for lag monitoring only.
        if let Err(error) = result {
            tracing::debug!(%error, "cannot commit the offset hint");
        }
    }
}
