//! post-service's Federation v2 subgraph: it owns `Post`, contributes
//! `posts` and `postCount` to the `User` entity, and takes `createPost`.
//! Lookups go through DataLoaders (built once with the schema; they batch
//! the lookups made together and cache nothing across requests), so a
//! federation gateway's `_entities` call costs one query per kind of
//! lookup, not one per row.

use std::collections::HashMap;
use std::sync::Arc;

use agora_platform::errors::Coded;
use agora_platform::idempotency::Keyed;
use agora_platform::pagination::{self, page_request};
use agora_platform::query_limits::{QueryLimiter, QueryLimitsExtension};
use agora_platform::receipts::WriteReceipts;
use agora_platform::tokens::Caller;
use agora_platform::trace_context::TraceParent;
use agora_schema::paging::{AuthorPage, PostPage};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::{Context, EmptySubscription, InputObject, Object, Schema, ID};
use chrono::{DateTime, Utc};
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::{PostBody, PostTitle};
use crate::error::ApiError;
use crate::posts::{self, PostRow};
use crate::rate_limit::PostBudget;

pub type PostSchema = Schema<Query, Mutation, EmptySubscription>;

pub fn schema(pool: PgPool, limiter: QueryLimiter, budget: PostBudget) -> PostSchema {
    Schema::build(Query, Mutation, EmptySubscription)
        .data(budget)
        .enable_federation()
        .extension(QueryLimitsExtension::new(limiter))
        // Loaders batch concurrent lookups; they cache nothing across requests.
        .data(DataLoader::new(PostLoader(pool.clone()), tokio::spawn))
        .data(DataLoader::new(PostCountLoader(pool.clone()), tokio::spawn))
        .data(DataLoader::new(AuthorPostsLoader(pool.clone()), tokio::spawn))
        .data(pool)
        .finish()
}

/// A published post.
pub struct Post(PostRow);

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
    async fn author(&self) -> User {
        User { id: self.0.author_id }
    }
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at
    }
}

/// The `User` entity, owned by auth-service; this subgraph adds its posts.
pub struct User {
    id: Uuid,
}

#[Object]
impl User {
    async fn id(&self) -> ID {
        ID(self.id.to_string())
    }

    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(default = 20)] first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        let page = page_request(first, after.as_deref())?;
        let key = AuthorPage { author_id: self.id, page };
        let posts = ctx.data::<DataLoader<AuthorPostsLoader>>()?.load_one(key).await.map_err(loader_error).coded()?;
        Ok(post_connection(posts.unwrap_or_default(), page.after.is_some()))
    }

    async fn post_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let count = ctx.data::<DataLoader<PostCountLoader>>()?.load_one(self.id).await.map_err(loader_error).coded()?;
        Ok(count.unwrap_or(0) as i32)
    }
}

/// A page of posts, newest first: a Relay cursor connection.
pub type PostConnection = pagination::PostConnection<Post>;

/// The connection over a page; `after_given` says whether it follows a cursor.
fn post_connection(page: PostPage<PostRow>, after_given: bool) -> PostConnection {
    pagination::post_connection(page, after_given, |row| (row.cursor(), Post(row)))
}

#[derive(InputObject)]
pub struct CreatePostInput {
    pub title: String,
    pub body: String,
}

fn loader_error(error: Arc<sqlx::Error>) -> ApiError {
    ApiError::Loading(error)
}

pub struct Query;

#[Object]
impl Query {
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
            // An id that is not a UUID names no author: an empty page.
            Some(id) => match id.parse::<Uuid>() {
                Ok(id) => Some(id),
                Err(_) => return Ok(post_connection(PostPage::default(), page.after.is_some())),
            },
        };
        let rows = posts::page(ctx.data::<PgPool>()?, author_id, page.after, page.rows_to_fetch())
            .await
            .map_err(ApiError::from)
            .coded()?;
        Ok(post_connection(page.page_of(rows), page.after.is_some()))
    }

    async fn post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Post>> {
        let Ok(id) = id.parse::<Uuid>() else { return Ok(None) };
        let row = ctx.data::<DataLoader<PostLoader>>()?.load_one(id).await.map_err(loader_error).coded()?;
        Ok(row.map(Post))
    }

    #[graphql(entity)]
    async fn find_post_by_id(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Post>> {
        self.post(ctx, id).await
    }

    #[graphql(entity)]
    async fn find_user_by_id(&self, id: ID) -> Option<User> {
        id.parse().ok().map(|id| User { id })
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Publishes a post by the user behind the token.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> async_graphql::Result<Post> {
        let caller = ctx.data::<Caller>()?.require()?;
        let title = PostTitle::parse(&input.title).coded()?;
        let body = PostBody::parse(&input.body).coded()?;
        // Counted before the idempotency check: a retry near the budget's end
        // may be told to wait, and then gets the first answer.
        ctx.data::<PostBudget>()?
            .spend(caller.sub)
            .map_err(|retry| agora_platform::budget::rate_limited("too many posts; try again later", retry))?;
        let keyed = Keyed::of(ctx, Some(caller.sub), "createPost", &[Some(&input.title), Some(&input.body)]).coded()?;
        let (post, writes) =
            posts::create(ctx.data::<PgPool>()?, caller.sub, title, body, &TraceParent::of(ctx), keyed.as_ref()).await.coded()?;
        let receipts = ctx.data::<WriteReceipts>()?;
        writes.into_iter().for_each(|receipt| receipts.push(receipt));
        Ok(Post(post))
    }
}

pub struct PostLoader(PgPool);

impl Loader<Uuid> for PostLoader {
    type Value = PostRow;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, ids: &[Uuid]) -> Result<HashMap<Uuid, PostRow>, Self::Error> {
        let rows = posts::find_many(&self.0, ids).await.map_err(Arc::new)?;
        Ok(rows.into_iter().map(|row| (row.id, row)).collect())
    }
}

pub struct PostCountLoader(PgPool);

impl Loader<Uuid> for PostCountLoader {
    type Value = i64;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, authors: &[Uuid]) -> Result<HashMap<Uuid, i64>, Self::Error> {
        Ok(posts::count_by_authors(&self.0, authors).await.map_err(Arc::new)?.into_iter().collect())
    }
}

pub struct AuthorPostsLoader(PgPool);

impl Loader<AuthorPage> for AuthorPostsLoader {
    type Value = PostPage<PostRow>;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, keys: &[AuthorPage]) -> Result<HashMap<AuthorPage, PostPage<PostRow>>, Self::Error> {
        // One query per distinct page asked for: in practice one per request.
        let mut pages = HashMap::new();
        for (page, authors) in AuthorPage::group(keys) {
            let rows = posts::pages_by_authors(&self.0, &authors, page.after, page.rows_to_fetch()).await.map_err(Arc::new)?;
            pages.extend(AuthorPage::answer(page, &authors, page.pages_by_author(rows, |row| row.author_id)));
        }
        Ok(pages)
    }
}
