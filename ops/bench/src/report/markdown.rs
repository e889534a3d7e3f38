//! The Markdown report, section by section, in the order it reads: what
//! ran where, the data set, each query's table, the mixed workload, the
//! targets of issue 12, the ratios against issue 4's targets, freshness,
//! rebuild, subscribers, how it was measured, notes.

use std::fmt::Write as _;

use super::Results;
use crate::throughput::{self, Query, Series};

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
    header(&mut md, results);
    if let Some(d) = &results.dataset {
        dataset(&mut md, d);
    }
    for query in Query::ALL {
        query_tables(&mut md, results, query);
    }
    mixed(&mut md, results);
    targets(&mut md, results);
    ratios(&mut md, results);
    if let Some(f) = &results.freshness {
        freshness(&mut md, f);
    }
    if let Some(r) = &results.rebuild {
        rebuild(&mut md, r);
    }
    subscribers(&mut md, results);
    method(&mut md, results);
    notes(&mut md, results);
    let _ = writeln!(md, "Total run time: {:.0} s.", results.total_seconds);
    md
}

/// What ran, where, when.
fn header(md: &mut String, results: &Results) {
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
}

/// How the data set was loaded.
fn dataset(md: &mut String, d: &crate::dataset::LoadReport) {
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

/// One query's table at the headline concurrency, and by concurrency when
/// there were several.
fn query_tables(md: &mut String, results: &Results, query: Query) {
    let rows: Vec<&Series> = results.throughput.series.iter().filter(|s| s.query == query).collect();
    if rows.is_empty() {
        return;
    }
    let c = results.headline_concurrency;
    let _ = writeln!(md, "## {} at concurrency {c}\n", query.title());
    let _ = writeln!(md, "```graphql\n{}\n```\n", query.document());
    let _ = writeln!(md, "| gateway / strategy | requests/s | p50 ms | p99 ms | upstream requests per request | gateway SQL statements per request | executor | peak RSS MiB | same data as read-model | failures |");
    let _ = writeln!(md, "|---|---:|---:|---:|---:|---:|---|---:|---|---:|");
    for s in &rows {
        let p = s.at(c);
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            s.label,
            opt(p.map(|p| p.requests_per_second), 0),
            opt(p.map(|p| p.p50_ms), 2),
            opt(p.map(|p| p.p99_ms), 2),
            opt(s.upstream_requests_per_request, 1),
            opt(s.sql_statements_per_request, 0),
            s.executor.as_deref().unwrap_or("–"),
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
        let _ =
            writeln!(md, "| gateway / strategy | {} |", levels.iter().map(|l| format!("c={l}")).collect::<Vec<_>>().join(" | "));
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

/// Reads while commands run: each write rate, each reader.
fn mixed(md: &mut String, results: &Results) {
    let points = &results.throughput.mixed;
    if points.is_empty() {
        return;
    }
    let c = results.headline_concurrency;
    let _ = writeln!(md, "## Reads while commands run (mixed workload), concurrency {c}\n");
    let _ = writeln!(
        md,
        "Posts with authors read at full speed ({c} connections) while `createPost` and `renameUser` (half each, \
         each by one of the data set's users with its token) go through the gateway at a fixed rate: every new post \
         changes the page the reads show, every rename one of its authors, so the read model's response cache \
         serves an answer only until the next change. The commands run {:.0} s of warm-up and the {:.0} s \
         measured for each reader; the hit ratio is the difference of the gateway's \
         `agora_gateway_response_cache_hits_total` and `…_misses_total` over the measured seconds. Peak RSS: the \
         reader's process (the gateway, or Hive Router).\n",
        results.warmup_seconds, results.seconds_per_point
    );
    let _ = writeln!(md, "| writes/s | reader | reads/s | p50 ms | p99 ms | read failures | cache hit ratio | writes/s achieved | write p99 ms | write failures | reader peak RSS MiB | gateway peak RSS MiB |");
    let _ = writeln!(md, "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for p in points {
        let _ = writeln!(
            md,
            "| {:.0} | {} | {:.0} | {:.2} | {:.2} | {} | {} | {:.0} | {:.1} | {} | {} | {} |",
            p.target_writes_per_second,
            p.label,
            p.reads.requests_per_second,
            p.reads.p50_ms,
            p.reads.p99_ms,
            p.reads.failures,
            p.cache_hit_ratio().map_or("–".into(), |r| format!("{:.1}%", r * 100.0)),
            p.writes.achieved_per_second,
            p.writes.latency.p99_ms,
            p.writes.failed,
            opt(p.reads.peak_rss_mib, 0),
            opt(p.gateway_peak_rss_mib, 0),
        );
    }
    let _ = writeln!(md);
}

/// Issue 12's targets, measured or not.
fn targets(md: &mut String, results: &Results) {
    if results.targets.is_empty() {
        return;
    }
    let c = results.headline_concurrency;
    let _ = writeln!(md, "## Targets (issue 12), requests/s at concurrency {c}\n");
    let _ = writeln!(
        md,
        "\"No response cache\" is the read model's default executor executing every request (`cache-control: \
         no-cache`); Hive Router is as shipped (its deduplication on); the logged-in rows send one user's token \
         with every request, which Hive Router forwards to the subgraphs.\n"
    );
    let _ = writeln!(md, "| target | measured | target | |");
    let _ = writeln!(md, "|---|---:|---|---|");
    for t in &results.targets {
        let measured = match (t.measured, t.unit.as_str()) {
            (None, _) => "–".to_owned(),
            (Some(v), "×") => format!("{v:.2}×"),
            (Some(v), unit) => format!("{v:.0} {unit}"),
        };
        let _ = writeln!(md, "| {} | {} | {} | {} |", t.name, measured, t.target, verdict(t.met));
    }
    let _ = writeln!(md);
}

/// The ratios against the targets.
fn ratios(md: &mut String, results: &Results) {
    let c = results.headline_concurrency;
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
}

/// Command-to-read-model freshness.
fn freshness(md: &mut String, f: &crate::freshness::FreshnessReport) {
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

/// The rebuild into a new generation, and its switch.
fn rebuild(md: &mut String, r: &crate::rebuild::RebuildReport) {
    let _ = writeln!(md, "## Rebuild\n");
    let target = 50_000.0;
    let _ = writeln!(
        md,
        "`gateway rebuild` (run inside the benchmark's process) replayed the user, post and points topics from their \
         start into a new read-model generation while the live gateway kept answering, then switched it over: \
         {} events (of {} ever produced{}) in {:.1} s, batches of up to {}: **{:.0} events/s** against the target of \
         {:.0} ({}; from the start of the command to the switch, including the consumer group's join and the \
         cut-over). The serving projector was held {:.0} ms at the switch. {} readers paged the live gateway \
         meanwhile: {} pages, {} failed or shrank. Same counts (users, posts, points) as the live read model before \
         the rebuild: {}.\n",
        r.events,
        r.produced,
        if r.events < r.produced {
            "; the embedded broker, librdkafka's mock cluster, keeps at most 5 MiB or 100,000 messages per partition \
             and had dropped the oldest, so this replay could not rebuild everything"
        } else {
            "; the broker's topics have enough partitions to hold every event"
        },
        r.seconds,
        r.batch_size,
        r.events_per_second,
        target,
        if r.events_per_second >= target { "met" } else { "missed" },
        r.cutover_ms,
        crate::rebuild::READERS,
        r.reads,
        r.failed_reads,
        if r.same_counts_as_live {
            "yes"
        } else if r.events < r.produced {
            "no (older events were no longer on the broker)"
        } else {
            "**no**"
        }
    );
}

/// The subscriber levels and their targets.
fn subscribers(md: &mut String, results: &Results) {
    if results.subscribers.is_empty() {
        return;
    }
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
        let Some(top) = results.subscribers.iter().filter(|l| l.distinct_operations == distinct).max_by_key(|l| l.subscribers)
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

/// How it was measured.
fn method(md: &mut String, results: &Results) {
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
         cache)\"). Each executor is measured: the default (the compiled plan) and async-graphql's resolvers \
         (`x-query-executor: resolvers`); the executor column is what the answers report in `extensions.executor`.\n\
         - Logged in: the same query with `authorization: Bearer <token>` of a registered user on every request; \
         the document does not read the caller, so the read model answers it from the shared response cache. Hive \
         Router gets the same token and forwards it (`headers.all.request.propagate`); the counting run checks \
         that every upstream request carried it.\n\
         - Persisted query: the document registered once (POST with `extensions.persistedQuery`), then every \
         request a GET of `/graphql?extensions={{\"persistedQuery\":{{\"version\":1,\"sha256Hash\":…}}}}&variables={{}}`.\n\
         - Hive Router deduplicates identical in-flight subgraph requests by default; every request here is the \
         same query, its best case, so it is measured twice: as shipped, and with `traffic_shaping.all.dedupe_enabled: \
         false`. Its upstream requests per request (2) are counted one request at a time, where nothing is shared.\n\
         - Federation gateways: supergraph composed offline with `@apollo/composition` from each service's \
         `{{ _service {{ sdl }} }}`; Apollo Gateway on Apollo Server (Node, `NODE_ENV=production`), Hive Gateway \
         (`createGatewayRuntime` on a Node HTTP server, one process), Hive Router 0.2.19 (HOST, PORT, \
         SUPERGRAPH_FILE_PATH). All bound to 127.0.0.1.\n\
         - SQL ceiling: `pgbench -M prepared` running the read model's `posts` statement \
         (gateway/src/sources/read_model/queries.rs, with its join, limit 21) at the same concurrency, no HTTP, no GraphQL.\n",
        results.warmup_seconds, results.seconds_per_point
    );
    let _ = writeln!(md, "The SQL statement of the ceiling:\n\n```sql\n{}```\n", throughput::CEILING_SQL);
}

/// What a section could not do.
fn notes(md: &mut String, results: &Results) {
    if !results.notes.is_empty() || !results.throughput.notes.is_empty() {
        let _ = writeln!(md, "## Notes\n");
        for note in results.throughput.notes.iter().chain(&results.notes) {
            let _ = writeln!(md, "- {note}");
        }
        let _ = writeln!(md);
    }
}
