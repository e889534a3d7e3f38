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
use crate::records::{PostRecord, RoundTrips, UserRecord};

pub struct ReadModelSource {
    pool: PgPool,
    /// Counts the statements run, for `extensions.sqlStatements`.
    statements: Arc<RoundTrips>,
}

impl ReadModelSource {
    pub fn new(pool: PgPool, statements: Arc<RoundTrips>) -> Self {
        ReadModelSource { pool, statements }
    }

    /// The pool, with the statement about to run counted.
    fn pool(&self) -> &PgPool {
        self.statements.increment();
        &self.pool
    }
}

/// Makes the per-request source of the read-model strategy.
pub fn factory(pool: PgPool) -> SourceFactory {
    Arc::new(move |_forwarded, statements| Arc::new(ReadModelSource::new(pool.clone(), statements)))
}

#[async_trait::async_trait]
impl DataSource for ReadModelSource {
    fn strategy(&self) -> &'static str {
        "read-model"
    }

    async fn users(&self, ids: &[Uuid]) -> SourceResult<Vec<UserRecord>> {
        Ok(queries::users(self.pool(), ids).await?)
    }

    async fn user_by_username(&self, username: &str) -> SourceResult<Option<UserRecord>> {
        Ok(queries::user_by_username(self.pool(), username).await?)
    }

    async fn posts(&self, author_id: Option<Uuid>, page: PageRequest) -> SourceResult<PostPage> {
        let posts = queries::posts(self.pool(), author_id, page.after, page.rows_to_fetch()).await?;
        Ok(page.page_of(posts))
    }

    async fn posts_by_ids(&self, ids: &[Uuid]) -> SourceResult<Vec<PostRecord>> {
        Ok(queries::posts_by_ids(self.pool(), ids).await?)
    }

    async fn posts_by_authors(&self, authors: &[Uuid], page: PageRequest) -> SourceResult<HashMap<Uuid, PostPage>> {
        let posts = queries::posts_by_authors(self.pool(), authors, page.after, page.rows_to_fetch()).await?;
        Ok(page.pages_by_author(posts, |post| post.author_id))
    }

    async fn post_counts(&self, authors: &[Uuid]) -> SourceResult<HashMap<Uuid, i32>> {
        // Users of the read model carry their post count; this is only asked
        // for users that came without one.
        let users = queries::users(self.pool(), authors).await?;
        Ok(users.into_iter().map(|user| (user.id, user.post_count.unwrap_or(0))).collect())
    }

    async fn leaderboard(&self, first: i64) -> SourceResult<Vec<UserRecord>> {
        Ok(queries::leaderboard(self.pool(), first).await?)
    }
}
