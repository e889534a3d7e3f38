//! The composition strategy: what it costs in calls to the services, and
//! what a client gets when a service is down or slow.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::{composition, spawn_gateway_with_auth_at, spawn_system, Account, TestGateway, TestSystem};

/// A system with three authors and seven posts ("post 0" to "post 6"), ada's newest.
async fn system_with_posts() -> (TestSystem, Vec<Account>) {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let authors = vec![gateway.register("ada").await, gateway.register("bob").await, gateway.register("cyd").await];
    for n in 0..7 {
        let created = gateway.create_post(&authors[n % 3], &format!("post {n}")).await;
        assert!(created["errors"].is_null(), "{created}");
    }
    (system, authors)
}

async fn composed(gateway: &TestGateway, query: &str) -> Value {
    let response = gateway.query(query, json!({}), &[composition()]).await;
    assert_eq!(response["extensions"]["strategy"], "composition", "{response}");
    response
}

fn upstream_requests(response: &Value) -> u64 {
    response["extensions"]["upstreamRequests"].as_u64().unwrap_or_else(|| panic!("no upstreamRequests in {response}"))
}

/// Each error's path and code, by path.
fn paths_and_codes(response: &Value) -> Vec<(Value, Value)> {
    let errors = response["errors"].as_array().unwrap_or_else(|| panic!("no errors in {response}"));
    let mut errors: Vec<(Value, Value)> =
        errors.iter().map(|error| (error["path"].clone(), error["extensions"]["code"].clone())).collect();
    errors.sort_by_key(|(path, _)| path.to_string());
    errors
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_with_authors_cost_one_call_per_service_whatever_the_page_size() {
    let (system, _) = system_with_posts().await;
    let gateway = &system.gateway;
    for first in [1, 2, 5, 7, 20, 100] {
        let query = format!("{{ posts(first: {first}) {{ edges {{ node {{ title author {{ displayName }} }} }} }} }}");
        let response = composed(gateway, &query).await;
        assert!(response["errors"].is_null(), "{response}");
        assert_eq!(response["data"]["posts"]["edges"].as_array().unwrap().len(), first.min(7));
        // One page from post-service, one batch of authors from auth-service.
        assert_eq!(upstream_requests(&response), 2, "first: {first}: {response}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_level_of_a_deep_query_costs_one_call_per_service() {
    let (system, _) = system_with_posts().await;
    let gateway = &system.gateway;
    for (outer, inner) in [(1, 1), (3, 2), (7, 5), (20, 20)] {
        let query = format!(
            "{{ posts(first: {outer}) {{ nodes {{ title author {{ username posts(first: {inner}) {{ nodes {{ title author {{ displayName }} }} }} }} }} }} }}"
        );
        let response = composed(gateway, &query).await;
        assert!(response["errors"].is_null(), "{response}");
        // posts (post-service), authors (auth), their posts (post-service), those posts' authors (auth).
        assert_eq!(upstream_requests(&response), 4, "{outer}/{inner}: {response}");
    }
    // Two lookups at the same level go out side by side, one call each: the
    // authors' post counts and their pages (two loaders over post-service).
    let query = "{ posts(first: 7) { nodes { author { postCount posts(first: 2) { nodes { id } } } } } }";
    let response = composed(gateway, query).await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(upstream_requests(&response), 4, "{response}");
    // Root fields of two services: one call each.
    let response = composed(gateway, "{ posts(first: 3) { nodes { id } } leaderboard { username } }").await;
    assert_eq!(upstream_requests(&response), 2, "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_auth_service_down_posts_still_come_with_errors_on_their_authors() {
    let (mut system, _) = system_with_posts().await;
    let newest = system.gateway.query("{ posts(first: 2) { nodes { id } } }", json!({}), &[]).await;
    let ids: Vec<String> =
        newest["data"]["posts"]["nodes"].as_array().unwrap().iter().map(|node| node["id"].as_str().unwrap().to_owned()).collect();
    system.services.auth.stop().await;
    let gateway = &system.gateway;

    let query = format!(
        "{{ posts(first: 3) {{ nodes {{ title }} }} a: post(id: \"{}\") {{ title author {{ displayName }} }} b: post(id: \"{}\") {{ title author {{ displayName }} }} }}",
        ids[0], ids[1]
    );
    let response = composed(gateway, &query).await;
    assert_eq!(
        response["data"]["posts"]["nodes"],
        json!([{ "title": "post 6" }, { "title": "post 5" }, { "title": "post 4" }]),
        "{response}"
    );
    // Each post comes with its title and without its author. (async-graphql
    // leaves the failed non-null field out rather than nulling its parent.)
    for (alias, title) in [("a", "post 6"), ("b", "post 5")] {
        assert_eq!(response["data"][alias]["title"], title, "{response}");
        assert!(response["data"][alias]["author"].is_null(), "{response}");
    }
    assert_eq!(
        paths_and_codes(&response),
        [(json!(["a", "author"]), json!("UPSTREAM_UNAVAILABLE")), (json!(["b", "author"]), json!("UPSTREAM_UNAVAILABLE"))],
        "{response}"
    );
    // Both posts' authors were asked in one batch.
    assert_eq!(upstream_requests(&response), 3, "{response}");

    // The same for a page of posts: titles, and an error on each author.
    let response = composed(gateway, "{ posts(first: 3) { edges { node { title author { displayName } } } } }").await;
    let titles: Vec<&Value> =
        response["data"]["posts"]["edges"].as_array().unwrap().iter().map(|edge| &edge["node"]["title"]).collect();
    assert_eq!(titles, [&json!("post 6"), &json!("post 5"), &json!("post 4")], "{response}");
    let expected: Vec<(Value, Value)> =
        (0..3).map(|n| (json!(["posts", "edges", n, "node", "author"]), json!("UPSTREAM_UNAVAILABLE"))).collect();
    assert_eq!(paths_and_codes(&response), expected, "{response}");
    assert_eq!(upstream_requests(&response), 2, "{response}");

    // The read model answers without asking anyone.
    let response = gateway.query("{ posts(first: 1) { nodes { title author { displayName } } } }", json!({}), &[]).await;
    assert_eq!(
        response["data"]["posts"]["nodes"],
        json!([{ "title": "post 6" , "author": { "displayName": "ada" } }]),
        "{response}"
    );
    assert_eq!(upstream_requests(&response), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_does_not_answer_in_time_is_a_timeout_on_its_fields() {
    let (system, _) = system_with_posts().await;
    // A listener that accepts connections and never answers.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = silent.accept().await {
            held.push(connection);
        }
    });
    let slow =
        spawn_gateway_with_auth_at(&system, silent_port, |config| config.upstream_timeout = Duration::from_millis(300)).await;
    let response =
        composed(&slow, "{ posts(first: 2) { nodes { title } } user(id: \"0190a000-0000-7000-8000-000000000000\") { id } }")
            .await;
    assert_eq!(response["data"]["posts"]["nodes"], json!([{ "title": "post 6" }, { "title": "post 5" }]), "{response}");
    assert_eq!(response["data"]["user"], Value::Null, "{response}");
    assert_eq!(response["errors"][0]["path"], json!(["user"]), "{response}");
    assert_eq!(response["errors"][0]["extensions"]["code"], "TIMEOUT", "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_queries_in_flight_together_share_one_call() {
    let (system, _) = system_with_posts().await;
    // A slow auth-service: a proxy that counts the calls and answers each
    // after 300 ms, so that concurrent requests overlap.
    let calls = Arc::new(AtomicUsize::new(0));
    let auth_url = format!("http://127.0.0.1:{}/graphql", system.services.auth.port);
    let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy_port = proxy.local_addr().unwrap().port();
    let counted = calls.clone();
    let app = axum::Router::new().route(
        "/graphql",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: axum::body::Bytes| {
            let (calls, auth_url) = (counted.clone(), auth_url.clone());
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut request = reqwest::Client::new().post(auth_url).header("content-type", "application/json").body(body);
                if let Some(authorization) = headers.get("authorization") {
                    request = request.header("authorization", authorization);
                }
                let answer = request.send().await.unwrap().bytes().await.unwrap();
                ([("content-type", "application/json")], answer)
            }
        }),
    );
    tokio::spawn(async move { axum::serve(proxy, app).await });
    let gateway = spawn_gateway_with_auth_at(&system, proxy_port, |_| {}).await;

    let query = "{ posts(first: 3) { nodes { title author { username } } } }";
    let answers = futures::future::join_all((0..10).map(|_| composed(&gateway, query))).await;
    let expected = json!([
        { "title": "post 6", "author": { "username": "ada" } },
        { "title": "post 5", "author": { "username": "cyd" } },
        { "title": "post 4", "author": { "username": "bob" } },
    ]);
    for answer in &answers {
        assert_eq!(answer["data"]["posts"]["nodes"], expected, "{answer}");
        // Each request still needed its two calls.
        assert_eq!(upstream_requests(answer), 2, "{answer}");
    }
    let sent = calls.load(Ordering::SeqCst);
    assert!((1..10).contains(&sent), "10 identical requests in flight together sent {sent} calls to auth-service");
}
