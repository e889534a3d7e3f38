//! `agora-bench`: the read model against composition and federation
//! gateways, freshness, rebuild and subscribers, in one run on loopback.
//! Start it with `ops/bench/run` (which installs the tools); see
//! `ops/bench/README.md`.

mod chart;
mod dataset;
mod freshness;
mod gql;
mod kafka_log;
mod load;
mod procs;
mod rebuild;
mod report;
mod stats;
mod subscribers;
mod system;
mod throughput;

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use crate::report::{Machine, Results};

#[derive(Debug, Parser)]
#[command(name = "agora-bench", about = "Agora's benchmark (run it through ops/bench/run)")]
struct Args {
    /// A short run: 200 users, 10,000 posts, one concurrency, 5 s per point,
    /// 100/s freshness.
    #[arg(long)]
    quick: bool,
    #[arg(long)]
    users: Option<usize>,
    #[arg(long)]
    posts: Option<usize>,
    /// Concurrency levels of "posts with authors" (comma-separated).
    #[arg(long, value_delimiter = ',')]
    concurrency: Option<Vec<usize>>,
    /// The concurrency of the table, the ratios and the deep query.
    #[arg(long)]
    headline_concurrency: Option<usize>,
    /// Seconds per measured point.
    #[arg(long)]
    seconds: Option<f64>,
    /// Warm-up seconds before the first point of each target.
    #[arg(long)]
    warmup: Option<f64>,
    /// createPost per second for the freshness measurement.
    #[arg(long)]
    freshness_rate: Option<f64>,
    #[arg(long)]
    freshness_seconds: Option<f64>,
    /// Subscriber counts (comma-separated).
    #[arg(long, value_delimiter = ',')]
    subscribers: Option<Vec<usize>>,
    /// Posts per second while subscribers listen.
    #[arg(long)]
    subscriber_post_rate: Option<f64>,
    #[arg(long)]
    subscriber_seconds: Option<f64>,
    /// Sections to run (comma-separated): throughput, freshness, subscribers, rebuild.
    #[arg(long, value_delimiter = ',', default_value = "throughput,freshness,subscribers,rebuild")]
    only: Vec<String>,
    /// Keep the loaded system up this many seconds before measuring (for
    /// profiling by hand: the URLs and pids are printed).
    #[arg(long, default_value_t = 0)]
    hold_seconds: u64,
    #[arg(long)]
    skip_hive_router: bool,
    #[arg(long)]
    skip_node_gateways: bool,
    /// The Hive Router binary (default: hive_router or hive-router on PATH or in ~/.cargo/bin).
    #[arg(long, env = "HIVE_ROUTER_BIN")]
    hive_router_bin: Option<PathBuf>,
    #[arg(long, env = "OHA_BIN", default_value = "oha")]
    oha_bin: PathBuf,
    #[arg(long, env = "NODE_BIN", default_value = "node")]
    node_bin: PathBuf,
    #[arg(long, env = "AGORA_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// Where the release binaries (agora-bench-service) are.
    #[arg(long, default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value = "ops/bench/peers")]
    peers_dir: PathBuf,
    #[arg(long, default_value = "ops/bench/results")]
    results_dir: PathBuf,
    /// Logs, supergraphs and scratch files.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|p| p.is_file())
}

fn find_hive_router(args: &Args) -> Option<PathBuf> {
    if args.skip_hive_router {
        return None;
    }
    if let Some(bin) = &args.hive_router_bin {
        return bin.is_file().then(|| bin.clone());
    }
    let home = std::env::var_os("HOME").map(PathBuf::from);
    for name in ["hive_router", "hive-router", "router"] {
        if let Some(found) = which(name).filter(|_| name != "router") {
            return Some(found);
        }
        if let Some(home) = &home {
            let candidate = home.join(".cargo/bin").join(name);
            if candidate.is_file() && name != "router" {
                return Some(candidate);
            }
        }
    }
    None
}

async fn stop_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("a SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
}

