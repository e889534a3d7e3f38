//! `register` and `renameUser` with an `Idempotency-Key`: a retry gets the
//! first answer (a fresh token for the same user) and changes nothing more;
//! the same key with another input is a CONFLICT.

use serde_json::json;

use crate::helpers::{error_code, spawn_app, REGISTER, RENAME};

const PASSWORD: &str = "correct horse";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_retried_with_its_key_gets_the_first_user_and_registers_once() {
    let app = spawn_app().await;
    let input = json!({ "input": { "username": "ada", "password": PASSWORD } });
    let key = [("idempotency-key", "register-ada")];

    let first = app.graphql_with_headers(REGISTER, input.clone(), None, &key).await;
    let retry = app.graphql_with_headers(REGISTER, input, None, &key).await;

    assert!(first["errors"].is_null() && retry["errors"].is_null(), "{first} {retry}");
    assert_eq!(retry["data"]["register"]["user"], first["data"]["register"]["user"]);
    assert_eq!(retry["extensions"]["writes"], first["extensions"]["writes"]);
    let token = retry["data"]["register"]["token"].as_str().unwrap();
    let me = app.graphql("{ me { id } }", json!({}), Some(token)).await;
    assert_eq!(me["data"]["me"]["id"], first["data"]["register"]["user"]["id"], "the retry's token is the user's");
    assert_eq!((app.count_rows("app_user").await, app.count_rows("outbox").await), (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_register_key_reused_with_another_input_or_password_is_a_conflict() {
    let app = spawn_app().await;
    let key = [("idempotency-key", "register-ada")];
    app.graphql_with_headers(REGISTER, json!({ "input": { "username": "ada", "password": PASSWORD } }), None, &key).await;

    let other_name =
        app.graphql_with_headers(REGISTER, json!({ "input": { "username": "bob", "password": PASSWORD } }), None, &key).await;
    let other_password = app
        .graphql_with_headers(REGISTER, json!({ "input": { "username": "ada", "password": "another password" } }), None, &key)
        .await;

    assert_eq!(error_code(&other_name), Some("CONFLICT"), "{other_name}");
    assert!(other_name["errors"][0]["message"].as_str().unwrap().contains("Idempotency-Key"), "{other_name}");
    assert_eq!(error_code(&other_password), Some("CONFLICT"), "no token without the first password: {other_password}");
    assert!(other_password["data"].is_null());
    assert_eq!(app.count_rows("app_user").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rename_retried_with_its_key_is_applied_once() {
    let app = spawn_app().await;
    let (token, _) = app.register("ada", PASSWORD).await;
    let key = [("idempotency-key", "rename-1")];

    let first = app.graphql_with_headers(RENAME, json!({ "name": "Ada" }), Some(&token), &key).await;
    // Renamed again in between, without a key: the retry must not undo it.
    app.graphql(RENAME, json!({ "name": "Countess" }), Some(&token)).await;
    let retry = app.graphql_with_headers(RENAME, json!({ "name": "Ada" }), Some(&token), &key).await;

    assert_eq!(retry["data"], first["data"], "{retry}");
    assert_eq!(retry["extensions"]["writes"], first["extensions"]["writes"]);
    let me = app.graphql("{ me { displayName } }", json!({}), Some(&token)).await;
    assert_eq!(me["data"]["me"]["displayName"], "Countess");
    // Registered, renamed twice.
    assert_eq!(app.count_rows("outbox").await, 3);

    let conflict = app.graphql_with_headers(RENAME, json!({ "name": "Someone" }), Some(&token), &key).await;
    assert_eq!(error_code(&conflict), Some("CONFLICT"), "{conflict}");
}
