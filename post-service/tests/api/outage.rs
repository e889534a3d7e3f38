//! post-service while its database is away: commands answer UNAVAILABLE
//! (retryable) with HTTP 503, never INTERNAL, and work again once it is back.

use agora_testkit::{graphql_with_status, start_post_service, TcpProxy, TestDatabase};
use serde_json::json;

use crate::helpers::{error_code, spawn_system, wait_until, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_post_answers_unavailable_with_503_while_the_database_is_away_and_works_once_it_is_back() {
    let system = spawn_system().await;
    let database = TestDatabase::new("agora_post_test");
    let proxy = TcpProxy::to_database(database.url()).await;
    let post = start_post_service(&system.kafka.settings(), &proxy.url(database.url()), system.auth.port, |config| {
        config.database_max_connections = 4
    })
    .await;
    let (token, _) = system.register("ada").await;
    let create = || async {
        graphql_with_status(
            post.service.port,
            "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }",
            json!({ "input": { "title": "Title", "body": "Body." } }),
            &[("authorization", format!("Bearer {token}"))],
        )
        .await
    };
    let (status, answer) = create().await;
    assert!(status.is_success() && answer["errors"].is_null(), "{status} {answer}");

    proxy.cut();
    let started = std::time::Instant::now();
    let (status, answer) = create().await;
    assert_eq!(error_code(&answer), Some("UNAVAILABLE"), "{answer}");
    assert_eq!(status, reqwest::StatusCode::SERVICE_UNAVAILABLE);
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "fails fast: {:?}", started.elapsed());
    // A query too.
    let (status, answer) = graphql_with_status(post.service.port, "{ posts { edges { node { id } } } }", json!({}), &[]).await;
    assert_eq!((status, error_code(&answer)), (reqwest::StatusCode::SERVICE_UNAVAILABLE, Some("UNAVAILABLE")), "{answer}");

    proxy.restore();
    wait_until(DEADLINE, "createPost works again", || async { create().await.1["errors"].is_null() }).await;
    let count: i64 = sqlx::query_scalar("select count(*) from post").fetch_one(&post.pool).await.unwrap();
    assert_eq!(count, 2, "the post before the outage and the one after it");
}
