//! Where a query's data comes from: the read model (the default strategy,
//! [`read_model`]) or the services, merged in code ([`composition`]).
//! Resolvers ask a [`DataSource`] through per-request DataLoaders
//! ([`Loaders`]), so lookups made at one level of a query are batched into
//! one call, whichever the source.
//!
//! Stage: read model -> query. Uses `records` and `upstream`; nothing of the
//! schema, the pipeline or the transports.

pub mod composition;
pub mod read_model;

use std::collections::HashMap;
use std::sync::Arc;

use agora_platform::errors::ErrorCode;
use agora_schema::paging::{AuthorPage, PageRequest};
use async_graphql::dataloader::{DataLoader, Loader};
use async_graphql::ErrorExtensions;
use uuid::Uuid;

use crate::records::{PostRecord, ReadTags, RoundTrips, UserRecord};
use crate::upstream::Forwarded;

/// Makes a request's data source, on behalf of its caller; the counter
/// counts the source's round trips, the tags record what it read (for the
/// response cache).
pub type SourceFactory = Arc<dyn Fn(Forwarded, Arc<RoundTrips>, Arc<ReadTags>) -> Arc<dyn DataSource> + Send + Sync>;

/// A failure to fetch data, with the code the client sees.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub code: ErrorCode,
    pub message: String,
}

impl SourceError {
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "data source failed");
        SourceError { code: ErrorCode::Internal, message: "internal error".into() }
    }
}

impl From<sqlx::Error> for SourceError {
    /// UNAVAILABLE (retryable) when the read model's database is away, else INTERNAL.
    fn from(error: sqlx::Error) -> Self {
        if agora_platform::db::is_unavailable(&error) {
            tracing::warn!(%error, "the read model's database is unavailable");
            return SourceError {
                code: ErrorCode::Unavailable,
                message: "the database is unavailable for now; retry later".into(),
            };
        }
        SourceError::internal(error)
    }
}

impl ErrorExtensions for SourceError {
    fn extend(&self) -> async_graphql::Error {
        self.code.error(self.message.clone())
    }
}

pub type SourceResult<T> = Result<T, SourceError>;

/// The queries both strategies answer; each method is one round trip.
#[async_trait::async_trait]
pub trait DataSource: Send + Sync + 'static {
    /// `read-model` or `composition`.
    fn strategy(&self) -> &'static str;
    async fn users(&self, ids: &[Uuid]) -> SourceResult<Vec<UserRecord>>;
    async fn user_by_username(&self, username: &str) -> SourceResult<Option<UserRecord>>;
    /// The page of posts asked for, newest first.
    async fn posts(&self, author_id: Option<Uuid>, page: PageRequest) -> SourceResult<PostPage>;
    async fn posts_by_ids(&self, ids: &[Uuid]) -> SourceResult<Vec<PostRecord>>;
    /// Each author's page of posts asked for, newest first; an author
    /// without posts there may be left out.
    async fn posts_by_authors(&self, authors: &[Uuid], page: PageRequest) -> SourceResult<HashMap<Uuid, PostPage>>;
    async fn post_counts(&self, authors: &[Uuid]) -> SourceResult<HashMap<Uuid, i32>>;
    async fn leaderboard(&self, first: i64) -> SourceResult<Vec<UserRecord>>;
}

/// A page of posts, newest first, and whether more follow it (the paging
/// rules are the contract's, in `agora_schema::paging`).
pub type PostPage = agora_schema::paging::PostPage<PostRecord>;

/// The per-request loaders over a source.
pub struct Loaders {
    pub source: Arc<dyn DataSource>,
    pub users: DataLoader<UserLoader>,
    pub posts: DataLoader<PostLoader>,
    pub post_counts: DataLoader<PostCountLoader>,
    pub author_posts: DataLoader<AuthorPostsLoader>,
}

impl Loaders {
    pub fn new(source: Arc<dyn DataSource>) -> Self {
        Loaders {
            users: DataLoader::new(UserLoader(source.clone()), tokio::spawn),
            posts: DataLoader::new(PostLoader(source.clone()), tokio::spawn),
            post_counts: DataLoader::new(PostCountLoader(source.clone()), tokio::spawn),
            author_posts: DataLoader::new(AuthorPostsLoader(source.clone()), tokio::spawn),
            source,
        }
    }
}

pub struct UserLoader(Arc<dyn DataSource>);

impl Loader<Uuid> for UserLoader {
    type Value = UserRecord;
    type Error = SourceError;

    async fn load(&self, ids: &[Uuid]) -> SourceResult<HashMap<Uuid, UserRecord>> {
        Ok(self.0.users(ids).await?.into_iter().map(|user| (user.id, user)).collect())
    }
}

pub struct PostLoader(Arc<dyn DataSource>);

impl Loader<Uuid> for PostLoader {
    type Value = PostRecord;
    type Error = SourceError;

    async fn load(&self, ids: &[Uuid]) -> SourceResult<HashMap<Uuid, PostRecord>> {
        Ok(self.0.posts_by_ids(ids).await?.into_iter().map(|post| (post.id, post)).collect())
    }
}

pub struct PostCountLoader(Arc<dyn DataSource>);

impl Loader<Uuid> for PostCountLoader {
    type Value = i32;
    type Error = SourceError;

    async fn load(&self, authors: &[Uuid]) -> SourceResult<HashMap<Uuid, i32>> {
        self.0.post_counts(authors).await
    }
}

pub struct AuthorPostsLoader(Arc<dyn DataSource>);

impl Loader<AuthorPage> for AuthorPostsLoader {
    type Value = PostPage;
    type Error = SourceError;

    async fn load(&self, keys: &[AuthorPage]) -> SourceResult<HashMap<AuthorPage, PostPage>> {
        // One call per distinct page asked for: in practice one per level.
        let calls = AuthorPage::group(keys).into_iter().map(|(page, authors)| async move {
            let pages = self.0.posts_by_authors(&authors, page).await?;
            SourceResult::Ok(AuthorPage::answer(page, &authors, pages))
        });
        Ok(futures::future::try_join_all(calls).await?.into_iter().flatten().collect())
    }
}
