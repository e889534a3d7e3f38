//! The hostile corpus (`agora_testkit::hostile`) against the real gateway,
//! over HTTP and over WebSocket: each document is refused with its exact
//! status and code, at once (the 2 s bound is only a hang guard: unlimited,
//! these took minutes or ended the process), and ordinary queries still
//! run and report their cost.

use std::time::{Duration, Instant};

use agora_testkit::hostile::{fragment_fan_out, gateway_corpus, HostileCase};
use agora_testkit::{http_client, DEADLINE};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::spawn_system;

const HANG_GUARD: Duration = Duration::from_secs(2);

/// POSTs a request asking for `application/graphql-response+json`: its status and body.
async fn post(port: u16, query: &str, variables: &Value) -> (u16, Value) {
    let response = http_client()
        .post(format!("http://127.0.0.1:{port}/graphql"))
        .header("accept", "application/graphql-response+json")
        .json(&json!({ "query": query, "variables": variables }))
        .send()
        .await
        .expect("the gateway answers");
    (response.status().as_u16(), response.json().await.expect("a JSON body"))
}

fn assert_refused(case: &HostileCase, error: &Value, elapsed: Duration, transport: &str) {
    assert!(elapsed < HANG_GUARD, "{transport} {}: took {elapsed:?}", case.name);
    assert_eq!(error["extensions"]["code"], case.code, "{transport} {}: {error}", case.name);
    if let Some(reason) = case.reason {
        assert_eq!(error["extensions"]["reason"], reason, "{transport} {}: {error}", case.name);
    }
    if case.is_measured() {
        assert!(error["extensions"]["cost"].as_u64().is_some(), "{transport} {}: {error}", case.name);
        assert!(error["extensions"]["limit"].as_u64().is_some(), "{transport} {}: {error}", case.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_refused_at_once_over_http() {
    let system = spawn_system().await;
    let port = system.gateway.port();
    for case in gateway_corpus() {
        let started = Instant::now();
        let (status, body) = post(port, &case.query, &case.variables).await;
        assert_eq!(status, 400, "{}: {body}", case.name);
        assert!(body.get("data").is_none(), "{}: {body}", case.name);
        assert_refused(&case, &body["errors"][0], started.elapsed(), "HTTP");
    }
    // A cycle is named by its path.
    let (_, body) =
        post(port, "{ ...A } fragment A on Query { me { ...B } } fragment B on User { posts { nodes { ...A } } }", &json!({}))
            .await;
    assert_eq!(body["errors"][0]["message"], "fragment A spreads itself: A -> B -> A", "{body}");
    // The gateway still answers, and an accepted query reports its cost.
    let (status, body) = post(port, "{ posts(first: 5) { nodes { id } } }", &json!({})).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["extensions"]["cost"], 1 + 5 * 2, "{body}");
    let (_, body) = post(port, "query($n: Int) { leaderboard(first: $n) { id } }", &json!({ "n": 3 })).await;
    assert_eq!(body["extensions"]["cost"], 1 + 3, "{body}");
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(port: u16) -> Socket {
    let mut request = format!("ws://127.0.0.1:{port}/graphql").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
    socket.send(Message::text(json!({ "type": "connection_init" }).to_string())).await.unwrap();
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    socket
}

async fn receive(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(DEADLINE, socket.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn subscribe(socket: &mut Socket, id: &str, query: &str, variables: &Value) {
    let message = json!({ "type": "subscribe", "id": id, "payload": { "query": query, "variables": variables } });
    socket.send(Message::text(message.to_string())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_documents_are_refused_at_once_over_websocket() {
    let system = spawn_system().await;
    let mut socket = connect(system.gateway.port()).await;
    let mut corpus = gateway_corpus();
    // Subscriptions are shared executions: checked before the shared lock is taken.
    corpus.push(HostileCase {
        name: "subscription fragment fan-out",
        query: format!(
            "subscription {{ postCreated {{ ...F0 }} }}{}",
            fragment_fan_out("query", "Post", "id", 8).trim_start_matches("query { ...F0 }")
        ),
        variables: json!({}),
        code: "QUERY_TOO_COMPLEX",
        reason: Some("size"),
    });
    corpus.push(HostileCase {
        name: "subscription with 41 aliases",
        query: format!("subscription {{ postCreated {{ {} }} }}", (0..41).map(|n| format!("a{n}: id ")).collect::<String>()),
        variables: json!({}),
        code: "QUERY_TOO_COMPLEX",
        reason: Some("aliases"),
    });
    for (index, case) in corpus.iter().enumerate() {
        let id = index.to_string();
        let started = Instant::now();
        subscribe(&mut socket, &id, &case.query, &case.variables).await;
        let message = receive(&mut socket).await;
        assert_eq!(message["type"], "error", "{}: {message}", case.name);
        assert_eq!(message["id"], id.as_str(), "{}: {message}", case.name);
        assert_refused(case, &message["payload"][0], started.elapsed(), "WebSocket");
    }
    // The connection (and the shared executions) still serve.
    subscribe(&mut socket, "ordinary", "{ posts(first: 5) { nodes { id } } }", &json!({})).await;
    let message = receive(&mut socket).await;
    assert_eq!(message["type"], "next", "{message}");
    assert!(message["payload"]["errors"].is_null(), "{message}");
    assert_eq!(message["payload"]["extensions"]["cost"], 11, "{message}");
}

/// The largest documents the limits let through (1,000 fields once
/// expanded) are what async-graphql's own validation rules then walk
/// (OverlappingFieldsCanBeMerged compares same-named fields pairwise): they
/// stay quick. The times are printed (`--nocapture`) for the record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_largest_documents_within_the_limits_are_validated_quickly() {
    let system = spawn_system().await;
    let port = system.gateway.port();
    let same_name = format!("{{ {} }}", "__typename ".repeat(999));
    let fan_out = fragment_fan_out("query", "Query", "__typename", 3);
    let nested_fan_out = format!(
        "{{ posts(first: 1) {{ nodes {{ ...F0 }} }} }}{}",
        fragment_fan_out("query", "Post", "id", 2)
            .trim_start_matches("query { ...F0 }")
            .replace("{ id }", "{ id author { id displayName } title body }")
    );
    for (name, query) in
        [("999 same-named fields", same_name), ("fan-out to 1,000 fields", fan_out), ("fan-out of objects", nested_fan_out)]
    {
        let started = Instant::now();
        let (status, body) = post(port, &query, &json!({})).await;
        let elapsed = started.elapsed();
        println!("{name}: {elapsed:?}");
        assert_eq!(status, 200, "{name}: {body}");
        assert!(body["errors"].is_null(), "{name}: {body}");
        assert!(elapsed < HANG_GUARD, "{name}: took {elapsed:?}");
    }
}
