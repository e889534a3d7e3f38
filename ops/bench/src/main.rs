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
mod pace;
mod procs;
mod profile;
mod rebuild;
mod report;
mod run;
mod stats;
mod subscribers;
mod system;
mod throughput;

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Context;
use clap::Parser;

use crate::profile::{Overrides, Plan, Profile};
use crate::report::{Machine, Results};
use crate::run::{Peers, Run, Sections};

#[derive(Debug, Parser)]
#[command(name = "agora-bench", about = "Agora's benchmark (run it through ops/bench/run)")]
struct Args {
    /// What the run measures and for how long; a flag below overrides one choice.
    #[arg(long, value_enum, default_value = "full")]
    profile: Profile,
    /// The same as `--profile quick`: 200 users, 10,000 posts, one
    /// concurrency, 5 s per point.
    #[arg(long)]
    quick: bool,
    #[command(flatten)]
    overrides: Overrides,
    /// Sections to run (comma-separated): throughput, freshness, subscribers, rebuild.
    #[arg(long, value_delimiter = ',', default_value = "throughput,freshness,subscribers,rebuild")]
    only: Vec<String>,
    /// Keep, from the results already in the results folder (latest.json),
    /// every section this run does not measure (`--only`), with a note
    /// saying which run measured what: to re-measure one section of the
    /// committed report.
    #[arg(long)]
    merge: bool,
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
    /// Where the release binaries (agora-bench-service) are (ops/bench/run
    /// sets it from CARGO_TARGET_DIR).
    #[arg(long, env = "AGORA_BENCH_BIN_DIR", default_value = "target/release")]
    bin_dir: PathBuf,
    #[arg(long, default_value = "ops/bench/peers")]
    peers_dir: PathBuf,
    #[arg(long, default_value = "ops/bench/results")]
    results_dir: PathBuf,
    /// Logs, supergraphs and scratch files.
    #[arg(long, default_value = "target/bench")]
    work_dir: PathBuf,
}

impl Args {
    fn plan(&self) -> Plan {
        let profile = if self.quick { Profile::Quick } else { self.profile };
        Plan::of(profile).with(&self.overrides)
    }
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

/// Drops the subscriber levels the open-files limit cannot hold, with a note.
fn fit_open_files(plan: &mut Plan, sections: &Sections, notes: &mut Vec<String>) {
    let Some(limit) = procs::open_files_limit() else { return };
    let needed = plan.subscriber_levels.iter().max().copied().unwrap_or(0) as u64 + 1_000;
    if sections.includes("subscribers") && limit < needed {
        let note = format!(
            "open files limit {limit} < {needed}: subscriber levels above {} were dropped (raise ulimit -n)",
            limit.saturating_sub(1_000)
        );
        eprintln!("{note}");
        notes.push(note);
        plan.subscriber_levels.retain(|&n| (n as u64) + 1_000 <= limit);
    }
}

/// The commit measured, and the files that differed from it (the working
/// tree is shared), outside ops/bench.
fn measured_commit() -> String {
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .output()
            .ok()
            .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
            .unwrap_or_default()
    };
    let commit = git(&["rev-parse", "--short", "HEAD"]).trim().to_owned();
    let status = git(&["status", "--porcelain", "--untracked-files=no"]);
    let dirty: Vec<&str> = status.lines().map(|l| &l[3..]).filter(|p| !p.starts_with("ops/bench/")).collect();
    if dirty.is_empty() {
        commit
    } else {
        format!("{commit} + uncommitted changes in {}", dirty.join(", "))
    }
}

