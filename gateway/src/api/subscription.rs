//! The public subscriptions, fed by the process's live feed and filtered in
//! memory per operation (the subscribers of one operation share its
//! execution: `pipeline::subscriptions`).

use std::sync::Arc;

use agora_platform::input::InputError;
use async_graphql::{Context, ErrorExtensions, SimpleObject, Subscription as SubscriptionObject, ID};
use futures::{Stream, StreamExt};
use uuid::Uuid;

use super::types::{Post, User};
use crate::live::{LiveEvent, LiveFeed, SlowSubscriber};

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

/// The feed's events for one subscriber; one that falls behind is told
/// through the request's [`SlowSubscriber`].
fn events(ctx: &Context<'_>) -> async_graphql::Result<impl Stream<Item = Arc<LiveEvent>>> {
    Ok(ctx.data::<LiveFeed>()?.events(ctx.data_opt::<SlowSubscriber>().cloned()))
}

#[SubscriptionObject]
impl Subscription {
    /// Every new post, or only those of one author.
    async fn post_created(&self, ctx: &Context<'_>, author_id: Option<ID>) -> async_graphql::Result<impl Stream<Item = Post>> {
        let author_id = filter_id("authorId", author_id)?;
        Ok(events(ctx)?.filter_map(move |event| {
            std::future::ready(match &*event {
                LiveEvent::PostCreated(post) if author_id.is_none_or(|id| id == post.author_id) => Some(Post(post.clone())),
                _ => None,
            })
        }))
    }

    /// Every rename, or only one user's.
    async fn user_renamed(&self, ctx: &Context<'_>, user_id: Option<ID>) -> async_graphql::Result<impl Stream<Item = User>> {
        let user_id = filter_id("userId", user_id)?;
        Ok(events(ctx)?.filter_map(move |event| {
            std::future::ready(match &*event {
                LiveEvent::UserRenamed(user) if user_id.is_none_or(|id| id == user.id) => Some(User(user.clone())),
                _ => None,
            })
        }))
    }

    /// Every change of points, or only one user's.
    async fn points_changed(
        &self,
        ctx: &Context<'_>,
        user_id: Option<ID>,
    ) -> async_graphql::Result<impl Stream<Item = PointsChange>> {
        let user_id = filter_id("userId", user_id)?;
        Ok(events(ctx)?.filter_map(move |event| {
            std::future::ready(match &*event {
                LiveEvent::PointsChanged { user, delta, total, reason } if user_id.is_none_or(|id| id == user.id) => {
                    Some(PointsChange { user: User(user.clone()), delta: *delta, total: *total, reason: reason.clone() })
                }
                _ => None,
            })
        }))
    }
}
