//! Load generators: `oha` for HTTP (JSON output), `pgbench` for the SQL
//! ceiling, and a counting proxy that tells how many subgraph requests a
//! federation gateway makes per client request.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::stats::summarize;

/// One measurement at one concurrency.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Point {
    pub concurrency: usize,
    pub requests_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub requests: u64,
    /// Responses other than 200, and transport errors.
    pub failures: u64,
    pub peak_rss_mib: Option<f64>,
}

/// What each request of a load sends.
pub enum Request<'a> {
    /// A POST of this JSON body.
    Post { body: &'a str },
    /// A GET of the URL alone (its query string says everything).
    Get,
}

/// Runs oha for `seconds` at `concurrency` against `url`, sending `request`.
pub async fn oha(
    oha_bin: &Path,
    url: &str,
    headers: &[(String, String)],
    request: &Request<'_>,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<Point> {
    let mut command = tokio::process::Command::new(oha_bin);
    command
        .arg("--no-tui")
        .arg("--output-format")
        .arg("json")
        .arg("-z")
        .arg(format!("{}ms", (seconds * 1000.0) as u64))
        .arg("-c")
        .arg(concurrency.to_string())
        // Requests still open when the time is up finish and count.
        .arg("-w");
    match request {
        Request::Post { body } => {
            command.arg("-m").arg("POST").arg("-T").arg("application/json").arg("-d").arg(body);
        }
        Request::Get => {
            command.arg("-m").arg("GET");
        }
    }
    for (name, value) in headers {
        command.arg("-H").arg(format!("{name}: {value}"));
    }
    command.arg(url).kill_on_drop(true);
    let output = command.output().await.with_context(|| format!("cannot run {}", oha_bin.display()))?;
    if !output.status.success() {
        bail!("oha failed ({}): {}", output.status, String::from_utf8_lossy(&output.stderr));
    }
    let json: Value = serde_json::from_slice(&output.stdout)
        .with_context(|| format!("oha printed no JSON: {}", String::from_utf8_lossy(&output.stdout)))?;
    let summary = &json["summary"];
    let percentiles = &json["latencyPercentiles"];
    let seconds_to_ms = |v: &Value| v.as_f64().unwrap_or(f64::NAN) * 1e3;
    let mut ok = 0u64;
    let mut failures = 0u64;
    if let Some(codes) = json["statusCodeDistribution"].as_object() {
        for (code, count) in codes {
            let count = count.as_u64().unwrap_or(0);
            if code == "200" {
                ok += count;
            } else {
                failures += count;
            }
        }
    }
    if let Some(errors) = json["errorDistribution"].as_object() {
        for (error, count) in errors {
            let count = count.as_u64().unwrap_or(0);
            failures += count;
            eprintln!("    oha: {count} × {error}");
        }
    }
    Ok(Point {
        concurrency,
        requests_per_second: if failures == 0 {
            summary["requestsPerSec"].as_f64().unwrap_or(0.0)
        } else {
            // Only successful answers count as throughput.
            ok as f64 / seconds
        },
        p50_ms: seconds_to_ms(&percentiles["p50"]),
        p99_ms: seconds_to_ms(&percentiles["p99"]),
        requests: ok + failures,
        failures,
        peak_rss_mib: None,
    })
}

