//! The records every stage hands on, and the names of the read model's
//! place in the flow. No I/O: every other stage may use this one, and it
//! uses none of them.

use std::sync::atomic::{AtomicUsize, Ordering};

use agora_schema::{topics, PostCursor};
use chrono::{DateTime, Utc};
use uuid::Uuid;

/// The topics the read model is built from (and the live feed reads).
pub const READ_MODEL_TOPICS: [&str; 3] = [topics::USER, topics::POST, topics::POINTS];

/// The Postgres channel the projector notifies when it has committed a batch
/// of events to the read model.
pub const PROJECTION_CHANNEL: &str = "agora_projection";

/// A registered user, as the API shows it.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub display_name: String,
    pub points: i32,
    /// Known when the source has it at hand (the read model always does).
    pub post_count: Option<i32>,
    pub created_at: DateTime<Utc>,
}

/// A post, with its author when the source fetched it in the same go.
#[derive(Debug, Clone, PartialEq)]
pub struct PostRecord {
    pub id: Uuid,
    pub author_id: Uuid,
    pub title: String,
    pub body: String,
    pub created_at: DateTime<Utc>,
    pub author: Option<UserRecord>,
}

impl PostRecord {
    pub fn cursor(&self) -> PostCursor {
        PostCursor { created_at: self.created_at, id: self.id }
    }
}

/// How many round trips one request made: calls to services
/// (`extensions.upstreamRequests`) or SQL statements on the read model
/// (`extensions.sqlStatements`).
#[derive(Debug, Default)]
pub struct RoundTrips(AtomicUsize);

impl RoundTrips {
    pub fn get(&self) -> usize {
        self.0.load(Ordering::Relaxed)
    }

    pub fn increment(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}
