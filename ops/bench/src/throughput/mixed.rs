//! Reads while the data changes: posts with authors at full speed (the
//! headline concurrency) while `createPost` and `renameUser` (half each,
//! each by a registered user with its token) go through the gateway at a
//! fixed rate. Every new post changes the list the reads show, every rename
//! one of its authors, so the read model's response cache only helps
//! between changes: its hit ratio over the measured seconds comes from the
//! gateway's `/metrics` counters.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use super::measure::{print_point, validate, Query, Settings, Target};
use super::peers::{spawn_peer, Peer, Supergraphs};
use crate::dataset::BenchUser;
use crate::load::{self, Point, Request};
use crate::pace;
use crate::procs::Proc;
use crate::stats::{summarize, Summary};
use crate::system::System;

const RENAME_USER: &str = "mutation($name: String!) { renameUser(displayName: $name) { id } }";
/// At most this many commands wait for their answers (see [`pace`]).
const IN_FLIGHT: u32 = 512;

/// One reader (read-model, composition, Hive Router) at one write rate.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MixedPoint {
    pub key: String,
    pub label: String,
    pub target_writes_per_second: f64,
    pub writes: WriteStats,
    /// The reads; their peak RSS is the reader's process.
    pub reads: Point,
    /// The gateway's peak RSS over the measured seconds (it takes the
    /// writes whoever reads).
    pub gateway_peak_rss_mib: Option<f64>,
    /// The response cache's hits and misses over the measured seconds (the
    /// read model only).
    pub cache_hits: Option<u64>,
    pub cache_misses: Option<u64>,
}

impl MixedPoint {
    pub fn cache_hit_ratio(&self) -> Option<f64> {
        let (hits, misses) = (self.cache_hits?, self.cache_misses?);
        (hits + misses > 0).then(|| hits as f64 / (hits + misses) as f64)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WriteStats {
    pub sent: usize,
    pub failed: usize,
    pub achieved_per_second: f64,
    /// Each command's round trip through the gateway.
    pub latency: Summary,
}

/// Commands at a fixed rate through the gateway until stopped.
struct WriteLoad {
    stop: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<WriteStats>>,
}

impl WriteLoad {
    fn start(url: String, users: Arc<Vec<BenchUser>>, rate: f64) -> WriteLoad {
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let client = crate::gql::client();
            let (done_tx, mut done_rx) = mpsc::unbounded_channel::<anyhow::Result<f64>>();
            let stopped = async move {
                let _ = stopped.await;
            };
            let paced = pace::at_rate(rate, IN_FLIGHT, None, stopped, |i| {
                let (client, url, done) = (client.clone(), url.clone(), done_tx.clone());
                let user = users[(i / 2) % users.len()].clone();
                async move {
                    let _ = done.send(command(&client, &url, &user, i).await);
                }
            })
            .await?;
            drop(done_tx);
            let (mut latencies, mut failed) = (Vec::with_capacity(paced.sent), 0);
            while let Some(done) = done_rx.recv().await {
                match done {
                    Ok(ms) => latencies.push(ms),
                    Err(error) => {
                        failed += 1;
                        if failed <= 3 {
                            eprintln!("    command failed: {error:#}");
                        }
                    }
                }
            }
            Ok(WriteStats {
                sent: paced.sent,
                failed,
                achieved_per_second: paced.achieved_per_second(),
                latency: summarize(&mut latencies),
            })
        });
        WriteLoad { stop, task }
    }

    async fn finish(self) -> anyhow::Result<WriteStats> {
        let _ = self.stop.send(());
        self.task.await?
    }
}

/// The `i`-th command: a new post (even), a new display name (odd); its
/// round trip in ms.
async fn command(client: &reqwest::Client, url: &str, user: &BenchUser, i: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let headers = [("authorization".to_owned(), format!("Bearer {}", user.token))];
    if i % 2 == 0 {
        let variables = json!({ "input": { "title": format!("Mixed workload post {i}"), "body": "Written while others read." } });
        crate::gql::call(client, url, crate::freshness::CREATE_POST, variables, &headers).await?;
    } else {
        crate::gql::call(client, url, RENAME_USER, json!({ "name": format!("Reader {i}") }), &headers).await?;
    }
    Ok(started.elapsed().as_secs_f64() * 1e3)
}

/// The response cache's hits and misses so far, from the gateway's `/metrics`.
async fn cache_counters(client: &reqwest::Client, gateway: &Proc) -> anyhow::Result<(u64, u64)> {
    let port = gateway.metrics_port.context("the gateway has no metrics port")?;
    let text = client.get(format!("http://127.0.0.1:{port}/metrics")).send().await?.error_for_status()?.text().await?;
    Ok((counter(&text, "agora_gateway_response_cache_hits_total"), counter(&text, "agora_gateway_response_cache_misses_total")))
}