/// Takes the sections this run did not measure from the earlier results
/// at `path`.
fn merge_earlier(results: &mut Results, sections: &Sections, path: &Path) -> anyhow::Result<()> {
    let earlier: Results =
        serde_json::from_slice(&std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?)
            .with_context(|| format!("{} holds no results", path.display()))?;
    let mut kept = Vec::new();
    if !sections.includes("throughput") {
        results.throughput = earlier.throughput;
        kept.push("throughput");
    }
    if !sections.includes("freshness") {
        results.freshness = earlier.freshness;
        kept.push("freshness");
    }
    if !sections.includes("subscribers") {
        results.subscribers = earlier.subscribers;
        kept.push("subscribers");
    }
    if !sections.includes("rebuild") {
        results.rebuild = earlier.rebuild;
        kept.push("rebuild");
    }
    for note in earlier.notes {
        if !results.notes.contains(&note) {
            results.notes.push(note);
        }
    }
    results.notes.push(format!(
        "This report merges two runs: {} measured at {} ({}, {}); {} from the run of {} ({}).",
        sections.0.join(", "),
        results.generated_at,
        results.git_commit,
        results.command,
        kept.join(", "),
        earlier.generated_at,
        earlier.git_commit
    ));
    Ok(())
}

/// Writes latest.md, latest.json and latest.png, and prints the report.
fn write_results(results: &Results, results_dir: &Path) -> anyhow::Result<()> {
    let markdown = report::markdown(results);
    std::fs::write(results_dir.join("latest.md"), &markdown)?;
    std::fs::write(results_dir.join("latest.json"), serde_json::to_vec_pretty(results)?)?;
    if let Err(error) = chart::draw(results, &results_dir.join("latest.png")) {
        eprintln!("the chart failed: {error:#}");
    }
    println!("\n{markdown}");
    println!("results written to {}", results_dir.display());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let started = Instant::now();
    let mut plan = args.plan();
    let sections = Sections(args.only.clone());
    let work_dir = absolute(&args.work_dir);
    let results_dir = absolute(&args.results_dir);
    let bin_dir = absolute(&args.bin_dir);
    std::fs::create_dir_all(&work_dir)?;
    std::fs::create_dir_all(&results_dir)?;
    if !bin_dir.join(system::SERVICE_BIN).is_file() {
        anyhow::bail!(
            "{} is missing: cargo build --release -p agora-bench first (ops/bench/run does)",
            bin_dir.join(system::SERVICE_BIN).display()
        );
    }
    let mut notes = Vec::new();
    fit_open_files(&mut plan, &sections, &mut notes);
    let peers = Peers {
        oha: args.oha_bin.clone(),
        node: args.node_bin.clone(),
        peers_dir: absolute(&args.peers_dir),
        hive_router: find_hive_router(&args),
        skip_node_gateways: args.skip_node_gateways,
    };
    let mut machine = Machine::probe();
    println!(
        "agora-bench: {} run on {} ({}), load average {}",
        plan.profile.name(),
        machine.summary(),
        machine.cpu,
        machine.load_average_at_start
    );

    println!("starting the system (embedded Kafka, auth-service, post-service, gateway)…");
    let mut system = system::System::start(&args.postgres_url, &bin_dir, &work_dir).await.context("starting the system")?;
    let run = Run { system: &mut system, plan: &plan, sections: &sections, peers: &peers, notes: &mut notes };
    // Ctrl-C or SIGTERM stops the processes this run started, too.
    let measured = tokio::select! {
        measured = run.measure(args.hold_seconds) => measured,
        _ = stop_signal() => Err(anyhow::anyhow!("interrupted")),
    };
    system.stop().await;
    let measured = measured?;

    machine.load_average_at_end = report::load_average();
    let mut results = Results {
        generated_at: chrono::Utc::now().format("%Y-%m-%d %H:%M UTC").to_string(),
        git_commit: measured_commit(),
        mode: plan.profile.name().into(),
        command: format!("ops/bench/run {}", std::env::args().skip(1).collect::<Vec<_>>().join(" ")).trim().to_owned(),
        machine,
        headline_concurrency: plan.headline,
        seconds_per_point: plan.seconds,
        warmup_seconds: plan.warmup,
        dataset: Some(measured.dataset),
        throughput: measured.throughput,
        ratios: Vec::new(),
        targets: Vec::new(),
        freshness: measured.freshness,
        rebuild: measured.rebuild,
        subscribers: measured.subscribers,
        notes,
        total_seconds: started.elapsed().as_secs_f64(),
    };
    if args.merge {
        merge_earlier(&mut results, &sections, &results_dir.join("latest.json"))?;
    }
    results.ratios = report::ratios(&results);
    results.targets = report::targets(&results);
    write_results(&results, &results_dir)
}