fn absolute(path: &std::path::Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| std::env::current_dir().expect("a working directory").join(path))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let quick = args.quick;
    let users = args.users.unwrap_or(if quick { 200 } else { 1_000 });
    let posts = args.posts.unwrap_or(if quick { 10_000 } else { 50_000 });
    let levels = args.concurrency.clone().unwrap_or_else(|| if quick { vec![32] } else { vec![1, 8, 32, 64] });
    let headline = args.headline_concurrency.unwrap_or(32);
    let mut levels = levels;
    if !levels.contains(&headline) {
        levels.push(headline);
    }
    levels.sort_unstable();
    levels.dedup();
    let seconds = args.seconds.unwrap_or(if quick { 5.0 } else { 10.0 });
    let warmup = args.warmup.unwrap_or(if quick { 2.0 } else { 4.0 });
    let freshness_rate = args.freshness_rate.unwrap_or(500.0);
    let freshness_seconds = args.freshness_seconds.unwrap_or(if quick { 5.0 } else { 20.0 });
    let mut subscriber_levels = args.subscribers.clone().unwrap_or_else(|| vec![1_000, 5_000, 10_000]);
    let subscriber_rate = args.subscriber_post_rate.unwrap_or(5.0);
    let subscriber_seconds = args.subscriber_seconds.unwrap_or(if quick { 10.0 } else { 20.0 });
    let sections = |name: &str| args.only.iter().any(|s| s == name);

    let work_dir = absolute(&args.work_dir);
    let results_dir = absolute(&args.results_dir);
    let bin_dir = absolute(&args.bin_dir);
    let peers_dir = absolute(&args.peers_dir);
    std::fs::create_dir_all(&work_dir)?;
    std::fs::create_dir_all(&results_dir)?;
    if !bin_dir.join(system::SERVICE_BIN).is_file() {
        anyhow::bail!(
            "{} is missing: cargo build --release -p agora-bench first (ops/bench/run does)",
            bin_dir.join(system::SERVICE_BIN).display()
        );
    }
    let mut notes = Vec::new();
    if let Some(limit) = procs::open_files_limit() {
        let needed = subscriber_levels.iter().max().copied().unwrap_or(0) as u64 + 1_000;
        if sections("subscribers") && limit < needed {
            let note = format!(
                "open files limit {limit} < {needed}: subscriber levels above {} were dropped (raise ulimit -n)",
                limit.saturating_sub(1_000)
            );
            eprintln!("{note}");
            notes.push(note);
            subscriber_levels.retain(|&n| (n as u64) + 1_000 <= limit);
        }
    }
    let hive_router = find_hive_router(&args);
    let machine = Machine::probe();
    println!(
        "agora-bench: {} run on {} ({}), load average {}",
        if quick { "quick" } else { "full" },
        machine.summary(),
        machine.cpu,
        machine.load_average_at_start
    );

    println!("starting the system (embedded Kafka, auth-service, post-service, gateway)…");
    let mut system = system::System::start(&args.postgres_url, &bin_dir, &work_dir).await.context("starting the system")?;
    let outcome = async {
        println!("loading the data set…");
        let (bench_users, dataset) = dataset::load(&system, users, posts).await.context("loading the data set")?;
        println!(
            "  {} users in {:.1} s; {} posts inserted in {:.1} s; read model and points caught up in {:.1} s ({} events)",
            dataset.users,
            dataset.register_seconds,
            dataset.posts,
            dataset.insert_posts_seconds,
            dataset.catch_up_seconds,
            dataset.events
        );
        if args.hold_seconds > 0 {
            println!(
                "holding {} s: gateway {} (pid {}), auth-service {} (pid {}), post-service {} (pid {})",
                args.hold_seconds,
                system.gateway_graphql(),
                system.gateway().pid,
                system.auth_graphql(),
                system.auth.pid,
                system.post_graphql(),
                system.post.pid
            );
            tokio::time::sleep(std::time::Duration::from_secs(args.hold_seconds)).await;
        }
        let mut throughput_outcome = throughput::Outcome::default();
        if sections("throughput") {
            println!("throughput (oha; pgbench for the SQL ceiling)…");
            let settings = throughput::Settings {
                oha: args.oha_bin.clone(),
                levels: levels.clone(),
                headline,
                seconds,
                warmup,
                node: args.node_bin.clone(),
                peers_dir: peers_dir.clone(),
                hive_router: hive_router.clone(),
                skip_node_gateways: args.skip_node_gateways,
            };
            match throughput::run(&mut system, &settings).await {
                Ok(outcome) => throughput_outcome = outcome,
                Err(error) => {
                    eprintln!("  throughput failed: {error:#}");
                    notes.push(format!("throughput failed: {error:#}"));
                }
            }
        }
        let mut freshness_report = None;
        if sections("freshness") {
            println!("freshness: createPost at {freshness_rate}/s for {freshness_seconds} s…");
            match freshness::run(&system, bench_users.clone(), freshness_rate, freshness_seconds).await {
                Ok(report) => {
                    println!(
                        "  achieved {:.0}/s; commit → visible p50 {:.1} ms p99 {:.1} ms max {:.1} ms; createPost p99 {:.1} ms; failed {}, never visible {}",
                        report.achieved_rate_per_second,
                        report.freshness.p50_ms,
                        report.freshness.p99_ms,
                        report.freshness.max_ms,
                        report.command.p99_ms,
                        report.failed,
                        report.not_seen
                    );
                    freshness_report = Some(report);
                }
                Err(error) => {
                    eprintln!("  freshness failed: {error:#}");
                    notes.push(format!("freshness failed: {error:#}"));
                }
            }
        }
        // Measure the next part on a quiet system: the burst of createPost
        // leaves the points ledger a backlog (one transaction per award).
        match dataset::wait_quiescent(&system, users).await {
            Ok(seconds) => {
                println!("  pipeline quiet (every post and point in the read model) {seconds:.1} s later");
                if let Some(report) = freshness_report.as_mut() {
                    report.points_caught_up_seconds = Some(seconds);
                }
            }
            Err(error) => notes.push(format!("the pipeline did not quiet down: {error:#}")),
        }
        let mut subscriber_results = Vec::new();
        if sections("subscribers") {
            // Every level with one shared document, then the largest with a
            // document per subscriber (the worst case for the gateway).
            let largest = subscriber_levels.iter().max().copied();
            let runs = subscriber_levels.iter().map(|&n| (n, false)).chain(largest.map(|n| (n, true)));
            for (n, distinct) in runs {
                if let Err(error) = dataset::wait_quiescent(&system, users).await {
                    notes.push(format!("the pipeline did not quiet down: {error:#}"));
                }
                let documents = if distinct { "a document each" } else { "one document" };
                println!("subscribers: {n} on one gateway ({documents}), {subscriber_rate} posts/s for {subscriber_seconds} s…");
                match subscribers::run_level(&mut system, &bench_users, n, distinct, subscriber_rate, subscriber_seconds).await {
                    Ok(level) => {
                        println!(
                            "  {} connected; {}/{} deliveries; p50 {:.1} ms p99 {:.1} ms; RSS idle {} → connected {} MiB, peak {} MiB; CPU {}%",
                            level.connected,
                            level.deliveries,
                            level.expected_deliveries,
                            level.latency.p50_ms,
                            level.latency.p99_ms,
                            level.rss_idle_mib.map_or(0.0, |v| v).round(),
                            level.rss_connected_mib.map_or(0.0, |v| v).round(),
                            level.peak_rss_mib.map_or(0.0, |v| v).round(),
                            level.cpu_percent.map_or(0.0, |v| v).round()
                        );
                        subscriber_results.push(level);
                    }
                    Err(error) => {
                        eprintln!("  subscribers ({n}) failed: {error:#}");
                        notes.push(format!("subscribers ({n}) failed: {error:#}"));
                    }
                }
            }
            // Leave a clean gateway behind.
            system.restart_gateway().await?;
        }
        let mut rebuild_report = None;
        if sections("rebuild") {
            println!("rebuild: a fresh read model replaying every topic…");
            match rebuild::run(&system).await {
                Ok(report) => {
                    println!("  {} events in {:.1} s: {:.0} events/s", report.events, report.seconds, report.events_per_second);
                    rebuild_report = Some(report);
                }
                Err(error) => {
                    eprintln!("  rebuild failed: {error:#}");
                    notes.push(format!("rebuild failed: {error:#}"));
                }
            }
        }
        anyhow::Ok((dataset, throughput_outcome, freshness_report, subscriber_results, rebuild_report))
    };
    // Ctrl-C or SIGTERM stops the processes this run started, too.
    let outcome = tokio::select! {
        outcome = outcome => outcome,
        _ = stop_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    system.stop().await;
    let (dataset, throughput_outcome, freshness_report, subscriber_results, rebuild_report) = outcome?;

    let mut machine = machine;
    machine.load_average_at_end = report::load_average();
    let git_commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    // The working tree is shared: say when the measured code was not exactly the commit.
    let dirty: Vec<String> = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .map(|l| l[3..].to_owned())
                .filter(|p| !p.starts_with("ops/bench/"))
                .collect()
        })
        .unwrap_or_default();
    let git_commit =
        if dirty.is_empty() { git_commit } else { format!("{git_commit} + uncommitted changes in {}", dirty.join(", ")) };
    let mut results = Results {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        git_commit,
        mode: if quick { "quick".into() } else { "full".into() },
        command: format!("ops/bench/run {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")).trim().to_owned(),
        machine,
        headline_concurrency: headline,
        seconds_per_point: seconds,
        warmup_seconds: warmup,
        dataset: Some(dataset),
        throughput: throughput_outcome,
        ratios: Vec::new(),
        freshness: freshness_report,
        rebuild: rebuild_report,
        subscribers: subscriber_results,
        notes,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    results.ratios = report::ratios(&results);
    let markdown = report::markdown(&results);
    std::fs::write(results_dir.join("latest.md"), &markdown)?;
    std::fs::write(results_dir.join("latest.json"), serde_json::to_vec_pretty(&results)?)?;
    if let Err(error) = chart::draw(&results, &results_dir.join("latest.png")) {
        eprintln!("the chart failed: {error:#}");
    }
    println!("\n{markdown}");
    println!("results written to {}", results_dir.display());
    Ok(())
}
