//! The results: JSON as measured, Markdown for people, ratios against the
//! targets of issues 4 and 5.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::dataset::LoadReport;
use crate::freshness::FreshnessReport;
use crate::rebuild::RebuildReport;
use crate::subscribers::SubscriberLevel;
use crate::throughput::{self, Outcome, Query, Series};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cores: usize,
    pub cpu: String,
    pub memory_gib: f64,
    pub load_average_at_start: String,
    pub load_average_at_end: String,
}

impl Machine {
    pub fn probe() -> Machine {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split(':').nth(1))
            .map_or_else(|| "unknown CPU".to_owned(), |s| s.trim().to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let memory_kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0);
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            cpu,
            memory_gib: (memory_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
            load_average_at_start: load_average(),
            load_average_at_end: String::new(),
        }
    }

    pub fn summary(&self) -> String {
        format!("{} cores, {:.0} GiB", self.cores, self.memory_gib)
    }
}

pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg").unwrap_or_default().split_whitespace().take(3).collect::<Vec<_>>().join(" ")
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Ratio {
    pub name: String,
    pub value: Option<f64>,
    /// The target as text, e.g. "≥ 10×".
    pub target: Option<String>,
    pub met: Option<bool>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Results {
    pub generated_at: String,
    pub git_commit: String,
    pub mode: String,
    pub command: String,
    pub machine: Machine,
    pub headline_concurrency: usize,
    pub seconds_per_point: f64,
    pub warmup_seconds: f64,
    pub dataset: Option<LoadReport>,
    pub throughput: Outcome,
    pub ratios: Vec<Ratio>,
    pub freshness: Option<FreshnessReport>,
    pub rebuild: Option<RebuildReport>,
    pub subscribers: Vec<SubscriberLevel>,
    pub notes: Vec<String>,
    pub total_seconds: f64,
}

fn find<'a>(series: &'a [Series], key: &str, query: Query) -> Option<&'a Series> {
    series.iter().find(|s| s.key == key && s.query == query)
}

fn rps(series: &[Series], key: &str, query: Query, concurrency: usize) -> Option<f64> {
    find(series, key, query)?.at(concurrency).map(|p| p.requests_per_second).filter(|v| *v > 0.0)
}

/// The ratios the issues name, at the headline concurrency.
pub fn ratios(results: &Results) -> Vec<Ratio> {
    let s = &results.throughput.series;
    let c = results.headline_concurrency;
    let q = Query::PostsWithAuthors;
    let ratio = |a: &str, b: &str, query: Query| Some(rps(s, a, query, c)? / rps(s, b, query, c)?);
    let mut out = Vec::new();
    let mut push = |name: String, value: Option<f64>, min: Option<f64>, strict: bool| {
        let target = min.map(|m| if strict { format!("> {m}×") } else { format!("≥ {m}×") });
        let met = match (value, min) {
            (Some(v), Some(m)) => Some(if strict { v > m } else { v >= m }),
            _ => None,
        };
        out.push(Ratio { name, value, target, met });
    };
    // The read-model strategy as shipped (response cache on) and its
    // execution alone (`Cache-Control: no-cache`), against the same targets.
    for (key, label) in [("read-model", "read-model"), ("read-model-no-cache", "read-model (no cache)")] {
        push(format!("{label} ÷ composition"), ratio(key, "composition", q), Some(10.0), false);
        push(format!("{label} ÷ Hive Router"), ratio(key, "hive-router", q), Some(3.0), false);
        push(format!("{label} ÷ Hive Gateway"), ratio(key, "hive-gateway", q), Some(10.0), false);
        push(format!("{label} ÷ Apollo Gateway"), ratio(key, "apollo-gateway", q), Some(30.0), false);
        push(format!("{label} ÷ SQL ceiling"), ratio(key, "sql-ceiling", q), Some(0.5), false);
        push(format!("{label} ÷ Hive Router (dedupe off)"), ratio(key, "hive-router-no-dedupe", q), None, false);
    }
    push("composition ÷ Hive Router".into(), ratio("composition", "hive-router", q), Some(0.8), false);
    push("composition ÷ Hive Router (dedupe off)".into(), ratio("composition", "hive-router-no-dedupe", q), None, false);
    push("composition ÷ Hive Gateway".into(), ratio("composition", "hive-gateway", q), Some(1.0), true);
    push("composition ÷ Apollo Gateway".into(), ratio("composition", "apollo-gateway", q), Some(1.0), true);
    let d = Query::Deep;
    push("deep: read-model ÷ composition".into(), ratio("read-model", "composition", d), None, false);
    push("deep: read-model ÷ Hive Router".into(), ratio("read-model", "hive-router", d), None, false);
    push("deep: read-model (no cache) ÷ composition".into(), ratio("read-model-no-cache", "composition", d), None, false);
    push("deep: read-model (no cache) ÷ Hive Router".into(), ratio("read-model-no-cache", "hive-router", d), None, false);
    push("deep: composition ÷ Hive Router".into(), ratio("composition", "hive-router", d), None, false);
    out
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.decimals$}"))
}

