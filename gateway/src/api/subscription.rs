//! The public subscriptions, fed by the process's live feed and filtered in
//! memory per operation (the subscribers of one operation share its
//! execution: `pipeline::subscriptions`).
//!
//! A subscription given a [`ResumeFrom`] position first gets the events it
//! missed since. Each result's position is left in the request's
//! [`LastPosition`], from which the pipeline writes the result's cursor.

use std::sync::{Arc, Mutex};

use agora_platform::errors::ErrorCode;
use agora_platform::input::InputError;
use agora_schema::topics;
use async_graphql::{Context, ErrorExtensions, SimpleObject, Subscription as SubscriptionObject, ID};
use futures::{Stream, StreamExt};
use uuid::Uuid;

use super::types::{Post, User};
use crate::live::{LiveEvent, LiveFeed, Position, Pushed, ResumeError, SlowSubscriber};

/// A change of a user's points.
#[derive(SimpleObject)]
pub struct PointsChange {
    pub user: User,
    pub delta: i32,
    pub total: i32,
    /// Why the points changed, e.g. POST_CREATED.
    pub reason: String,
}

pub struct Subscription;

fn filter_id(field: &'static str, id: Option<ID>) -> async_graphql::Result<Option<Uuid>> {
    id.map(|id| id.parse::<Uuid>().map_err(|_| InputError::new(field, "is not an id this API issued").extend())).transpose()
}

/// Where a resumed subscription's subscriber stood (put in the request's data).
pub struct ResumeFrom(pub Position);

/// The position of the event the latest result was resolved for (put in
/// the request's data; results are resolved one at a time).
#[derive(Clone, Default)]
pub struct LastPosition(Arc<Mutex<Option<Position>>>);

impl LastPosition {
    fn set(&self, position: Position) {
        *self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(position);
    }

    /// The position of the result just resolved, if it came from an event.
    pub fn take(&self) -> Option<Position> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take()
    }
}

/// The feed's events for one subscriber (after those it missed, if it
/// resumes); one that falls behind is told through the request's
/// [`SlowSubscriber`].
/// A resumed subscription replays the events of `topic` only, the one its
/// field shows.
fn events(ctx: &Context<'_>, topic: &str) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Arc<Pushed>>>> {
    let feed = ctx.data::<LiveFeed>()?;
    let slow = ctx.data_opt::<SlowSubscriber>().cloned();
    let last = ctx.data_opt::<LastPosition>().cloned();
    let events = match ctx.data_opt::<ResumeFrom>() {
        Some(ResumeFrom(from)) => feed.resume(from.clone(), topic, slow).map(|event| event.map_err(resume_error)).boxed(),
        None => feed.events(slow).map(Ok).boxed(),
    };
    Ok(events.inspect(move |event| {
        if let (Ok(pushed), Some(last)) = (event, &last) {
            last.set(pushed.position.clone());
        }
    }))
}

fn resume_error(error: ResumeError) -> async_graphql::Error {
    match error {
        ResumeError::Expired(reason) => ErrorCode::CursorExpired.error(reason),
        foreign @ ResumeError::Foreign => ErrorCode::BadCursor.error(foreign.to_string()),
        ResumeError::Unavailable(error) => {
            tracing::warn!(error = format!("{error:#}"), "a subscription cannot resume now");
            ErrorCode::Unavailable.error("cannot replay the missed events now; try again")
        }
    }
}

/// The events of `events` that `pick` keeps, as results; an error ends them.
fn results<T>(
    events: impl Stream<Item = async_graphql::Result<Arc<Pushed>>>,
    pick: impl Fn(&LiveEvent) -> Option<T>,
) -> impl Stream<Item = async_graphql::Result<T>> {
    events.filter_map(move |event| std::future::ready(event.map(|pushed| pick(&pushed.event)).transpose()))
}

#[SubscriptionObject]
impl Subscription {
    /// Every new post, or only those of one author.
    async fn post_created(
        &self,
        ctx: &Context<'_>,
        author_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<Post>>> {
        let author_id = filter_id("authorId", author_id)?;
        Ok(results(events(ctx, topics::POST)?, move |event| match event {
            LiveEvent::PostCreated(post) if author_id.is_none_or(|id| id == post.author_id) => Some(Post(post.clone())),
            _ => None,
        }))
    }

    /// Every rename, or only one user's.
    async fn user_renamed(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<User>>> {
        let user_id = filter_id("userId", user_id)?;
        Ok(results(events(ctx, topics::USER)?, move |event| match event {
            LiveEvent::UserRenamed(user) if user_id.is_none_or(|id| id == user.id) => Some(User(user.clone())),
            _ => None,
        }))
    }

    /// Every change of points, or only one user's.
    async fn points_changed(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = async_graphql::Result<PointsChange>>> {
        let user_id = filter_id("userId", user_id)?;
        Ok(results(events(ctx, topics::POINTS)?, move |event| match event {
            LiveEvent::PointsChanged { user, delta, total, reason } if user_id.is_none_or(|id| id == user.id) => {
                Some(PointsChange { user: User(user.clone()), delta: *delta, total: *total, reason: reason.clone() })
            }
            _ => None,
        }))
    }
}
