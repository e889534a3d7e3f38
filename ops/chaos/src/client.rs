//! A careful client: every command carries an `Idempotency-Key`, and a
//! retryable failure (UNAVAILABLE, UPSTREAM_UNAVAILABLE, TIMEOUT,
//! RATE_LIMITED, a transport error, a 5xx without a GraphQL answer) is
//! retried with the same key, on the next gateway replica, with backoff,
//! until a deadline. Anything else is a failure the client reports.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use uuid::Uuid;

/// Codes a client may retry with the same idempotency key.
pub const RETRYABLE: [&str; 4] = ["UNAVAILABLE", "UPSTREAM_UNAVAILABLE", "TIMEOUT", "RATE_LIMITED"];

pub struct Client {
    http: reqwest::Client,
    /// GraphQL endpoints of the gateway replicas.
    gateways: Vec<String>,
    next: AtomicUsize,
    /// How long one command may be retried.
    pub deadline: Duration,
}

/// What became of a command.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The answer's `data`.
    Acknowledged(Value),
    /// The last error code (or `TRANSPORT`, `HTTP_503`, `DEADLINE`) and message.
    Failed { code: String, message: String },
}

impl Client {
    pub fn new(gateways: Vec<String>, deadline: Duration) -> Client {
        let http = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(20)).build().expect("an HTTP client");
        Client { http, gateways, next: AtomicUsize::new(0), deadline }
    }

    /// Sends the command until it is answered, failed for good, or the
    /// deadline passed.
    pub async fn command(&self, query: &str, variables: Value, token: Option<&str>, key: Uuid) -> Reply {
        let started = Instant::now();
        let first = self.next.fetch_add(1, Ordering::Relaxed);
        let mut backoff = Duration::from_millis(100);
        let mut retried = Vec::new();
        loop {
            let url = &self.gateways[(first + retried.len()) % self.gateways.len()];
            let (retry_after, code, message) = match self.attempt(url, query, &variables, token, key).await {
                Attempt::Answered { data, stale } => return Reply { outcome: Outcome::Acknowledged(data), retried, stale },
                Attempt::Final { code, message } => {
                    return Reply { outcome: Outcome::Failed { code, message }, retried, stale: false }
                }
                Attempt::Retry { code, message, retry_after } => (retry_after, code, message),
            };
            retried.push(code.clone());
            if started.elapsed() + backoff > self.deadline {
                let outcome = Outcome::Failed { code: format!("DEADLINE after {code}"), message };
                return Reply { outcome, retried, stale: false };
            }
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    async fn attempt(&self, url: &str, query: &str, variables: &Value, token: Option<&str>, key: Uuid) -> Attempt {
        let mut request = self
            .http
            .post(url)
            .header("accept", "application/json")
            .header("idempotency-key", key.to_string())
            .json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = match request.send().await {
            Ok(response) => response,
            Err(error) => return Attempt::retry("TRANSPORT", error.to_string()),
        };
        let status = response.status();
        let body: Value = match response.text().await.map(|text| serde_json::from_str(&text)) {
            Ok(Ok(body)) => body,
            Ok(Err(_)) if status.is_server_error() => return Attempt::retry(&format!("HTTP_{}", status.as_u16()), String::new()),
            Ok(Err(error)) => return Attempt::Final { code: format!("HTTP_{}", status.as_u16()), message: error.to_string() },
            Err(error) => return Attempt::retry("TRANSPORT", error.to_string()),
        };
        let error = &body["errors"][0];
        if error.is_null() && !body["data"].is_null() {
            let stale = body["extensions"]["consistent"] == Value::Bool(false);
            return Attempt::Answered { data: body["data"].clone(), stale };
        }
        let code = error["extensions"]["code"].as_str().unwrap_or("NO_CODE").to_owned();
        let message = error["message"].as_str().unwrap_or_default().to_owned();
        if RETRYABLE.contains(&code.as_str()) {
            let retry_after = error["extensions"]["retryAfter"].as_u64().map(Duration::from_secs);
            return Attempt::Retry { code, message, retry_after };
        }
        Attempt::Final { code, message }
    }
}

/// What a command came to, and how.
#[derive(Debug, Clone)]
pub struct Reply {
    pub outcome: Outcome,
    /// The codes of the attempts that were retried (empty: answered at once).
    pub retried: Vec<String>,
    /// Answered with `extensions.consistent: false`: applied, but the read
    /// model had not caught up when the gateway answered.
    pub stale: bool,
}

enum Attempt {
    Answered { data: Value, stale: bool },
    Retry { code: String, message: String, retry_after: Option<Duration> },
    Final { code: String, message: String },
}

impl Attempt {
    fn retry(code: &str, message: String) -> Attempt {
        Attempt::Retry { code: code.to_owned(), message, retry_after: None }
    }
}