fn verdict(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "met",
        Some(false) => "**missed**",
        None => "not measured",
    }
}

pub fn markdown(results: &Results) -> String {
    let mut md = String::new();
    let c = results.headline_concurrency;
    let _ = writeln!(md, "# Agora benchmark results\n");
    let _ = writeln!(
        md,
        "Generated {} from commit `{}` by `{}` ({} run). Machine: {}, {} (load average {} at the start, {} at the end: \
         other work on the machine shares these cores). Everything runs on this one machine on loopback: the services, \
         the gateways, PostgreSQL, the embedded Kafka-protocol broker and the load generators, so the load generator's \
         own CPU is part of every figure.\n",
        results.generated_at,
        results.git_commit,
        results.command,
        results.mode,
        results.machine.cpu,
        results.machine.summary(),
        results.machine.load_average_at_start,
        results.machine.load_average_at_end,
    );
    let _ = writeln!(md, "![throughput and p99 latency against concurrency; subscribers](latest.png)\n");
    let _ = writeln!(md, "Where the time goes, and what would move the numbers: [../ANALYSIS.md](../ANALYSIS.md).\n");

    if let Some(d) = &results.dataset {
        let _ = writeln!(md, "## Data set\n");
        let _ = writeln!(
            md,
            "{} users registered through auth-service's GraphQL API ({:.1} s, argon2id hashing), {} posts written in bulk \
             into post-service's database with their outbox rows, in post-service's transaction shape ({:.1} s); then the \
             real pipeline: outbox relay → Kafka → points ledger (PointsAwarded) and projector → read model, caught up \
             {:.1} s after the first post row. {} events in the topics ({:.0} events/s end to end).\n",
            d.users,
            d.register_seconds,
            d.posts,
            d.insert_posts_seconds,
            d.catch_up_seconds,
            d.events,
            d.events as f64 / d.catch_up_seconds.max(1e-9)
        );
    }

    for query in Query::ALL {
        let rows: Vec<&Series> = results.throughput.series.iter().filter(|s| s.query == query).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(md, "## {} at concurrency {c}\n", query.title());
        let _ = writeln!(md, "```graphql\n{}\n```\n", query.document());
        let _ = writeln!(md, "| gateway / strategy | requests/s | p50 ms | p99 ms | upstream requests per request | gateway SQL statements per request | peak RSS MiB | same data as read-model | failures |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---:|---|---:|");
        for s in &rows {
            let p = s.at(c);
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                s.label,
                opt(p.map(|p| p.requests_per_second), 0),
                opt(p.map(|p| p.p50_ms), 2),
                opt(p.map(|p| p.p99_ms), 2),
                opt(s.upstream_requests_per_request, 1),
                opt(s.sql_statements_per_request, 0),
                if s.key == "sql-ceiling" { "(PostgreSQL)".to_owned() } else { opt(p.and_then(|p| p.peak_rss_mib), 0) },
                match s.same_data_as_read_model {
                    Some(true) => "yes",
                    Some(false) => "**no**",
                    None => "–",
                },
                p.map_or(0, |p| p.failures),
            );
        }
        let _ = writeln!(md);
        let levels: Vec<usize> = {
            let mut l: Vec<usize> = rows.iter().flat_map(|s| s.points.iter().map(|p| p.concurrency)).collect();
            l.sort_unstable();
            l.dedup();
            l
        };
        if levels.len() > 1 {
            let _ = writeln!(md, "Requests/s (p99 ms) by concurrency:\n");
            let _ = writeln!(
                md,
                "| gateway / strategy | {} |",
                levels.iter().map(|l| format!("c={l}")).collect::<Vec<_>>().join(" | ")
            );
            let _ = writeln!(md, "|---|{}", "---:|".repeat(levels.len()));
            for s in &rows {
                let cells: Vec<String> = levels
                    .iter()
                    .map(|&l| s.at(l).map_or("–".into(), |p| format!("{:.0} ({:.1})", p.requests_per_second, p.p99_ms)))
                    .collect();
                let _ = writeln!(md, "| {} | {} |", s.label, cells.join(" | "));
            }
            let _ = writeln!(md);
        }
    }

    let _ = writeln!(md, "## Ratios against the targets (issue 4), requests/s at concurrency {c}\n");
    let _ = writeln!(md, "| ratio | measured | target | |");
    let _ = writeln!(md, "|---|---:|---|---|");
    for r in &results.ratios {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            r.name,
            r.value.map_or("–".into(), |v| format!("{v:.2}×")),
            r.target.clone().unwrap_or_else(|| "–".into()),
            if r.target.is_some() { verdict(r.met) } else { "" }
        );
    }
    let _ = writeln!(md);

    if let Some(f) = &results.freshness {
        let met = f.freshness.count > 0 && f.freshness.p99_ms <= 50.0 && f.failed == 0 && f.not_seen == 0;
        let _ = writeln!(md, "## Command-to-read-model freshness\n");
        let _ = writeln!(
            md,
            "`createPost` sent straight to post-service by a fixed-rate generator at {:.0}/s (achieved {:.0}/s) for {:.0} s, \
             {} posts over the data set's users. *Commit* = post-service's answer (the post and its outbox row committed \
             before it answers); *visible* = the read model's `read_post` has the row (the watcher LISTENs on the \
             projector's `agora_projection` notifications and polls every 5 ms). A `CHECKPOINT` runs first, so that \
             PostgreSQL's next timed checkpoint falls outside the measured seconds (one inside them, after the WAL of \
             the data set and the throughput runs, raised p99 to 134 ms in one run). Failed commands: {}; never \
             visible within 30 s: {}.\n",
            f.target_rate_per_second, f.achieved_rate_per_second, f.seconds, f.sent, f.failed, f.not_seen
        );
        let _ = writeln!(md, "| interval | p50 ms | p90 ms | p99 ms | max ms |");
        let _ = writeln!(md, "|---|---:|---:|---:|---:|");
        for (name, s) in [
            ("createPost at post-service (sent → answer)", &f.command),
            ("**freshness: commit → visible in the read model**", &f.freshness),
            ("sent → visible", &f.sent_to_visible),
            ("stage: outbox row committed → relay marked it published (Kafka acked)", &f.outbox_to_kafka),
        ] {
            let _ = writeln!(md, "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |", s.p50_ms, s.p90_ms, s.p99_ms, s.max_ms);
        }
        if let Some(seconds) = f.points_caught_up_seconds {
            let _ = writeln!(
                md,
                "\nThe points take one step more (post topic → points ledger → points topic → projector): after the \
                 burst the read model showed every post's points {seconds:.1} s after it showed every post."
            );
        }
        let _ = writeln!(
            md,
            "\nTarget: p99 ≤ 50 ms at 500 commands/s: **{}** (p99 {:.1} ms at {:.0}/s).\n",
            if met && f.target_rate_per_second >= 500.0 { "met" } else { "missed" },
            f.freshness.p99_ms,
            f.achieved_rate_per_second
        );
    }

    if let Some(r) = &results.rebuild {
        let _ = writeln!(md, "## Rebuild\n");
        let _ = writeln!(
            md,
            "A second gateway process on a fresh, empty read-model database with a new projector consumer group replayed \
             the user, post and points topics from their start: {} events (of {} ever produced{}) in {:.1} s: \
             **{:.0} events/s** (from the process answering /healthz to the last position stored; {:.1} s including \
             start-up and migrations). Peak RSS {} MiB. Same counts (users, posts, points) as the live read model: {}.\n",
            r.events,
            r.produced,
            if r.events < r.produced {
                "; the embedded broker, librdkafka's mock cluster, keeps at most 5 MiB or 100,000 messages per partition \
                 and had dropped the oldest, so this replay cannot rebuild everything: a real Kafka with retention \
                 (docker-compose.yml) can"
            } else {
                ""
            },
            r.seconds,
            r.events_per_second,
            r.seconds_with_startup,
            opt(r.peak_rss_mib, 0),
            if r.same_counts_as_live {
                "yes"
            } else if r.events < r.produced {
                "no (older events were no longer on the broker)"
            } else {
                "**no**"
            }
        );
    }

    if !results.subscribers.is_empty() {
        let _ = writeln!(md, "## Subscribers (issue 5)\n");
        let first = &results.subscribers[0];
        let _ = writeln!(
            md,
            "N WebSocket clients (graphql-transport-ws, tokio-tungstenite, from 127.0.0.2–201) on one fresh gateway \
             process, each subscribed to `postCreated {{ id title author {{ displayName }} }}`, while {:.0} posts/s are \
             created through post-service for {} posts. Latency = delivery − post-service's answer to createPost. CPU is \
             the gateway's utime+stime while posts flow, in % of one core (the machine has {}). The gateway executes \
             the subscribers of one document (and variables) once and shares the result: *one* is that best case, \
             *each its own* gives every subscriber a different document (a comment), the worst case.\n",
            first.post_rate_per_second, first.posts, results.machine.cores
        );
        let _ = writeln!(md, "| subscribers | documents | connected | deliveries / expected | p50 ms | p99 ms | max ms | RSS idle MiB | RSS connected MiB | peak RSS MiB | KiB per subscriber | gateway CPU % | closed by server |");
        let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for l in &results.subscribers {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} / {} | {:.1} | {:.1} | {:.1} | {} | {} | {} | {} | {} | {} |",
                l.subscribers,
                if l.distinct_operations { "each its own" } else { "one" },
                l.connected,
                l.deliveries,
                l.expected_deliveries,
                l.latency.p50_ms,
                l.latency.p99_ms,
                l.latency.max_ms,
                opt(l.rss_idle_mib, 0),
                opt(l.rss_connected_mib, 0),
                opt(l.peak_rss_mib, 0),
                opt(l.kib_per_subscriber, 1),
                opt(l.cpu_percent, 0),
                l.closed_by_server
            );
        }
        for distinct in [false, true] {
            let Some(top) =
                results.subscribers.iter().filter(|l| l.distinct_operations == distinct).max_by_key(|l| l.subscribers)
            else {
                continue;
            };
            let met = top.subscribers >= 10_000
                && top.connected == top.subscribers
                && top.deliveries == top.expected_deliveries
                && top.latency.p99_ms <= 250.0;
            let _ = writeln!(
                md,
                "\nTarget: 10,000 subscribers with p99 ≤ 250 ms, {}: **{}** ({} subscribers, p99 {:.1} ms, {} of {} deliveries).",
                if distinct { "each with its own document" } else { "one document" },
                if met { "met" } else { "missed" },
                top.subscribers,
                top.latency.p99_ms,
                top.deliveries,
                top.expected_deliveries
            );
        }
        let _ = writeln!(md);
    }

    let _ = writeln!(md, "## How it was measured\n");
    let _ = writeln!(
        md,
        "- One command: `ops/bench/run` (see `ops/bench/README.md`). It builds the release binaries, then \
         `agora-bench` starts an embedded Kafka-protocol broker in its own process, drops and recreates the \
         databases `agora_bench_*` on the local PostgreSQL, and starts auth-service, post-service and the gateway as \
         separate processes (release builds, `RUST_LOG=warn`, default pool sizes) on 127.0.0.1.\n\
         - HTTP load: `oha` at fixed concurrency, keep-alive, POST of the JSON request, after a warm-up at the same \
         concurrency ({:.0} s for the first level, half that before the next); {:.0} s per point; requests still open \
         when the time is up are waited for (`-w`). Every gateway's answer is checked before (and the federation gateways' \
         after) timing: HTTP 200, no `errors`, 20 posts each with an author, and the same `data` as the read-model \
         strategy. A non-200 during the run counts as a failure, not as throughput.\n\
         - Upstream requests per request: `extensions.upstreamRequests` for the gateway's strategies; for the \
         federation gateways, counted by a proxy in front of the subgraphs in a separate run of 5 requests (the timed \
         run talks to the subgraphs directly).\n\
         - Peak RSS: VmHWM of the gateway's process, reset (`/proc/PID/clear_refs` = 5) before each timed point.\n\
         - The read-model strategy is measured as shipped, with its response cache (anonymous answers kept until \
         the projector next commits; the load is read-only, so nearly every request is a hit), and with \
         `Cache-Control: no-cache`, which executes every request against the read model (\"read-model (no response \
         cache)\").\n\
         - Hive Router deduplicates identical in-flight subgraph requests by default; every request here is the \
         same query, its best case, so it is measured twice: as shipped, and with `traffic_shaping.all.dedupe_enabled: \
         false`. Its upstream requests per request (2) are counted one request at a time, where nothing is shared.\n\
         - Federation gateways: supergraph composed offline with `@apollo/composition` from each service's \
         `{{ _service {{ sdl }} }}`; Apollo Gateway on Apollo Server (Node, `NODE_ENV=production`), Hive Gateway \
         (`createGatewayRuntime` on a Node HTTP server, one process), Hive Router 0.2.19 (HOST, PORT, \
         SUPERGRAPH_FILE_PATH). All bound to 127.0.0.1.\n\
         - SQL ceiling: `pgbench -M prepared` running the read model's `posts` statement \
         (gateway/src/read_model/queries.rs, with its join, limit 21) at the same concurrency, no HTTP, no GraphQL.\n",
        results.warmup_seconds, results.seconds_per_point
    );
    let _ = writeln!(md, "The SQL statement of the ceiling:\n\n```sql\n{}```\n", throughput::CEILING_SQL);
    if !results.notes.is_empty() || !results.throughput.notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for note in results.throughput.notes.iter().chain(&results.notes) {
            let _ = writeln!(md, "- {note}");
        }
        let _ = writeln!(md);
    }
    let _ = writeln!(md, "Total run time: {:.0} s.", results.total_seconds);
    md
}

