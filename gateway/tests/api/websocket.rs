//! The WebSocket protocol's rules, with a raw client: handshake timeout,
//! unauthorised and duplicate subscriptions, bad tokens, keep-alive, the
//! sharing of one operation by its subscribers, and the dropping of a
//! subscriber that does not keep up.

use std::time::Duration;

use agora_testkit::DEADLINE;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::helpers::{spawn_lone_gateway_with, spawn_system, spawn_system_with};

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(port: u16, protocol: &str) -> Socket {
    let mut request = format!("ws://127.0.0.1:{port}/graphql").into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", protocol.parse().unwrap());
    let (socket, response) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    socket
}

async fn send(socket: &mut Socket, message: Value) {
    socket.send(Message::text(message.to_string())).await.unwrap();
}

/// The next text message, as JSON.
async fn receive(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(DEADLINE, socket.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

/// Reads until the server closes the connection; its close code.
async fn close_code(socket: &mut Socket) -> Option<u16> {
    loop {
        match tokio::time::timeout(DEADLINE, socket.next()).await.expect("the server closes in time") {
            Some(Ok(Message::Close(frame))) => return frame.map(|frame| frame.code.into()),
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => return None,
        }
    }
}

fn subscribe(id: &str) -> Value {
    json!({ "type": "subscribe", "id": id, "payload": { "query": "subscription { postCreated { title } }" } })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_handshake_rules_of_graphql_transport_ws_are_kept() {
    let system = spawn_system_with(|config| config.ws_init_timeout = Duration::from_millis(300)).await;
    let port = system.gateway.port();

    let mut silent = connect(port, "graphql-transport-ws").await;
    assert_eq!(close_code(&mut silent).await, Some(4408), "no connection_init in time");

    let mut hasty = connect(port, "graphql-transport-ws").await;
    send(&mut hasty, subscribe("1")).await;
    assert_eq!(close_code(&mut hasty).await, Some(4401), "subscribe before the ack");

    let mut forger = connect(port, "graphql-transport-ws").await;
    send(&mut forger, json!({ "type": "connection_init", "payload": { "authorization": "Bearer forged.token.here" } })).await;
    assert_eq!(close_code(&mut forger).await, Some(4403), "a token that does not verify");

    let mut doubled = connect(port, "graphql-transport-ws").await;
    send(&mut doubled, json!({ "type": "connection_init" })).await;
    assert_eq!(receive(&mut doubled).await["type"], "connection_ack");
    send(&mut doubled, json!({ "type": "ping" })).await;
    assert_eq!(receive(&mut doubled).await["type"], "pong");
    send(&mut doubled, subscribe("1")).await;
    send(&mut doubled, subscribe("1")).await;
    assert_eq!(close_code(&mut doubled).await, Some(4409), "a second subscriber with the same id");

    let mut garbled = connect(port, "graphql-transport-ws").await;
    send(&mut garbled, json!({ "type": "connection_init" })).await;
    receive(&mut garbled).await;
    send(&mut garbled, json!({ "type": "nonsense" })).await;
    assert_eq!(close_code(&mut garbled).await, Some(4400), "an unknown message");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_subscription_ends_and_the_server_keeps_the_connection_alive() {
    let system = spawn_system_with(|config| config.ws_keep_alive = Duration::from_millis(100)).await;
    let mut socket = connect(system.gateway.port(), "graphql-transport-ws").await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    assert_eq!(receive(&mut socket).await["type"], "ping", "the server pings an idle connection");
    send(&mut socket, json!({ "type": "subscribe", "id": "q", "payload": { "query": "{ posts { nodes { id } } }" } })).await;
    let mut seen = Vec::new();
    while seen.len() < 2 {
        let message = receive(&mut socket).await;
        if message["type"] != "ping" {
            seen.push(message);
        }
    }
    assert_eq!(seen[0]["type"], "next");
    assert_eq!(seen[0]["payload"]["data"], json!({ "posts": { "nodes": [] } }));
    assert_eq!(seen[1], json!({ "type": "complete", "id": "q" }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_does_not_read_is_dropped_and_the_others_keep_up() {
    let system = spawn_lone_gateway_with(|config| {
        config.live_buffer_events = 64;
        config.ws_send_timeout = Duration::from_millis(300);
    })
    .await;
    let port = system.gateway.port();
    let mut stalled = connect(port, "graphql-transport-ws").await;
    send(&mut stalled, json!({ "type": "connection_init" })).await;
    assert_eq!(receive(&mut stalled).await["type"], "connection_ack");
    send(
        &mut stalled,
        json!({ "type": "subscribe", "id": "s", "payload": { "query": "subscription { postCreated { title body } }" } }),
    )
    .await;
    let mut keeping_up = crate::node::Subscriber::start(
        port,
        json!({ "subscriptions": [{ "id": "posts", "query": "subscription { postCreated { title } }" }] }),
    )
    .await;

    let posts = crate::events::flood_of_posts(&system.kafka.settings(), 400, 20_000).await;
    eprintln!("published {posts} posts");
    keeping_up.wait_for("every post", |received| received.iter().filter(|line| !line["data"].is_null()).count() == posts).await;

    // Only now does the stalled client read: what was buffered, then the end.
    let mut delivered = 0;
    let ended = loop {
        match tokio::time::timeout(DEADLINE, stalled.next()).await.expect("the connection ends in time") {
            Some(Ok(Message::Text(_))) => delivered += 1,
            Some(Ok(Message::Close(frame))) => break frame.map(|frame| u16::from(frame.code)),
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break None,
        }
    };
    assert!(delivered < posts, "the stalled subscriber got all {posts} posts: it was never dropped");
    assert!(matches!(ended, Some(1008) | None), "closed with {ended:?}");
}

/// A connection past `connection_ack`.
async fn initialised(port: u16) -> Socket {
    let mut socket = connect(port, "graphql-transport-ws").await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    socket
}

/// Messages are handled in order: once the pong is back, what was sent before it is done.
async fn handled(socket: &mut Socket) {
    send(socket, json!({ "type": "ping" })).await;
    assert_eq!(receive(socket).await, json!({ "type": "pong" }));
}

/// The title of the next post pushed to subscription `id`.
async fn next_title(socket: &mut Socket, id: &str) -> Value {
    let message = receive(socket).await;
    assert_eq!((&message["type"], &message["id"]), (&json!("next"), &json!(id)), "{message}");
    message["payload"]["data"]["postCreated"]["title"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_of_one_operation_share_it_and_come_and_go_on_their_own() {
    let system = spawn_system().await;
    let ada = system.gateway.register("ada").await;
    let port = system.gateway.port();
    let mut first = initialised(port).await;
    let mut second = initialised(port).await;
    send(&mut first, subscribe("a")).await;
    send(&mut second, subscribe("b")).await;
    let by_author = "subscription($id: ID) { postCreated(authorId: $id) { title } }";
    send(
        &mut second,
        json!({ "type": "subscribe", "id": "bad", "payload": { "query": by_author, "variables": { "id": "nope" } } }),
    )
    .await;
    let refused = receive(&mut second).await;
    assert_eq!((&refused["type"], &refused["id"]), (&json!("error"), &json!("bad")), "{refused}");
    handled(&mut first).await;
    handled(&mut second).await;

    system.gateway.create_post(&ada, "one").await;
    assert_eq!(next_title(&mut first, "a").await, "one");
    assert_eq!(next_title(&mut second, "b").await, "one");

    // One subscriber leaves: the other goes on.
    send(&mut first, json!({ "type": "complete", "id": "a" })).await;
    handled(&mut first).await;
    system.gateway.create_post(&ada, "two").await;
    assert_eq!(next_title(&mut second, "b").await, "two");

    // All have left: a new subscriber of the operation gets what follows.
    drop(second);
    send(&mut first, subscribe("c")).await;
    handled(&mut first).await;
    system.gateway.create_post(&ada, "three").await;
    assert_eq!(next_title(&mut first, "c").await, "three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gateway_that_shuts_down_closes_its_sockets_with_going_away() {
    let mut system = spawn_system().await;
    let mut socket = connect(system.gateway.port(), "graphql-transport-ws").await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(receive(&mut socket).await["type"], "connection_ack");
    send(&mut socket, subscribe("1")).await;
    let (_, closed) = tokio::join!(system.gateway.service.stop(), close_code(&mut socket));
    assert_eq!(closed, Some(1001));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_metrics_are_exported() {
    let system = spawn_system().await;
    let mut socket = connect(system.gateway.port(), "graphql-transport-ws").await;
    send(&mut socket, json!({ "type": "connection_init" })).await;
    receive(&mut socket).await;
    send(&mut socket, subscribe("1")).await;
    let metrics_url = format!("http://127.0.0.1:{}/metrics", system.gateway.metrics_port);
    let public =
        agora_testkit::http_client().get(format!("http://127.0.0.1:{}/metrics", system.gateway.port())).send().await.unwrap();
    assert_eq!(public.status(), 404, "metrics are not served on the public port");
    agora_testkit::wait_until(DEADLINE, "the live gauges are exported", || async {
        let text = agora_testkit::http_client().get(&metrics_url).send().await.unwrap().text().await.unwrap();
        text.contains("agora_live_connections") && text.contains("agora_live_subscriptions")
    })
    .await;
}
