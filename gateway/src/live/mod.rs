//! The live feed: each gateway process reads the event topics itself and
//! fans every event out, once the read model shows it, to the process's
//! subscriptions ([`LiveFeed`]).
//!
//! Stage: Kafka -> broadcast. Uses `records`, `commands::consistency` (to
//! wait for the read model) and `sources::read_model::queries` (to load an
//! event's records); no GraphQL, no transport: the subscriptions of the API
//! schema read the feed, the WebSocket transport carries their results.

mod feed;
mod position;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::Notify;

pub use feed::{LiveEvent, LiveFeed, LiveReader, Pushed, ResumeError};
pub use position::{Malformed, Position};

/// Tells a connection that one of its subscribers fell behind the feed.
#[derive(Clone, Default)]
pub struct SlowSubscriber(Arc<FellBehind>);

#[derive(Default)]
struct FellBehind {
    /// Woken when a subscriber falls behind.
    notify: Notify,
    /// How many events it missed.
    missed: AtomicU64,
}

impl SlowSubscriber {
    pub fn fell_behind(&self, missed: u64) {
        self.0.missed.store(missed, Ordering::Relaxed);
        self.0.notify.notify_one();
    }

    /// Resolves when a subscriber fell behind, with how many events it missed.
    pub async fn fell_behind_by(&self) -> u64 {
        self.0.notify.notified().await;
        self.0.missed.load(Ordering::Relaxed)
    }

    /// How many events were missed, if any.
    pub fn missed(&self) -> Option<u64> {
        Some(self.0.missed.load(Ordering::Relaxed)).filter(|&missed| missed > 0)
    }
}
