//! What one request may ask: depth, aliases, complexity, page size, body size.

use agora_testkit::{error_code, http_client};
use serde_json::json;

use crate::helpers::{spawn_system, strategy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_beyond_the_limits_are_refused_with_query_too_complex() {
    let system = spawn_system().await;
    let gateway = &system.gateway;

    let mut deep = "id".to_owned();
    for _ in 0..6 {
        deep = format!("posts {{ nodes {{ author {{ {deep} }} }} }}");
    }
    let response = gateway.query(&format!("{{ {deep} }}"), json!({}), &[]).await;
    assert_eq!(error_code(&response), Some("QUERY_TOO_COMPLEX"), "{response}");

    let aliases: String = (0..31).map(|n| format!("a{n}: posts {{ nodes {{ id }} }} ")).collect();
    let response = gateway.query(&format!("{{ {aliases} }}"), json!({}), &[]).await;
    assert_eq!(error_code(&response), Some("QUERY_TOO_COMPLEX"), "{response}");

    let within = gateway.query("{ a: posts { nodes { id } } b: leaderboard { id } }", json!({}), &[]).await;
    assert!(within["errors"].is_null(), "{within}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_arguments_and_headers_are_bad_user_input() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    for query in [
        "{ posts(first: 101) { nodes { id } } }",
        "{ posts(first: -1) { nodes { id } } }",
        "{ posts(after: \"nope\") { nodes { id } } }",
        "{ leaderboard(first: 1000) { id } }",
    ] {
        let response = gateway.query(query, json!({}), &[]).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{query}: {response}");
    }
    let response = gateway.query("{ posts { nodes { id } } }", json!({}), &[strategy("telepathy")]).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
    let response = gateway.query("{ nope }", json!({}), &[]).await;
    assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_over_the_limit_is_refused_with_413() {
    let system = spawn_system().await;
    let huge = format!("{{ posts {{ nodes {{ id }} }} }} # {}", "x".repeat(300 * 1024));
    let response = http_client()
        .post(format!("http://127.0.0.1:{}/graphql", system.gateway.port()))
        .json(&json!({ "query": huge }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
}
