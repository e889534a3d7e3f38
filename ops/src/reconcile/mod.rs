//! Reconciliation: compares what the services committed (their write models
//! and outboxes) with what was derived from it (the gateway's read model and
//! the Kafka topics) and reports every difference, without fixing anything.
//!
//! Checks, each a [`Check`]: users and display names, points totals, posts,
//! post counts, the ledger's awards (one per post), and each service's
//! outbox against the topics. A duplicate in a topic is information, not a
//! difference: delivery is at least once. Run against a quiet system (or
//! retry until quiet): a command in flight shows as a difference.

mod compare;
mod load;
mod render;
mod topics;

use serde::Serialize;

pub use load::{Snapshot, Sources};
pub use topics::{read_topic, TopicMessage, TopicRead};

/// One part of the comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    /// auth-service's users (username, display name, version) against `read_user`.
    Users,
    /// auth-service's points accounts against `read_user.points`.
    Points,
    /// post-service's posts against `read_post`.
    Posts,
    /// Posts per author in post-service against `read_user.post_count`.
    PostCounts,
    /// One points entry in auth-service per PostCreated in post-service's outbox.
    Awards,
    /// Each outbox row against the message the relay published for it.
    Outbox,
}

/// How a row differs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// In the source of truth, absent from what is derived from it.
    Missing,
    /// In the derived data, absent from the source of truth.
    Extra,
    /// In both, with other values.
    Differing,
    /// Derived more than once where once is the rule (an award counted twice).
    Twice,
    /// An outbox row the relay has not published yet.
    Unpublished,
}

/// One difference: which check, what kind, the row's id and what differs.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Difference {
    pub check: Check,
    pub kind: Kind,
    pub id: String,
    pub detail: String,
}

/// What was compared, for the record; none of it is a difference.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Counts {
    pub users: usize,
    pub posts: usize,
    pub points_accounts: usize,
    pub outbox_rows: usize,
    pub topic_messages: usize,
    /// Messages whose event id appeared earlier in the topic (allowed).
    pub duplicated_in_topic: usize,
    /// Messages on the dead-letter topic.
    pub dead_letters: usize,
    /// Topics whose log no longer starts at offset 0 (the broker dropped messages).
    pub truncated_topics: Vec<String>,
    /// Set when the topics were not read (no brokers given).
    pub topics_skipped: bool,
}

/// The outcome of one reconciliation.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Report {
    pub differences: Vec<Difference>,
    pub counts: Counts,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.differences.is_empty()
    }

    /// How many differences each check found, for a one-line summary.
    pub fn summary(&self) -> String {
        render::summary(self)
    }

    /// The human-readable report (every difference, up to `limit` per check).
    pub fn render(&self, limit: usize) -> String {
        render::render(self, limit)
    }
}

/// Reads everything from `sources` and compares it.
pub async fn reconcile(sources: &Sources) -> anyhow::Result<Report> {
    let snapshot = Snapshot::load(sources).await?;
    Ok(compare::compare(&snapshot))
}
