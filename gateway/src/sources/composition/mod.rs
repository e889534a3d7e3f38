//! The `composition` strategy: the same queries answered by calling the
//! subgraphs of the services that own the data and merging their answers in
//! code. Every lookup is one call to one service. Records come without their
//! author or post count, so the types' resolvers fetch those through the
//! request's DataLoaders: one call per service per level of the query,
//! never one per row.

mod auth;
mod errors;
mod posts;

use std::collections::HashMap;
use std::sync::Arc;

use agora_schema::paging::PageRequest;
use serde::de::DeserializeOwned;
use serde_json::Value;
use uuid::Uuid;

use super::{DataSource, PostPage, SourceError, SourceFactory, SourceResult};
use crate::records::{PostRecord, RoundTrips, UserRecord};
use crate::upstream::{Forwarded, Service, Upstream, UpstreamError};

/// One request's view of the services: calls go out on behalf of its
/// caller and are counted for its `extensions.upstreamRequests`.
pub struct CompositionSource {
    upstream: Arc<Upstream>,
    forwarded: Forwarded,
    calls: Arc<RoundTrips>,
}

impl CompositionSource {
    pub fn new(upstream: Arc<Upstream>, forwarded: Forwarded, calls: Arc<RoundTrips>) -> Self {
        CompositionSource { upstream, forwarded, calls }
    }

    /// Sends one query to `service` and reads the `field` of its data. A
    /// field error beside the data fails the whole call: a batch with a hole
    /// in it would pass a failure off as "not found".
    async fn fetch<T: DeserializeOwned>(&self, service: Service, query: &str, variables: Value, field: &str) -> SourceResult<T> {
        let answer = self.upstream.query(service, query, variables, &self.forwarded, &self.calls).await?;
        if let Some(error) = answer.errors.first() {
            return Err(UpstreamError::Refused(error.clone()).into());
        }
        T::deserialize(&answer.data[field])
            .map_err(|error| SourceError::internal(format!("{service} answered {field} in an unexpected shape: {error}")))
    }
}

/// Makes a [`CompositionSource`] per request over the shared client.
pub fn factory(upstream: Arc<Upstream>) -> SourceFactory {
    // Composition answers are not cached: what they read is not recorded.
    Arc::new(move |forwarded, calls, _tags| Arc::new(CompositionSource::new(upstream.clone(), forwarded, calls)))
}

#[async_trait::async_trait]
impl DataSource for CompositionSource {
    fn strategy(&self) -> &'static str {
        "composition"
    }

    async fn users(&self, ids: &[Uuid]) -> SourceResult<Vec<UserRecord>> {
        self.auth_users(ids).await
    }

    async fn user_by_username(&self, username: &str) -> SourceResult<Option<UserRecord>> {
        self.auth_user_by_username(username).await
    }

    async fn posts(&self, author_id: Option<Uuid>, page: PageRequest) -> SourceResult<PostPage> {
        self.post_page(author_id, page).await
    }

    async fn posts_by_ids(&self, ids: &[Uuid]) -> SourceResult<Vec<PostRecord>> {
        self.post_entities(ids).await
    }

    async fn posts_by_authors(&self, authors: &[Uuid], page: PageRequest) -> SourceResult<HashMap<Uuid, PostPage>> {
        self.author_pages(authors, page).await
    }

    async fn post_counts(&self, authors: &[Uuid]) -> SourceResult<HashMap<Uuid, i32>> {
        self.author_post_counts(authors).await
    }

    async fn leaderboard(&self, first: i64) -> SourceResult<Vec<UserRecord>> {
        self.auth_leaderboard(first).await
    }
}