/// The sum of the samples of counter `name` in Prometheus' text format (0
/// before its first increment, when the exporter does not list it yet).
fn counter(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|line| line.strip_prefix(name).is_some_and(|rest| rest.starts_with(' ') || rest.starts_with('{')))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// A reader of the mixed workload and the process behind it.
struct Reader<'a> {
    target: Target<'a>,
    proc: &'a Proc,
    counts_cache: bool,
}

/// Every write rate, each with the read model, composition and (when
/// installed) Hive Router reading.
pub async fn run(
    system: &System,
    settings: &Settings,
    users: &Arc<Vec<BenchUser>>,
    supergraphs: Option<&Supergraphs>,
    notes: &mut Vec<String>,
) -> anyhow::Result<Vec<MixedPoint>> {
    let client = crate::gql::client();
    let gateway = system.gateway();
    let url = system.gateway_graphql();
    let hive_router = match (supergraphs, &settings.hive_router) {
        (Some(supergraphs), Some(_)) => {
            let mut proc = spawn_peer(system, settings, Peer::HiveRouter, &supergraphs.direct, "hive-router-mixed")?;
            proc.wait_ready(&client, "/graphql", true, Duration::from_secs(120)).await?;
            Some(proc)
        }
        _ => {
            notes.push("Mixed workload: Hive Router was not measured (not installed, skipped, or no supergraph).".into());
            None
        }
    };
    let mut readers = vec![
        Reader {
            target: Target { key: "read-model", label: "read-model", url: url.clone(), headers: vec![] },
            proc: gateway,
            counts_cache: true,
        },
        Reader {
            target: Target {
                key: "composition",
                label: "composition",
                url: url.clone(),
                headers: vec![("x-query-strategy".into(), "composition".into())],
            },
            proc: gateway,
            counts_cache: false,
        },
    ];
    if let Some(proc) = &hive_router {
        readers.push(Reader {
            target: Target {
                key: Peer::HiveRouter.key(),
                label: Peer::HiveRouter.label(),
                url: proc.url("/graphql"),
                headers: vec![],
            },
            proc,
            counts_cache: false,
        });
    }
    let body = Query::PostsWithAuthors.body();
    let request = Request::Post { body: &body };
    let mut points = Vec::new();
    for &rate in &settings.mixed_write_rates {
        for reader in &readers {
            let target = &reader.target;
            validate(&client, target, Query::PostsWithAuthors).await?;
            let writes = WriteLoad::start(url.clone(), users.clone(), rate);
            let c = settings.headline;
            load::oha(&settings.oha, &target.url, &target.headers, &request, c, settings.warmup).await?;
            let before = if reader.counts_cache { Some(cache_counters(&client, gateway).await?) } else { None };
            reader.proc.reset_peak();
            gateway.reset_peak();
            let mut reads = load::oha(&settings.oha, &target.url, &target.headers, &request, c, settings.seconds).await?;
            reads.peak_rss_mib = reader.proc.peak_rss_mib();
            let gateway_peak_rss_mib = gateway.peak_rss_mib();
            let after = if reader.counts_cache { Some(cache_counters(&client, gateway).await?) } else { None };
            let writes = writes.finish().await?;
            print_point(target.label, &format!("mixed {rate:.0} writes/s"), &reads);
            println!(
                "      writes: {:.0}/s achieved, {} failed, p99 {:.1} ms",
                writes.achieved_per_second, writes.failed, writes.latency.p99_ms
            );
            let delta = before.zip(after).map(|(b, a)| (a.0.saturating_sub(b.0), a.1.saturating_sub(b.1)));
            points.push(MixedPoint {
                key: target.key.into(),
                label: target.label.into(),
                target_writes_per_second: rate,
                writes,
                reads,
                gateway_peak_rss_mib,
                cache_hits: delta.map(|d| d.0),
                cache_misses: delta.map(|d| d.1),
            });
        }
    }
    if let Some(proc) = hive_router {
        proc.stop(Duration::from_secs(10)).await;
    }
    Ok(points)
}

#[cfg(test)]
mod tests {
    use super::counter;

    #[test]
    fn a_counter_sums_its_samples_and_is_zero_before_its_first_increment() {
        let text = "# TYPE agora_gateway_response_cache_hits_total counter\n\
                    agora_gateway_response_cache_hits_total 41\n\
                    agora_gateway_response_cache_hits_total_other 5\n\
                    agora_gateway_response_cache_misses_total{shard=\"a\"} 2\n\
                    agora_gateway_response_cache_misses_total{shard=\"b\"} 3\n";
        assert_eq!(counter(text, "agora_gateway_response_cache_hits_total"), 41);
        assert_eq!(counter(text, "agora_gateway_response_cache_misses_total"), 5);
        assert_eq!(counter("", "agora_gateway_response_cache_hits_total"), 0);
    }
}
