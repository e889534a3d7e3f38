//! post-service's Federation v2 subgraph: it owns `Post`, contributes
//! `posts` and `postCount` to the `User` entity, and takes `createPost`.
//! Lookups go through per-request DataLoaders, so a federation gateway's
//! `_entities` call costs one query per kind of lookup, not one per row.

use std::collections::HashMap;
use std::sync::Arc;

use agora_platform::graphql::{Coded, TraceParent, WriteReceipts};
use agora_platform::idempotency::Keyed;
use agora_platform::pagination::PageRequest;
use agora_platform::query_limits::{QueryLimiter, QueryLimitsExtension};
use agora_platform::tokens::Caller;
use agora_schema::PostCursor;
use async_graphql::connection::{Connection, DefaultConnectionName, DefaultEdgeName, Edge, EmptyFields, EnableNodesField};
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
        let PageRequest { limit, after } = PageRequest::parse(first, after.as_deref()).coded()?;
        let key = AuthorPage { author_id: self.id, limit: limit + 1, after };
        let rows = ctx.data::<DataLoader<AuthorPostsLoader>>()?.load_one(key).await.map_err(loader_error).coded()?;
        Ok(post_connection(rows.unwrap_or_default(), limit, after.is_some()))
    }

    async fn post_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let count = ctx.data::<DataLoader<PostCountLoader>>()?.load_one(self.id).await.map_err(loader_error).coded()?;
        Ok(count.unwrap_or(0) as i32)
    }
}

/// A page of posts, newest first: a Relay cursor connection.
pub type PostConnection =
    Connection<String, Post, EmptyFields, EmptyFields, DefaultConnectionName, DefaultEdgeName, EnableNodesField>;

/// A page from up to `limit + 1` rows (the extra one only tells that there
/// is a next page); `after_given` says whether it follows a cursor.
fn post_connection(mut rows: Vec<PostRow>, limit: i64, after_given: bool) -> PostConnection {
    let has_next_page = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    let mut connection = PostConnection::new(after_given, has_next_page);
    connection.edges = rows.into_iter().map(|row| Edge::new(row.cursor().encode(), Post(row))).collect();
    connection
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
        let PageRequest { limit, after } = PageRequest::parse(first, after.as_deref()).coded()?;
        let author_id = match author_id {
            None => None,
            // An id that is not a UUID names no author: an empty page.
            Some(id) => match id.parse::<Uuid>() {
                Ok(id) => Some(id),
                Err(_) => return Ok(post_connection(Vec::new(), limit, after.is_some())),
            },
        };
        let rows = posts::page(ctx.data::<PgPool>()?, author_id, after, limit + 1).await.map_err(ApiError::from).coded()?;
        Ok(post_connection(rows, limit, after.is_some()))
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

/// One author's page of posts: `limit` rows after `after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AuthorPage {
    author_id: Uuid,
    limit: i64,
    after: Option<PostCursor>,
}

pub struct AuthorPostsLoader(PgPool);

impl Loader<AuthorPage> for AuthorPostsLoader {
    type Value = Vec<PostRow>;
    type Error = Arc<sqlx::Error>;

    async fn load(&self, keys: &[AuthorPage]) -> Result<HashMap<AuthorPage, Vec<PostRow>>, Self::Error> {
        // One query per distinct (limit, after): in practice one per request.
        let mut groups: HashMap<(i64, Option<PostCursor>), Vec<Uuid>> = HashMap::new();
        for key in keys {
            groups.entry((key.limit, key.after)).or_default().push(key.author_id);
        }
        let mut pages = HashMap::new();
        for ((limit, after), authors) in groups {
            for author_id in &authors {
                pages.insert(AuthorPage { author_id: *author_id, limit, after }, Vec::new());
            }
            for row in posts::pages_by_authors(&self.0, &authors, after, limit).await.map_err(Arc::new)? {
                if let Some(page) = pages.get_mut(&AuthorPage { author_id: row.author_id, limit, after }) {
                    page.push(row);
                }
            }
        }
        Ok(pages)
    }
}
