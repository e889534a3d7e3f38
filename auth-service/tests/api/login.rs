//! Logging in, and the throttling that makes guessing passwords slow.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp, LOGIN, ME};

async fn login(app: &TestApp, username: &str, password: &str) -> Value {
    app.graphql(LOGIN, json!({ "input": { "username": username, "password": password } }), None).await
}

/// A login attempt as if from `client`, relayed by a proxy on loopback.
async fn login_from(app: &TestApp, client: &str, username: &str) -> Value {
    let variables = json!({ "input": { "username": username, "password": "wrong password" } });
    app.graphql_with_headers(LOGIN, variables, None, &[("x-forwarded-for", client)]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_user_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    app.register("ada", "correct horse").await;

    let unknown = login(&app, "nobody", "correct horse").await;
    let wrong = login(&app, "ada", "wrong password").await;

    assert_eq!(error_code(&unknown), Some("UNAUTHENTICATED"), "{unknown}");
    assert_eq!(error_code(&wrong), Some("UNAUTHENTICATED"), "{wrong}");
    assert_eq!(unknown["errors"][0]["message"], wrong["errors"][0]["message"]);
    assert!(unknown["data"].is_null() && wrong["data"].is_null());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logging_in_returns_a_token_that_me_accepts() {
    let app = spawn_app().await;
    let (_, id) = app.register("ada", "correct horse").await;

    let response = login(&app, "ada", "correct horse").await;

    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(response["data"]["login"]["user"]["id"], id.to_string());
    let token = response["data"]["login"]["token"].as_str().expect("a token");
    let me = app.graphql(ME, json!({}), Some(token)).await;
    assert_eq!(me["data"]["me"]["id"], id.to_string(), "{me}");
    assert_eq!(me["data"]["me"]["username"], "ada");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_the_budget_of_a_username_are_rate_limited() {
    let app = spawn_app_with(&["--login-attempts-per-username", "2"]).await;
    app.register("ada", "correct horse").await;

    for _ in 0..2 {
        assert_eq!(error_code(&login(&app, "ada", "wrong password").await), Some("UNAUTHENTICATED"));
    }
    // Past the budget even the right password is refused.
    let limited = login(&app, "ada", "correct horse").await;

    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert!(limited["errors"][0]["extensions"]["retryAfter"].as_u64().is_some_and(|seconds| seconds >= 1), "{limited}");
    let other = login(&app, "bob", "wrong password").await;
    assert_eq!(error_code(&other), Some("UNAUTHENTICATED"), "another username has a budget of its own: {other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_the_budget_of_a_client_address_are_rate_limited_across_usernames() {
    let app = spawn_app_with(&["--login-attempts-per-address", "2"]).await;

    assert_eq!(error_code(&login_from(&app, "203.0.113.7", "user_one").await), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&login_from(&app, "203.0.113.7", "user_two").await), Some("UNAUTHENTICATED"));
    let limited = login_from(&app, "203.0.113.7", "user_three").await;

    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    let elsewhere = login_from(&app, "203.0.113.8", "user_three").await;
    assert_eq!(error_code(&elsewhere), Some("UNAUTHENTICATED"), "another client has a budget of its own: {elsewhere}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_escape_the_address_budget_with_x_forwarded_for() {
    let app = spawn_app_with(&["--login-attempts-per-address", "2", "--trusted-proxies", "192.0.2.1"]).await;

    assert_eq!(error_code(&login_from(&app, "203.0.113.1", "user_one").await), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&login_from(&app, "203.0.113.2", "user_two").await), Some("UNAUTHENTICATED"));
    let limited = login_from(&app, "203.0.113.3", "user_three").await;

    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "the header of an untrusted peer is ignored: {limited}");
}
