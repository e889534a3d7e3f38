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

/// A part of the read model an answer read and a commit may change: the
/// response cache drops exactly the answers that read what a commit
/// changed. Written into the projector's notification as text.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Tag {
    /// One user's record (asked for by id, found or not).
    User(Uuid),
    /// Who has a username (asked for by name, found or not).
    Username(String),
    /// One post (asked for by id, found or not).
    Post(Uuid),
    /// Every list of posts.
    Posts,
    /// The list of one author's posts.
    PostsBy(Uuid),
    /// The leaderboard.
    Leaderboard,
    /// Any registration: a post whose author was unknown may show now.
    Registrations,
}

impl Tag {
    /// What a registration changes besides the user's record: who has the
    /// name, the leaderboard, and the lists that may now show the user's
    /// posts (a post shows only once its author is known).
    pub fn of_registration(user: Uuid, username: String) -> [Tag; 5] {
        [Tag::Username(username), Tag::Leaderboard, Tag::Registrations, Tag::Posts, Tag::PostsBy(user)]
    }

    /// What a new post changes: itself, the lists, its author's count.
    pub fn of_post(post: Uuid, author: Uuid) -> [Tag; 5] {
        [Tag::Post(post), Tag::Posts, Tag::PostsBy(author), Tag::User(author), Tag::Leaderboard]
    }

    /// `u:<id>`, `n:<username>`, `p:<id>`, `P`, `a:<id>`, `L`, `R`.
    pub fn to_text(&self) -> String {
        match self {
            Tag::User(id) => format!("u:{id}"),
            Tag::Username(username) => format!("n:{username}"),
            Tag::Post(id) => format!("p:{id}"),
            Tag::Posts => "P".into(),
            Tag::PostsBy(id) => format!("a:{id}"),
            Tag::Leaderboard => "L".into(),
            Tag::Registrations => "R".into(),
        }
    }

    pub fn from_text(text: &str) -> Option<Self> {
        let id = |id: &str| id.parse::<Uuid>().ok();
        Some(match text.split_once(':') {
            None => match text {
                "P" => Tag::Posts,
                "L" => Tag::Leaderboard,
                "R" => Tag::Registrations,
                _ => return None,
            },
            Some(("u", rest)) => Tag::User(id(rest)?),
            Some(("n", rest)) => Tag::Username(rest.to_owned()),
            Some(("p", rest)) => Tag::Post(id(rest)?),
            Some(("a", rest)) => Tag::PostsBy(id(rest)?),
            Some(_) => return None,
        })
    }
}

/// The tags of what one request read (the read-model strategy records them).
#[derive(Debug, Default)]
pub struct ReadTags(std::sync::Mutex<Vec<Tag>>);

impl ReadTags {
    pub fn record(&self, tags: impl IntoIterator<Item = Tag>) {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).extend(tags);
    }

    /// Each tag once.
    pub fn take(&self) -> Vec<Tag> {
        let mut tags = std::mem::take(&mut *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()));
        tags.sort_unstable();
        tags.dedup();
        tags
    }
}