/// The committed example results the report and the chart are checked
/// against (`ops/bench/fixtures`): rendering them must give the committed
/// output byte for byte; `UPDATE_FIXTURES=1` rewrites it after an intended
/// change.
#[cfg(test)]
pub mod fixture {
    use std::path::PathBuf;

    use super::Results;

    fn path(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fixtures").join(name)
    }

    pub fn results() -> Results {
        let json = std::fs::read_to_string(path("results.json")).expect("fixtures/results.json");
        serde_json::from_str(&json).expect("the fixture parses as results")
    }

    pub fn assert_unchanged(name: &str, actual: &str) {
        let path = path(name);
        if std::env::var_os("UPDATE_FIXTURES").is_some() {
            std::fs::write(&path, actual).expect("the fixture is written");
            return;
        }
        let expected = std::fs::read_to_string(&path).unwrap_or_default();
        if expected != actual {
            let first = expected.lines().zip(actual.lines()).position(|(e, a)| e != a);
            panic!(
                "{} differs from the rendering (first different line: {:?}); run with UPDATE_FIXTURES=1 if the change is intended",
                path.display(),
                first.map(|line| line + 1)
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::fixture;

    #[test]
    fn the_report_of_the_fixture_is_unchanged() {
        let mut results = fixture::results();
        results.ratios = super::ratios(&results);
        fixture::assert_unchanged("report.md", &super::markdown(&results));
    }
}
