//! `createPost` with an `Idempotency-Key`: a retry gets the first answer and
//! publishes nothing more; the same key with another input is a CONFLICT;
//! keys belong to the caller who sent them.

use agora_testkit::graphql_with_headers;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_system, PostServiceCalls, TestSystem};

const CREATE_POST: &str = "mutation($input: CreatePostInput!) { createPost(input: $input) { id title createdAt } }";

async fn create_post_with_key(system: &TestSystem, token: &str, key: &str, title: &str) -> Value {
    let headers = [("authorization", format!("Bearer {token}")), ("idempotency-key", key.to_owned())];
    graphql_with_headers(system.post.port, CREATE_POST, json!({ "input": { "title": title, "body": "A body." } }), &headers).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_with_the_same_key_gets_the_first_answer_and_publishes_one_post() {
    let system = spawn_system().await;
    let (token, _) = system.register("ada").await;

    let first = create_post_with_key(&system, &token, "key-1", "Once").await;
    assert!(first["errors"].is_null(), "{first}");
    let retry = create_post_with_key(&system, &token, "key-1", "Once").await;

    assert_eq!(retry["data"], first["data"], "the same post, as first answered");
    assert_eq!(retry["extensions"]["writes"], first["extensions"]["writes"], "the same write receipts");
    assert_eq!(system.written_rows().await, (1, 1), "one post, one event");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_retries_with_one_key_publish_one_post() {
    let system = spawn_system().await;
    let (token, _) = system.register("ada").await;

    let answers = futures::future::join_all((0..6).map(|_| create_post_with_key(&system, &token, "key-1", "Once"))).await;

    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|answer| answer["data"]["createPost"]["id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every retry got the same post: {answers:?}");
    assert_eq!(system.written_rows().await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_input_is_a_conflict_and_writes_nothing() {
    let system = spawn_system().await;
    let (token, _) = system.register("ada").await;
    create_post_with_key(&system, &token, "key-1", "Once").await;

    let other = create_post_with_key(&system, &token, "key-1", "Something else").await;

    assert_eq!(error_code(&other), Some("CONFLICT"), "{other}");
    let message = other["errors"][0]["message"].as_str().unwrap();
    assert!(message.contains("Idempotency-Key") && message.contains("different"), "a clear message: {message}");
    assert_eq!(system.written_rows().await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_belongs_to_its_caller_and_different_keys_are_different_commands() {
    let system = spawn_system().await;
    let (ada, _) = system.register("ada").await;
    let (bob, _) = system.register("bob").await;

    let by_ada = create_post_with_key(&system, &ada, "key-1", "Same title").await;
    let by_bob = create_post_with_key(&system, &bob, "key-1", "Same title").await;
    let by_ada_again = create_post_with_key(&system, &ada, "key-2", "Same title").await;

    let id = |answer: &Value| answer["data"]["createPost"]["id"].as_str().unwrap_or_else(|| panic!("{answer}")).to_owned();
    assert_ne!(id(&by_ada), id(&by_bob));
    assert_ne!(id(&by_ada), id(&by_ada_again));
    assert_eq!(system.written_rows().await, (3, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_key_is_bad_input() {
    let system = spawn_system().await;
    let (token, _) = system.register("ada").await;

    let answer = create_post_with_key(&system, &token, &"k".repeat(256), "Once").await;

    assert_eq!(error_code(&answer), Some("BAD_USER_INPUT"), "{answer}");
    assert_eq!(system.written_rows().await, (0, 0));
}
