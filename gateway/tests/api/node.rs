//! Runs the real npm `graphql-ws` / `subscriptions-transport-ws` clients
//! (gateway/tests/js/subscribe.mjs) and reads what they receive.

use std::path::Path;
use std::process::Stdio;
use std::time::Instant;

use agora_testkit::DEADLINE;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader, Lines};
use tokio::process::{Child, ChildStdout, Command};

pub struct Subscriber {
    _child: Child,
    lines: Lines<BufReader<ChildStdout>>,
    pub received: Vec<Value>,
}

impl Subscriber {
    /// Starts a client on the gateway at `port` and waits until its
    /// subscriptions are registered. `config` is subscribe.mjs's.
    pub async fn start(port: u16, config: Value) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/subscribe.mjs");
        let mut child = Command::new("node")
            .arg(script)
            .arg(format!("ws://127.0.0.1:{port}/graphql"))
            .arg(config.to_string())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node runs (npm ci installs the clients)");
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut subscriber = Subscriber { _child: child, lines, received: Vec::new() };
        subscriber.wait_for("the subscriptions are ready", |received| received.iter().any(|line| line["ready"] == true)).await;
        subscriber
    }

    /// Reads what the client receives until `done` holds; fails after the deadline.
    pub async fn wait_for(&mut self, what: &str, done: impl Fn(&[Value]) -> bool) {
        let deadline = Instant::now() + DEADLINE;
        while !done(&self.received) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let line = tokio::time::timeout(remaining, self.lines.next_line())
                .await
                .unwrap_or_else(|_| panic!("{what}: not within {DEADLINE:?}; received {:#?}", self.received))
                .expect("reading the client's output")
                .unwrap_or_else(|| panic!("{what}: the client ended; received {:#?}", self.received));
            let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
            assert!(value.get("failed").is_none(), "the client failed: {value}");
            self.received.push(value);
        }
    }

    /// Like [`Subscriber::wait_for`], but gives up quietly after `timeout`:
    /// false if `done` does not hold by then.
    pub async fn received_within(&mut self, timeout: std::time::Duration, done: impl Fn(&[Value]) -> bool) -> bool {
        let deadline = Instant::now() + timeout;
        while !done(&self.received) {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(remaining, self.lines.next_line()).await {
                Err(_) => return false,
                Ok(line) => {
                    let line = line.expect("reading the client's output").expect("the client ended");
                    let value: Value = serde_json::from_str(&line).unwrap_or_else(|_| panic!("not JSON: {line}"));
                    assert!(value.get("failed").is_none(), "the client failed: {value}");
                    self.received.push(value);
                }
            }
        }
        true
    }

    /// The `data` of every event of subscription `id`, in the order received.
    pub fn events(&self, id: &str) -> Vec<Value> {
        self.received.iter().filter(|line| line["id"] == id && !line["data"].is_null()).map(|line| line["data"].clone()).collect()
    }
}
