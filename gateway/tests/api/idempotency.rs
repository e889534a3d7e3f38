//! Idempotent mutations through the gateway: a retry with the same
//! `Idempotency-Key`, through any replica, gets the first answer (data,
//! write receipts, consistency) and has exactly one effect.

use agora_testkit::{error_code, wait_until, DEADLINE};
use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_gateway, spawn_system, wait_until_sharing, Account, TestGateway};

const CREATE_POST: &str =
    "mutation($input: CreatePostInput!) { createPost(input: $input) { id title createdAt author { id displayName } } }";

async fn create_post_with_key(gateway: &TestGateway, account: &Account, key: &str, title: &str) -> Value {
    let input = json!({ "input": { "title": title, "body": "A body." } });
    gateway.query(CREATE_POST, input, &[bearer(&account.token), ("idempotency-key", key.to_owned())]).await
}

async fn count(pool: &sqlx::PgPool, table: &str) -> i64 {
    sqlx::query_scalar(&format!("select count(*) from {table}")).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_through_another_replica_gets_the_first_answer_and_has_one_effect() {
    let system = spawn_system().await;
    let second = spawn_gateway(&system.services, system.read_model.url(), |_| {}).await;
    wait_until_sharing(&[&system.gateway, &second]).await;
    let ada = system.gateway.register("ada").await;

    let first = create_post_with_key(&system.gateway, &ada, "post-1", "Once").await;
    assert!(first["errors"].is_null(), "{first}");
    // The client did not hear the answer and retries, through another replica.
    let retry = create_post_with_key(&second, &ada, "post-1", "Once").await;

    assert_eq!(retry["data"], first["data"], "the first answer: {retry}");
    assert_eq!(retry["extensions"]["consistencyToken"], first["extensions"]["consistencyToken"], "the same writes");
    assert!(retry["extensions"]["consistent"].is_null(), "read-your-writes holds for the retry: {retry}");
    assert_eq!((count(&system.services.post_db, "post").await, count(&system.services.post_db, "outbox").await), (1, 1));
    let points = || async {
        let read = second.query("query($id: ID!) { user(id: $id) { points postCount } }", json!({ "id": ada.id }), &[]).await;
        read["data"]["user"].clone()
    };
    wait_until(DEADLINE, "the points are awarded", || async { points().await["points"] == 10 }).await;
    assert_eq!(points().await, json!({ "points": 10, "postCount": 1 }), "awarded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_key_with_another_input_is_a_conflict() {
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    create_post_with_key(&system.gateway, &ada, "post-1", "Once").await;

    let other = create_post_with_key(&system.gateway, &ada, "post-1", "Another title").await;

    assert_eq!(error_code(&other), Some("CONFLICT"), "{other}");
    assert!(other["errors"][0]["message"].as_str().unwrap().contains("Idempotency-Key"), "a clear message: {other}");
    assert_eq!(count(&system.services.post_db, "post").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mutation_of_a_request_has_a_key_of_its_own() {
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    let two_posts =
        "mutation($input: CreatePostInput!) { a: createPost(input: $input) { id } b: createPost(input: $input) { id } }";
    let send = || async {
        let input = json!({ "input": { "title": "Twice", "body": "A body." } });
        system.gateway.query(two_posts, input, &[bearer(&ada.token), ("idempotency-key", "both".to_owned())]).await
    };

    let first = send().await;
    let retry = send().await;

    assert!(first["errors"].is_null(), "{first}");
    assert_ne!(first["data"]["a"]["id"], first["data"]["b"]["id"], "two commands, two posts");
    assert_eq!(retry["data"], first["data"]);
    assert_eq!(count(&system.services.post_db, "post").await, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_retried_with_its_key_is_the_same_account_and_a_malformed_key_is_bad_input() {
    let system = spawn_system().await;
    let register = "mutation($input: RegisterInput!) { register(input: $input) { token user { id username } } }";
    let input = json!({ "input": { "username": "ada", "password": agora_testkit::PASSWORD } });
    let key = ("idempotency-key", "register-ada".to_owned());

    let first = system.gateway.query(register, input.clone(), std::slice::from_ref(&key)).await;
    let retry = system.gateway.query(register, input.clone(), std::slice::from_ref(&key)).await;
    let malformed = system.gateway.query(register, input, &[("idempotency-key", "two words".to_owned())]).await;

    assert_eq!(retry["data"]["register"]["user"], first["data"]["register"]["user"], "{retry}");
    assert!(retry["data"]["register"]["token"].is_string());
    assert_eq!(error_code(&malformed), Some("BAD_USER_INPUT"), "{malformed}");
}
