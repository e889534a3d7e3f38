//! The public queries, answered by the request's data source.

use agora_platform::errors::Coded;
use agora_platform::input::InputError;
use agora_platform::pagination::page_request;
use async_graphql::{Context, Object, ID};
use uuid::Uuid;

use super::context::RequestContext;
use super::types::{post_connection, Post, PostConnection, User};
use crate::sources::PostPage;

pub struct Query;

/// An id argument; one that is not a UUID names nothing.
fn parse_id(id: &ID) -> Option<Uuid> {
    id.parse().ok()
}

#[Object]
impl Query {
    /// The user behind the bearer token; null without a valid one.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        let request = ctx.data::<RequestContext>()?;
        let Some(claims) = request.caller.claims() else {
            return Ok(None);
        };
        Ok(request.loaders.users.load_one(claims.sub).await.coded()?.map(User))
    }

    async fn user(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<User>> {
        let Some(id) = parse_id(&id) else {
            return Ok(None);
        };
        let request = ctx.data::<RequestContext>()?;
        Ok(request.loaders.users.load_one(id).await.coded()?.map(User))
    }

    async fn user_by_username(&self, ctx: &Context<'_>, username: String) -> async_graphql::Result<Option<User>> {
        // A string that breaks the username rules names nobody (and may hold
        // what PostgreSQL refuses, such as U+0000).
        if agora_schema::rules::check_username(&username).is_err() {
            return Ok(None);
        }
        let request = ctx.data::<RequestContext>()?;
        Ok(request.loaders.source.user_by_username(&username).await.coded()?.map(User))
    }

    /// Newest first. Relay cursor connection.
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
        author_id: Option<ID>,
    ) -> async_graphql::Result<PostConnection> {
        let page = page_request(first, after.as_deref())?;
        let author_id = match author_id {
            None => None,
            Some(id) => match parse_id(&id) {
                Some(id) => Some(id),
                None => return Ok(post_connection(PostPage::default(), page.after.is_some())),
            },
        };
        let request = ctx.data::<RequestContext>()?;
        let posts = request.loaders.source.posts(author_id, page).await.coded()?;
        Ok(post_connection(posts, page.after.is_some()))
    }

    async fn post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Post>> {
        let Some(id) = parse_id(&id) else {
            return Ok(None);
        };
        let request = ctx.data::<RequestContext>()?;
        Ok(request.loaders.posts.load_one(id).await.coded()?.map(Post))
    }

    /// Users by points, highest first; ties by earliest registration.
    async fn leaderboard(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 10)] first: Option<i32>,
    ) -> async_graphql::Result<Vec<User>> {
        let first = agora_schema::paging::leaderboard_size(first).map_err(InputError::from).coded()?;
        let request = ctx.data::<RequestContext>()?;
        Ok(request.loaders.source.leaderboard(first).await.coded()?.into_iter().map(User).collect())
    }
}
