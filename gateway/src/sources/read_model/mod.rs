//! The `read-model` strategy: every lookup is one SQL statement on the read
//! model (the tables the projector builds, read in [`queries`]); no service
//! is called.

pub mod queries;

use std::collections::HashMap;

use agora_schema::paging::PageRequest;
use std::sync::Arc;

use sqlx::PgPool;
use uuid::Uuid;

use super::{DataSource, PostPage, SourceFactory, SourceResult};
use crate::records::{PostRecord, ReadTags, RoundTrips, Tag, UserRecord};

pub struct ReadModelSource {
    pool: PgPool,
    /// Counts the statements run, for `extensions.sqlStatements`.
    statements: Arc<RoundTrips>,
    /// What the request read, for the response cache.
    tags: Arc<ReadTags>,
}

impl ReadModelSource {
    pub fn new(pool: PgPool, statements: Arc<RoundTrips>, tags: Arc<ReadTags>) -> Self {
        ReadModelSource { pool, statements, tags }
    }

    /// Records that the request read `tags`, and the authors of `posts`
    /// (which come with them).
    fn read<'a>(&self, tags: impl IntoIterator<Item = Tag>, posts: impl IntoIterator<Item = &'a PostRecord>) {
        self.tags.record(tags.into_iter().chain(posts.into_iter().map(|post| Tag::User(post.author_id))));
    }

    /// The pool, with the statement about to run counted.
    fn pool(&self) -> &PgPool {
        self.statements.increment();
        &self.pool
    }
}

/// Makes the per-request source of the read-model strategy.
pub fn factory(pool: PgPool) -> SourceFactory {
    Arc::new(move |_forwarded, statements, tags| Arc::new(ReadModelSource::new(pool.clone(), statements, tags)))
}

#[async_trait::async_trait]
impl DataSource for ReadModelSource {
    fn strategy(&self) -> &'static str {
        "read-model"
    }

    async fn users(&self, ids: &[Uuid]) -> SourceResult<Vec<UserRecord>> {
        self.read(ids.iter().copied().map(Tag::User), []);
        Ok(queries::users(self.pool(), ids).await?)
    }

    async fn user_by_username(&self, username: &str) -> SourceResult<Option<UserRecord>> {
        let user = queries::user_by_username(self.pool(), username).await?;
        self.read([Tag::Username(username.to_owned())].into_iter().chain(user.as_ref().map(|user| Tag::User(user.id))), []);
        Ok(user)
    }

    async fn posts(&self, author_id: Option<Uuid>, page: PageRequest) -> SourceResult<PostPage> {
        let posts = queries::posts(self.pool(), author_id, page.after, page.rows_to_fetch()).await?;
        self.read([author_id.map_or(Tag::Posts, Tag::PostsBy), Tag::Registrations], &posts);
        Ok(page.page_of(posts))
    }

    async fn posts_by_ids(&self, ids: &[Uuid]) -> SourceResult<Vec<PostRecord>> {
        let posts = queries::posts_by_ids(self.pool(), ids).await?;
        // A post not found may be one whose author is not known yet.
        self.read(ids.iter().copied().map(Tag::Post).chain([Tag::Registrations]), &posts);
        Ok(posts)
    }

    async fn posts_by_authors(&self, authors: &[Uuid], page: PageRequest) -> SourceResult<HashMap<Uuid, PostPage>> {
        let posts = queries::posts_by_authors(self.pool(), authors, page.after, page.rows_to_fetch()).await?;
        self.read(authors.iter().copied().flat_map(|author| [Tag::PostsBy(author), Tag::User(author)]), &posts);
        Ok(page.pages_by_author(posts, |post| post.author_id))
    }

    async fn post_counts(&self, authors: &[Uuid]) -> SourceResult<HashMap<Uuid, i32>> {
        // Users of the read model carry their post count; this is only asked
        // for users that came without one.
        self.read(authors.iter().copied().map(Tag::User), []);
        let users = queries::users(self.pool(), authors).await?;
        Ok(users.into_iter().map(|user| (user.id, user.post_count.unwrap_or(0))).collect())
    }

    async fn leaderboard(&self, first: i64) -> SourceResult<Vec<UserRecord>> {
        let users = queries::leaderboard(self.pool(), first).await?;
        self.read([Tag::Leaderboard].into_iter().chain(users.iter().map(|user| Tag::User(user.id))), []);
        Ok(users)
    }
}
