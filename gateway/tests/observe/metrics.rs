//! The metrics the README lists (its "Metrics" table) against the code and
//! against `/metrics`: every metric the code exports is documented, every
//! documented one is exported by the code, and after some traffic every one
//! of them is on `/metrics`, but for those only an uncommon event creates
//! ([`UNCOMMON`]).

use std::collections::BTreeSet;
use std::path::Path;

use agora_testkit::{get, wait_until, DEADLINE};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::helpers::{bearer, composition, spawn_system};

/// Listed, exported by the code, but only after an event this test does not
/// cause: a failure, a reset, a race or a saturation.
const UNCOMMON: [&str; 14] = [
    "agora_gateway_upstream_requests_shared_total", // identical queries in flight at the same moment
    "agora_live_events_unprojected_total",          // the read model not showing an event in time
    "agora_live_duplicates_skipped_total",          // a redelivered event
    "agora_live_slow_subscribers_dropped_total",    // a subscriber that does not read
    "agora_live_subscriptions_refused_total",       // more than WS_MAX_SUBSCRIPTIONS
    "agora_consumer_resets_total",                  // positions from another log
    "agora_outbox_republished_total",               // a topic that lost what the outbox published
    "agora_outbox_relay_restarts_total",            // a relay failure
    "agora_auth_hashing_refused_total",             // password hashing saturated
    "agora_live_resumes_total",                     // a subscription resumed from a cursor
    "agora_live_resumes_refused_total",             // a cursor too old to resume from
    "agora_live_events_replayed_total",             // events missed by a resumed subscription
    "agora_persisted_queries_total",                // an automatic persisted query
    "agora_trusted_documents_reloads_total",        // a changed list of trusted documents
];

fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the gateway is in the workspace")
}

/// The metric names of the README's "Metrics" table.
fn documented() -> BTreeSet<String> {
    let readme = std::fs::read_to_string(workspace().join("README.md")).expect("the README");
    let section = readme.split("\n## Metrics\n").nth(1).expect("the README has a Metrics section");
    let section = section.split("\n## ").next().unwrap();
    let names: BTreeSet<String> = section
        .lines()
        .filter_map(|line| line.strip_prefix("| `"))
        .filter_map(|cell| cell.split('`').next())
        .map(str::to_owned)
        .collect();
    assert!(names.len() > 20, "the Metrics table lists the metrics: {names:?}");
    names
}

/// The names the services' code records (`metrics::counter!("…"` and the
/// like, the name on the macro's first line or the next).
fn exported_by_code() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for crate_dir in ["platform", "gateway", "auth-service", "post-service"] {
        let mut pending = vec![workspace().join(crate_dir).join("src")];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    pending.push(path);
                } else if path.extension().is_some_and(|extension| extension == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for macro_name in ["metrics::counter!(", "metrics::gauge!(", "metrics::histogram!("] {
                        for (start, _) in text.match_indices(macro_name) {
                            let rest = text[start + macro_name.len()..].trim_start();
                            if let Some(name) = rest.strip_prefix('"').and_then(|rest| rest.split('"').next()) {
                                names.insert(name.to_owned());
                            }
                        }
                    }
                }
            }
        }
    }
    names
}

