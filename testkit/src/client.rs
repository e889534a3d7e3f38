//! A small GraphQL-over-HTTP client and condition polling.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// One client per call: a client's pooled connections belong to the
/// runtime that opened them, and every test has a runtime of its own.
pub fn http_client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("an HTTP client")
}

/// Sends a GraphQL request to the service on `port`; the whole response.
pub async fn graphql(port: u16, query: &str, variables: Value, token: Option<&str>) -> Value {
    let headers: Vec<(&str, String)> = token.map(|token| ("authorization", format!("Bearer {token}"))).into_iter().collect();
    graphql_with_headers(port, query, variables, &headers).await
}

/// The same with any headers (strategy, consistency token, …).
pub async fn graphql_with_headers(port: u16, query: &str, variables: Value, headers: &[(&str, String)]) -> Value {
    graphql_with_status(port, query, variables, headers).await.1
}

/// The same, and the response's HTTP status.
pub async fn graphql_with_status(
    port: u16,
    query: &str,
    variables: Value,
    headers: &[(&str, String)],
) -> (reqwest::StatusCode, Value) {
    let mut request = http_client()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .header("accept", "application/json")
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("the service answers");
    let status = response.status();
    (status, response.json().await.expect("a JSON response"))
}

/// A GET of `path` (`/healthz`) from the service on `port`.
pub async fn get(port: u16, path: &str) -> reqwest::Response {
    http_client().get(format!("http://127.0.0.1:{port}{path}")).send().await.expect("the service answers")
}

/// The code of the response's first error, if it has one.
pub fn error_code(response: &Value) -> Option<&str> {
    response["errors"][0]["extensions"]["code"].as_str()
}

/// Polls `condition` until it holds; fails the test, saying `what` it was
/// waiting for, once `timeout` has passed.
pub async fn wait_until<F, Fut>(timeout: Duration, what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !condition().await {
        assert!(Instant::now() < deadline, "{what}: still not true after {timeout:?}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
