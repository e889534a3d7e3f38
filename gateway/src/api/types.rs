//! The public API's object types, resolved from records of either source.

use agora_platform::errors::Coded;
use agora_platform::errors::ErrorCode;
use agora_platform::pagination::{self, page_request};
use agora_schema::paging::AuthorPage;
use async_graphql::{Context, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};

use super::context::RequestContext;
use crate::records::{PostRecord, UserRecord};
use crate::sources::PostPage;

pub struct User(pub UserRecord);

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn username(&self) -> &str {
        &self.0.username
    }
    async fn display_name(&self) -> &str {
        &self.0.display_name
    }
    async fn points(&self) -> i32 {
        self.0.points
    }
    async fn post_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        if let Some(count) = self.0.post_count {
            return Ok(count);
        }
        let loaders = &ctx.data::<RequestContext>()?.loaders;
        Ok(loaders.post_counts.load_one(self.0.id).await.coded()?.unwrap_or(0))
    }
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        let page = page_request(first, after.as_deref())?;
        let loaders = &ctx.data::<RequestContext>()?.loaders;
        let key = AuthorPage { author_id: self.0.id, page };
        let posts = loaders.author_posts.load_one(key).await.coded()?.unwrap_or_default();
        Ok(post_connection(posts, page.after.is_some()))
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

pub struct Post(pub PostRecord);

#[Object]
impl Post {
    async fn id(&self) -> ID {
        ID(self.0.id.to_string())
    }
    async fn title(&self) -> &str {
        &self.0.title
    }
    async fn body(&self) -> &str {
        &self.0.body
    }
    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        if let Some(author) = &self.0.author {
            return Ok(User(author.clone()));
        }
        let loaders = &ctx.data::<RequestContext>()?.loaders;
        match loaders.users.load_one(self.0.author_id).await.coded()? {
            Some(author) => Ok(User(author)),
            None => Err(ErrorCode::NotFound.error("the post's author is not known yet")),
        }
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// A page of posts, newest first: a Relay cursor connection
/// (`PostConnection`, `PostEdge`, `PageInfo`).
pub type PostConnection = pagination::PostConnection<Post>;

/// The connection over a page; `after_given` says whether it follows a cursor.
pub fn post_connection(page: PostPage, after_given: bool) -> PostConnection {
    pagination::post_connection(page, after_given, |post| (post.cursor(), Post(post)))
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    pub token: String,
    pub user: User,
}
