//! The gateway's one log line per request, read as an operator would: the
//! real `gateway` binary, started with `LOG_FORMAT=json`, its standard
//! output parsed line by line. It runs alone (its own embedded broker, a
//! fresh read model, no service reachable), which is enough to see queries
//! answered, cached and not, and requests failing with their codes. It
//! exports its traces to this process's receiver, with a batch delay far
//! longer than the test: they arrive because it flushes them when stopped.

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use agora_testkit::{graphql_with_headers, wait_until, TestDatabase, DEADLINE};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

/// A loopback port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_logs_one_line_per_request_and_flushes_its_traces_when_stopped() {
    let receiver = crate::setup();
    let read_model = TestDatabase::new("agora_read_test");
    let (port, nowhere) = (free_port(), free_port());
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_gateway"));
    for (name, _) in std::env::vars().filter(|(name, _)| name.starts_with("OTEL_") || name == "KAFKA_BROKERS") {
        command.env_remove(name);
    }
    let mut gateway = command
        .env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("http://127.0.0.1:{}/v1/traces", receiver.port))
        // Nothing exported before the stop: no delay elapses, no batch fills.
        .env("OTEL_BSP_SCHEDULE_DELAY", "600000")
        .env("OTEL_BSP_MAX_QUEUE_SIZE", "8192")
        .env("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8192")
        .env("LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("PORT", port.to_string())
        .env("METRICS_PORT", "0")
        .env("DATABASE_URL", read_model.url())
        .env("AUTH_URL", format!("http://127.0.0.1:{nowhere}/graphql"))
        .env("POST_URL", format!("http://127.0.0.1:{nowhere}/graphql"))
        .env("AUTH_JWKS_URL", format!("http://127.0.0.1:{nowhere}/.well-known/jwks.json"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("the gateway binary starts");
    let lines = Arc::new(Mutex::new(Vec::<Value>::new()));
    let mut stdout = BufReader::new(gateway.stdout.take().unwrap()).lines();
    let collected = lines.clone();
    tokio::spawn(async move {
        while let Ok(Some(line)) = stdout.next_line().await {
            if let Ok(object) = serde_json::from_str::<Value>(&line) {
                collected.lock().unwrap().push(object);
            }
        }
    });
    wait_until(DEADLINE, "the gateway is up", || async {
        reqwest::get(format!("http://127.0.0.1:{port}/healthz")).await.is_ok_and(|response| response.status().is_success())
    })
    .await;
    let requests =
        || -> Vec<Value> { lines.lock().unwrap().iter().filter(|line| line["target"] == "agora::request").cloned().collect() };
    assert!(requests().is_empty(), "no request yet: {:?}", requests());

    // Every request sent is counted, to compare with the lines.
    let sent = std::sync::atomic::AtomicUsize::new(0);
    let send = |query: &'static str, headers: Vec<(&'static str, String)>| {
        sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        async move { graphql_with_headers(port, query, json!({}), &headers).await }
    };
    let feed = "query Feed { posts(first: 2) { nodes { id } } }";
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    send(feed, vec![("traceparent", traceparent.to_owned())]).await;
    wait_until(DEADLINE, "a cached answer", || async { send(feed, vec![]).await["extensions"]["cache"] == "hit" }).await;
    let composed = send("{ posts { nodes { id } } }", vec![("x-query-strategy", "composition".into())]).await;
    let register = "mutation { register(input: { username: \"ada\", password: \"correct horse battery\" }) { token } }";
    let refused = send(register, vec![]).await;
    let unparsable = send("{ posts {", vec![]).await;
    let answers = [composed, refused, unparsable];
    assert!(answers.iter().all(|answer| !answer["errors"].is_null()), "{answers:?}");
    let sent = sent.load(std::sync::atomic::Ordering::SeqCst);

    // One line per request.
    wait_until(DEADLINE, "a line for every request", || async { requests().len() >= sent }).await;
    let logged = requests();
    assert_eq!(logged.len(), sent, "one line per request: {logged:#?}");
    let fields = [
        "operation",
        "operationType",
        "strategy",
        "status",
        "durationMs",
        "cache",
        "executor",
        "sqlStatements",
        "upstreamRequests",
        "traceId",
    ];
    for line in &logged {
        for field in fields {
            assert!(!line[field].is_null(), "{field} in {line}");
        }
        assert!(line["durationMs"].as_f64().unwrap() >= 0.0, "{line}");
    }
    let first = &logged[0];
    assert_eq!(
        [&first["operation"], &first["operationType"], &first["strategy"], &first["status"]],
        ["Feed", "query", "read-model", "ok"],
        "{first}"
    );
    // (A miss, or a bypass if the cache did not yet hear from the read model.)
    assert_ne!(first["cache"], "hit", "{first}");
    assert!(first["sqlStatements"].as_u64().unwrap() >= 1, "{first}");
    assert_eq!(first["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736", "the request continues the client's trace");
    let hit = &logged[logged.len() - 4];
    assert_eq!([&hit["operation"], &hit["cache"], &hit["sqlStatements"]], [&json!("Feed"), &json!("hit"), &json!(0)], "{hit}");
    let [composed, refused, unparsable] = [&logged[logged.len() - 3], &logged[logged.len() - 2], &logged[logged.len() - 1]];
    assert_eq!(
        [&composed["operation"], &composed["strategy"], &composed["status"], &composed["cache"]],
        ["anonymous", "composition", "UPSTREAM_UNAVAILABLE", "bypass"],
        "{composed}"
    );
    assert!(composed["upstreamRequests"].as_u64().unwrap() >= 1, "{composed}");
    assert_eq!([&refused["operationType"], &refused["status"]], ["mutation", "UPSTREAM_UNAVAILABLE"], "{refused}");
    assert_eq!([&unparsable["operation"], &unparsable["operationType"]], ["unknown", "unknown"], "{unparsable}");
    assert!(!["ok", ""].contains(&unparsable["status"].as_str().unwrap()), "{unparsable}");

    // Stopped as an orchestrator stops it, it flushes its traces: the
    // request that came with a trace context is a child of the client's span.
    assert!(receiver.spans().iter().all(|span| span.service_name != "gateway"), "nothing exported before the stop");
    let pid = gateway.id().expect("the gateway runs").to_string();
    let signalled = std::process::Command::new("kill").args(["-TERM", &pid]).status().expect("kill runs");
    assert!(signalled.success());
    let status = tokio::time::timeout(DEADLINE, gateway.wait()).await.expect("the gateway stops in time").unwrap();
    assert!(status.success(), "the gateway stops cleanly: {status}");
    let exported = receiver.spans();
    let request = exported
        .iter()
        .find(|span| {
            span.service_name == "gateway" && span.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736" && span.name == "POST /graphql"
        })
        .unwrap_or_else(|| panic!("the traced request's span, named by its service, is exported: {exported:#?}"));
    assert_eq!(request.parent_span_id, "00f067aa0ba902b7", "{request:#?}");
}