/// The SQL ceiling: `pgbench` running `script` (one statement) for
/// `seconds` at `concurrency` on `database`, prepared statements, with a
/// per-transaction log for the percentiles.
pub async fn pgbench(
    database_url: &str,
    script: &Path,
    log_dir: &Path,
    concurrency: usize,
    seconds: f64,
) -> anyhow::Result<Point> {
    let _ = std::fs::remove_dir_all(log_dir);
    std::fs::create_dir_all(log_dir)?;
    let seconds_whole = seconds.round().max(1.0) as u64;
    let output = tokio::process::Command::new("pgbench")
        .current_dir(log_dir)
        .args(["-n", "-M", "prepared", "-l", "--log-prefix", "tx"])
        .arg("-c")
        .arg(concurrency.to_string())
        .arg("-j")
        .arg(concurrency.min(2).to_string())
        .arg("-T")
        .arg(seconds_whole.to_string())
        .arg("-f")
        .arg(script)
        .arg(database_url)
        .kill_on_drop(true)
        .output()
        .await
        .context("cannot run pgbench")?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        bail!("pgbench failed: {stdout}{}", String::from_utf8_lossy(&output.stderr));
    }
    let tps = stdout
        .lines()
        .find(|line| line.starts_with("tps ="))
        .and_then(|line| line.split_whitespace().nth(2))
        .and_then(|n| n.parse::<f64>().ok())
        .with_context(|| format!("no tps in pgbench's output: {stdout}"))?;
    let failed = stdout
        .lines()
        .find(|line| line.starts_with("number of failed transactions"))
        .and_then(|line| line.split(':').nth(1))
        .and_then(|n| n.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    // Log lines: client_id transaction_no time script_no time_epoch time_us (time in µs).
    let mut latencies = Vec::new();
    for entry in std::fs::read_dir(log_dir)? {
        let text = std::fs::read_to_string(entry?.path())?;
        for line in text.lines() {
            if let Some(us) = line.split_whitespace().nth(2).and_then(|n| n.parse::<f64>().ok()) {
                latencies.push(us / 1e3);
            }
        }
    }
    let requests = latencies.len() as u64;
    let summary = summarize(&mut latencies);
    let _ = std::fs::remove_dir_all(log_dir);
    Ok(Point {
        concurrency,
        requests_per_second: tps,
        p50_ms: summary.p50_ms,
        p99_ms: summary.p99_ms,
        requests,
        failures: failed,
        peak_rss_mib: None,
    })
}

/// A reverse proxy on 127.0.0.1 that counts the requests it forwards, and
/// those of them with an `authorization` header.
pub struct CountingProxy {
    pub port: u16,
    count: Arc<AtomicU64>,
    authorized: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream_origin: String) -> anyhow::Result<CountingProxy> {
        let count = Arc::new(AtomicU64::new(0));
        let authorized = Arc::new(AtomicU64::new(0));
        let client = reqwest::Client::new();
        let (counter, authorized_counter) = (count.clone(), authorized.clone());
        let app = axum::Router::new().fallback(move |uri: Uri, headers: HeaderMap, body: Bytes| {
            let client = client.clone();
            let (counter, authorized_counter) = (counter.clone(), authorized_counter.clone());
            let url = format!("{upstream_origin}{}", uri.path_and_query().map_or("/", |p| p.as_str()));
            async move {
                counter.fetch_add(1, Ordering::Relaxed);
                if headers.contains_key("authorization") {
                    authorized_counter.fetch_add(1, Ordering::Relaxed);
                }
                let mut request = client.post(url).body(body).timeout(Duration::from_secs(30));
                for name in ["content-type", "accept", "authorization"] {
                    if let Some(value) = headers.get(name) {
                        request = request.header(name, value.clone());
                    }
                }
                match request.send().await {
                    Ok(response) => {
                        let status = StatusCode::from_u16(response.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
                        let content_type = response
                            .headers()
                            .get("content-type")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("application/json")
                            .to_owned();
                        let bytes = response.bytes().await.unwrap_or_default();
                        (status, [("content-type", content_type)], bytes.to_vec())
                    }
                    Err(error) => {
                        (StatusCode::BAD_GATEWAY, [("content-type", "text/plain".to_owned())], error.to_string().into_bytes())
                    }
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(CountingProxy { port, count, authorized, task })
    }

    pub fn requests(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// The requests forwarded with an `authorization` header.
    pub fn authorized_requests(&self) -> u64 {
        self.authorized.load(Ordering::Relaxed)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}
