//! Logging in, and the throttling that makes guessing passwords slow.

use std::net::{IpAddr, Ipv4Addr};

use agora_auth_service::Config;
use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_app, spawn_app_with, TestApp, LOGIN, ME, REGISTER};

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

/// Settings that make the test's loopback connection a trusted proxy, so
/// that `X-Forwarded-For` names the client, with the given budgets.
fn behind_a_proxy(budgets: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    |config| {
        config.trusted_proxies = vec![Ipv4Addr::LOCALHOST.into()];
        budgets(config);
    }
}

async fn login_as(app: &TestApp, client: &str, username: &str, password: &str) -> Value {
    let variables = json!({ "input": { "username": username, "password": password } });
    app.graphql_with_headers(LOGIN, variables, None, &[("x-forwarded-for", client)]).await
}

fn retry_after(response: &Value) -> Option<u64> {
    response["errors"][0]["extensions"]["retryAfter"].as_u64()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_guessing_one_password_is_slowed_but_the_owner_elsewhere_is_not() {
    let app = spawn_app_with(behind_a_proxy(|config| config.login_attempts_per_username_and_address = 2)).await;
    app.register("ada", "correct horse").await;

    for _ in 0..2 {
        assert_eq!(error_code(&login_from(&app, "203.0.113.7", "ada").await), Some("UNAUTHENTICATED"));
    }
    let limited = login_as(&app, "203.0.113.7", "ada", "correct horse").await;
    let owner = login_as(&app, "198.51.100.1", "ada", "correct horse").await;

    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert!(retry_after(&limited).is_some_and(|seconds| seconds >= 1), "{limited}");
    assert!(owner["errors"].is_null(), "the owner, from another address, logs in: {owner}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_passwords_from_everywhere_cannot_lock_the_owner_out() {
    let app = spawn_app_with(behind_a_proxy(|config| config.login_failures_per_username = 2)).await;
    app.register("ada", "correct horse").await;

    assert_eq!(error_code(&login_from(&app, "203.0.113.1", "ada").await), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&login_from(&app, "203.0.113.2", "ada").await), Some("UNAUTHENTICATED"));
    let third = login_from(&app, "203.0.113.3", "ada").await;
    let owner = login_as(&app, "203.0.113.4", "ada", "correct horse").await;

    assert_eq!(error_code(&third), Some("RATE_LIMITED"), "the username's failures are spent: {third}");
    assert!(retry_after(&third).is_some(), "{third}");
    assert!(owner["errors"].is_null(), "a correct password still logs in: {owner}");
    let other = login_from(&app, "203.0.113.3", "bob").await;
    assert_eq!(error_code(&other), Some("UNAUTHENTICATED"), "another username has a budget of its own: {other}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logins_past_the_budget_of_a_client_address_are_rate_limited_across_usernames() {
    let app = spawn_app_with(behind_a_proxy(|config| config.login_attempts_per_address = 2)).await;

    assert_eq!(error_code(&login_from(&app, "203.0.113.7", "user_one").await), Some("UNAUTHENTICATED"));
    assert_eq!(error_code(&login_from(&app, "203.0.113.7", "user_two").await), Some("UNAUTHENTICATED"));
    let limited = login_from(&app, "203.0.113.7", "user_three").await;

    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    let elsewhere = login_from(&app, "203.0.113.8", "user_three").await;
    assert_eq!(error_code(&elsewhere), Some("UNAUTHENTICATED"), "another client has a budget of its own: {elsewhere}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_escape_the_address_budget_with_x_forwarded_for() {
    let elsewhere: IpAddr = Ipv4Addr::new(192, 0, 2, 1).into();
    for trusted_proxies in [vec![elsewhere], vec![]] {
        let app = spawn_app_with(|config| {
            config.login_attempts_per_address = 2;
            config.trusted_proxies = trusted_proxies.clone();
        })
        .await;

        assert_eq!(error_code(&login_from(&app, "203.0.113.1", "user_one").await), Some("UNAUTHENTICATED"));
        assert_eq!(error_code(&login_from(&app, "203.0.113.2", "user_two").await), Some("UNAUTHENTICATED"));
        let limited = login_from(&app, "203.0.113.3", "user_three").await;

        assert_eq!(
            error_code(&limited),
            Some("RATE_LIMITED"),
            "the header of an untrusted peer is ignored (trusted proxies: {trusted_proxies:?}): {limited}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_answer_carries_retry_after() {
    let app = spawn_app_with(|config| config.login_attempts_per_address = 1).await;
    login(&app, "ada", "wrong password").await;

    let response = agora_testkit::http_client()
        .post(format!("http://127.0.0.1:{}/graphql", app.port()))
        .json(&json!({ "query": LOGIN, "variables": { "input": { "username": "ada", "password": "wrong password" } } }))
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    let header: u64 = response.headers()["retry-after"].to_str().unwrap().parse().unwrap();
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_code(&body), Some("RATE_LIMITED"));
    assert_eq!(retry_after(&body), Some(header), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_past_the_budget_of_an_address_are_rate_limited_and_write_nothing() {
    let app = spawn_app_with(|config| config.registrations_per_address = 1).await;
    app.register("ada", "correct horse").await;

    let variables = json!({ "input": { "username": "bob", "password": "correct horse" } });
    let limited = app.graphql(REGISTER, variables, None).await;

    assert_eq!(error_code(&limited), Some("RATE_LIMITED"), "{limited}");
    assert!(retry_after(&limited).is_some_and(|seconds| seconds > 1), "{limited}");
    assert_eq!(app.count_rows("app_user").await, 1);
}
