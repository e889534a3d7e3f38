//! Publishing a post (`createPost`), reading one back (`post(id)`), and the
//! health endpoints.

use agora_schema::topics;
use serde_json::json;
use uuid::Uuid;

use crate::helpers::{error_code, get, read_topic_until, spawn_system, wait_until, PostServiceCalls, DEADLINE};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_post_with_a_valid_token_returns_the_post_and_publishes_post_created() {
    let system = spawn_system().await;
    let (token, user_id) = system.register("ada").await;

    let response = system.create_post_response(&token, "On the Analytical Engine", "It weaves algebraic patterns.").await;

    assert!(response["errors"].is_null(), "{response}");
    let post = &response["data"]["createPost"];
    let post_id: Uuid = post["id"].as_str().unwrap().parse().expect("a post id is a UUID");
    assert_eq!(post["title"], "On the Analytical Engine");
    assert_eq!(post["body"], "It weaves algebraic patterns.");
    assert_eq!(post["author"]["id"], user_id.to_string());
    assert_eq!(
        response["extensions"]["writes"],
        json!([{ "topic": topics::POST, "aggregateId": post_id.to_string(), "aggregateVersion": 1 }])
    );

    let events =
        read_topic_until(&system.kafka.settings(), topics::POST, "the PostCreated event", |events| !events.is_empty()).await;
    let event = &events[0];
    assert_eq!(event.key, post_id.to_string());
    assert_eq!(event.event_type_header.as_deref(), Some("PostCreated"));
    assert_eq!(event.envelope.event_type, "PostCreated");
    assert_eq!(event.envelope.aggregate_id, post_id);
    assert_eq!(event.envelope.aggregate_version, 1);
    assert_eq!(event.envelope.data["author_id"], user_id.to_string());
    assert_eq!(event.envelope.data["title"], "On the Analytical Engine");
    // The relay marks the row published once the broker has acknowledged it.
    wait_until(DEADLINE, "the outbox row is marked published", || async {
        agora_platform::outbox::pending(&system.post_db).await.unwrap() == 0
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_post_rejects_invalid_titles_and_bodies_and_writes_nothing() {
    let system = spawn_system().await;
    let (token, _) = system.register("ada").await;
    let long_title = "t".repeat(201);
    let long_body = "b".repeat(20_001);
    let cases = [
        ("an empty title", "", "body"),
        ("a blank title", "   ", "body"),
        ("a title of 201 characters", long_title.as_str(), "body"),
        ("a title with a line break", "two\nlines", "body"),
        ("a title with a control character", "bell\u{7}", "body"),
        ("an empty body", "title", ""),
        ("a blank body", "title", " \n\t "),
        ("a body of 20001 characters", "title", long_body.as_str()),
        ("a body with a control character", "title", "escape \u{1b}[31m"),
    ];

    for (case, title, body) in cases {
        let response = system.create_post_response(&token, title, body).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{case}: {response}");
        assert!(response["data"].is_null(), "{case}: {response}");
        assert!(response["extensions"]["writes"].is_null(), "{case}: {response}");
    }
    assert_eq!(system.written_rows().await, (0, 0), "neither a post nor an event was written");

    // The limits are inclusive: the longest valid title and body are accepted.
    let response = system.create_post_response(&token, &"t".repeat(200), &"b".repeat(20_000)).await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(system.written_rows().await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_by_id_returns_the_post_and_null_for_an_unknown_or_malformed_id() {
    let system = spawn_system().await;
    let (token, user_id) = system.register("ada").await;
    let post_id = system.create_post(&token, "Notes").await;
    let query = "query($id: ID!) { post(id: $id) { id title body author { id } createdAt } }";

    let found = system.post_graphql(query, json!({ "id": post_id }), None).await;
    let post = &found["data"]["post"];
    assert_eq!(post["id"], post_id.as_str(), "{found}");
    assert_eq!(post["title"], "Notes");
    assert_eq!(post["author"]["id"], user_id.to_string());
    assert!(post["createdAt"].is_string());

    for id in [Uuid::now_v7().to_string(), "not-a-uuid".to_owned(), String::new()] {
        let response = system.post_graphql(query, json!({ "id": id }), None).await;
        assert!(response["errors"].is_null(), "{id:?}: {response}");
        assert!(response["data"]["post"].is_null(), "{id:?}: {response}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_and_readyz_answer_200() {
    let system = spawn_system().await;

    let health = get(system.post.port, "/healthz").await;
    assert_eq!(health.status(), 200);

    // Ready once its database and the broker answer; the broker may take a moment.
    wait_until(DEADLINE, "post-service is ready", || async { get(system.post.port, "/readyz").await.status() == 200 }).await;
    let body: serde_json::Value = get(system.post.port, "/readyz").await.json().await.unwrap();
    assert_eq!(body, json!({ "database": "ok", "kafka": "ok" }));
}
