//! The system under test is testkit's [`Services`]: an embedded Kafka
//! broker, a real auth-service (which signs tokens and runs the points
//! ledger) and post-service, each on port 0 with a fresh database; here are
//! the calls post-service's tests make of it.
//!
//! Dropping the system stops both services and waits for them, which needs
//! `#[tokio::test(flavor = "multi_thread", worker_threads = 2)]`.

use agora_testkit::{graphql, Services};
use serde_json::{json, Value};

pub use agora_testkit::{error_code, get, read_topic_until, wait_until, DEADLINE};

pub type TestSystem = Services;

pub async fn spawn_system() -> TestSystem {
    Services::start().await
}

/// What post-service's tests ask of the system beyond testkit's calls.
pub trait PostServiceCalls {
    async fn post_graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value;
    async fn auth_graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value;
    /// Publishes a post; panics unless it was created. Returns its id.
    async fn create_post(&self, token: &str, title: &str) -> String;
    /// `createPost` with `token` (none when empty); the whole response.
    async fn create_post_response(&self, token: &str, title: &str, body: &str) -> Value;
    /// Rows in post-service's `post` and `outbox` tables.
    async fn written_rows(&self) -> (i64, i64);
}

impl PostServiceCalls for Services {
    async fn post_graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        graphql(self.post.port, query, variables, token).await
    }

    async fn auth_graphql(&self, query: &str, variables: Value, token: Option<&str>) -> Value {
        graphql(self.auth.port, query, variables, token).await
    }

    async fn create_post(&self, token: &str, title: &str) -> String {
        let response = self.create_post_response(token, title, "Some body text.").await;
        response["data"]["createPost"]["id"].as_str().unwrap_or_else(|| panic!("createPost failed: {response}")).to_owned()
    }

    async fn create_post_response(&self, token: &str, title: &str, body: &str) -> Value {
        self.post_graphql(
            "mutation($input: CreatePostInput!) { createPost(input: $input) { id title body author { id } createdAt } }",
            json!({ "input": { "title": title, "body": body } }),
            Some(token).filter(|token| !token.is_empty()),
        )
        .await
    }

    async fn written_rows(&self) -> (i64, i64) {
        let posts = sqlx::query_scalar("select count(*) from post").fetch_one(&self.post_db).await.unwrap();
        let events = sqlx::query_scalar("select count(*) from outbox").fetch_one(&self.post_db).await.unwrap();
        (posts, events)
    }
}
