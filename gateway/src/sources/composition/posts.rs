//! What the composition asks post-service, which owns posts: pages of
//! posts, posts by id, and (as contributions to the `User` entity, through
//! federation's `_entities`) each author's page of posts and post count.

use std::collections::HashMap;

use agora_schema::paging::{PageRequest, MAX_PAGE_SIZE};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{json, Value};
use uuid::Uuid;

use super::CompositionSource;
use crate::records::PostRecord;
use crate::sources::{PostPage, SourceError, SourceResult};
use crate::upstream::Service;

const POST_FIELDS: &str = "fragment PostFields on Post { id title body createdAt author { id } }";

/// A post as post-service answers it: its author only by id.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Post {
    id: Uuid,
    title: String,
    body: String,
    created_at: DateTime<Utc>,
    author: Reference,
}

#[derive(Deserialize)]
struct Reference {
    id: Uuid,
}

impl From<Post> for PostRecord {
    fn from(post: Post) -> Self {
        // The author is auth-service's to tell; the resolver asks it.
        PostRecord {
            id: post.id,
            author_id: post.author.id,
            title: post.title,
            body: post.body,
            created_at: post.created_at,
            author: None,
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Connection {
    nodes: Vec<Post>,
    page_info: PageInfo,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PageInfo {
    has_next_page: bool,
}

impl From<Connection> for PostPage {
    fn from(connection: Connection) -> Self {
        PostPage {
            posts: connection.nodes.into_iter().map(PostRecord::from).collect(),
            has_next_page: connection.page_info.has_next_page,
        }
    }
}

#[derive(Deserialize)]
struct AuthorPosts {
    id: Uuid,
    posts: Connection,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AuthorCount {
    id: Uuid,
    post_count: i32,
}

/// Federation entity representations of `typename` with these ids.
fn representations(typename: &str, ids: &[Uuid]) -> Value {
    ids.iter().map(|id| json!({ "__typename": typename, "id": id })).collect()
}

/// post-service pages hold at most as many posts as the gateway's do, so
/// any page the API can ask for is one call.
fn check_page_size(limit: i64) -> SourceResult<()> {
    if !(0..=i64::from(MAX_PAGE_SIZE)).contains(&limit) {
        return Err(SourceError::internal(format!("a page of {limit} posts is more than post-service serves")));
    }
    Ok(())
}

impl CompositionSource {
    pub(super) async fn post_page(&self, author_id: Option<Uuid>, page: PageRequest) -> SourceResult<PostPage> {
        check_page_size(page.limit)?;
        let query = format!(
            "query($first: Int!, $after: String, $authorId: ID) {{
                posts(first: $first, after: $after, authorId: $authorId) {{ nodes {{ ...PostFields }} pageInfo {{ hasNextPage }} }}
            }} {POST_FIELDS}"
        );
        let variables = json!({ "first": page.limit, "after": page.after.map(|cursor| cursor.encode()), "authorId": author_id });
        let connection: Connection = self.fetch(Service::Post, &query, variables, "posts").await?;
        Ok(connection.into())
    }

    pub(super) async fn post_entities(&self, ids: &[Uuid]) -> SourceResult<Vec<PostRecord>> {
        let query = format!(
            "query($representations: [_Any!]!) {{ _entities(representations: $representations) {{ ... on Post {{ ...PostFields }} }} }} {POST_FIELDS}"
        );
        let variables = json!({ "representations": representations("Post", ids) });
        let posts: Vec<Option<Post>> = self.fetch(Service::Post, &query, variables, "_entities").await?;
        Ok(posts.into_iter().flatten().map(PostRecord::from).collect())
    }

    pub(super) async fn author_pages(&self, authors: &[Uuid], page: PageRequest) -> SourceResult<HashMap<Uuid, PostPage>> {
        check_page_size(page.limit)?;
        let query = format!(
            "query($representations: [_Any!]!, $first: Int!, $after: String) {{
                _entities(representations: $representations) {{
                    ... on User {{ id posts(first: $first, after: $after) {{ nodes {{ ...PostFields }} pageInfo {{ hasNextPage }} }} }}
                }}
            }} {POST_FIELDS}"
        );
        let variables = json!({ "representations": representations("User", authors), "first": page.limit, "after": page.after.map(|cursor| cursor.encode()) });
        let pages: Vec<Option<AuthorPosts>> = self.fetch(Service::Post, &query, variables, "_entities").await?;
        Ok(pages.into_iter().flatten().map(|author| (author.id, author.posts.into())).collect())
    }

    pub(super) async fn author_post_counts(&self, authors: &[Uuid]) -> SourceResult<HashMap<Uuid, i32>> {
        let query =
            "query($representations: [_Any!]!) { _entities(representations: $representations) { ... on User { id postCount } } }";
        let variables = json!({ "representations": representations("User", authors) });
        let counts: Vec<Option<AuthorCount>> = self.fetch(Service::Post, query, variables, "_entities").await?;
        Ok(counts.into_iter().flatten().map(|author| (author.id, author.post_count)).collect())
    }
}