#[test]
fn the_readme_lists_every_metric_the_code_exports_and_nothing_else() {
    let readme = std::fs::read_to_string(workspace().join("README.md")).unwrap();
    let documented = documented();
    let code = exported_by_code();
    // The operator commands' own metrics are documented with their commands.
    let undocumented: Vec<&String> =
        code.iter().filter(|name| !documented.contains(*name) && !readme.contains(name.as_str())).collect();
    assert!(undocumented.is_empty(), "exported but not in the README: {undocumented:?}");
    let unknown: Vec<&String> = documented.iter().filter(|name| !code.contains(*name)).collect();
    assert!(unknown.is_empty(), "in the README's table but exported by no code: {unknown:?}");
    for name in UNCOMMON.iter() {
        assert!(documented.contains(*name), "{name} is in the table");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_some_traffic_every_listed_metric_is_on_metrics() {
    crate::setup();
    let system = spawn_system().await;
    let gateway = &system.gateway;
    // A subscriber, kept connected, that sees a post pushed.
    let mut request = format!("ws://127.0.0.1:{}/graphql", gateway.port()).into_client_request().unwrap();
    request.headers_mut().insert("sec-websocket-protocol", "graphql-transport-ws".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("the upgrade succeeds");
    socket.send(Message::text(json!({ "type": "connection_init" }).to_string())).await.unwrap();
    assert_eq!(next_message(&mut socket).await["type"], "connection_ack");
    let subscribe = json!({ "type": "subscribe", "id": "1", "payload": { "query": "subscription { postCreated { title } }" } });
    socket.send(Message::text(subscribe.to_string())).await.unwrap();
    let scrape = || async { get(gateway.metrics_port, "/metrics").await.text().await.unwrap() };
    wait_until(DEADLINE, "the subscription runs", || async {
        scrape().await.lines().any(|line| line.starts_with("agora_live_shared_operations ") && !line.ends_with(" 0"))
    })
    .await;

    // Commands (one retried with its key), queries of both strategies, cached and not.
    let ada = gateway.register("ada").await;
    let create = "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }";
    let input = json!({ "input": { "title": "Counted", "body": "Once." } });
    let headers = [bearer(&ada.token), ("idempotency-key", "metrics-1".to_owned())];
    for _ in 0..2 {
        let answer = gateway.query(create, input.clone(), &headers).await;
        assert!(answer["errors"].is_null(), "{answer}");
    }
    assert_eq!(next_message(&mut socket).await["type"], "next", "the post is pushed");
    let feed = "query Feed { posts(first: 5) { nodes { title author { displayName } } } }";
    let composed = gateway.query(feed, json!({}), &[composition()]).await;
    assert!(composed["errors"].is_null(), "{composed}");
    wait_until(DEADLINE, "an anonymous query is answered from the cache", || async {
        gateway.query(feed, json!({}), &[]).await["extensions"]["cache"] == "hit"
    })
    .await;
    // An event nobody can read: both consumers set it aside.
    agora_testkit::publish(&system.services.kafka.settings(), agora_schema::topics::POST, "poison", b"not an event").await;

    let expected: Vec<String> = documented().into_iter().filter(|name| !UNCOMMON.contains(&name.as_str())).collect();
    let missing = |text: &str| -> Vec<String> {
        let present: BTreeSet<&str> =
            text.lines().filter(|line| !line.starts_with('#')).filter_map(|line| line.split(['{', ' ']).next()).collect();
        expected
            .iter()
            .filter(|name| !["", "_bucket", "_count"].iter().any(|suffix| present.contains(format!("{name}{suffix}").as_str())))
            .cloned()
            .collect()
    };
    wait_until(DEADLINE, "every listed metric is on /metrics", || async { missing(&scrape().await).is_empty() }).await;

    let text = scrape().await;
    // Latency is a histogram (buckets), labelled by the operation's name.
    assert!(
        text.lines().any(|line| line.starts_with("agora_gateway_request_duration_seconds_bucket{")
            && line.contains("operation=\"Feed\"")
            && line.contains("strategy=\"composition\"")
            && line.contains("type=\"query\"")),
        "{text}"
    );
    assert!(text.contains("agora_gateway_upstream_duration_seconds_bucket{"), "{text}");
    assert!(text.contains("agora_outbox_publish_duration_seconds_bucket{"), "{text}");
    assert!(!text.contains("quantile="), "no summaries: {text}");
}

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text message, as JSON.
async fn next_message(socket: &mut Socket) -> Value {
    loop {
        match tokio::time::timeout(DEADLINE, socket.next()).await.expect("a message in time") {
            Some(Ok(Message::Text(text))) => return serde_json::from_str(&text).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}
