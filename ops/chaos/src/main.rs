//! `agora-chaos`: runs the chaos suite and writes its table.
//! `--full` runs every scenario and writes ops/chaos/results/latest.md;
//! without it, the short run (as the integration test does).

use std::path::PathBuf;
use std::process::ExitCode;

use agora_chaos::runner::{self, Options};
use agora_chaos::scenarios::Scenario;
use agora_chaos::system::Programs;
use anyhow::Context;
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "agora-chaos", about = "Agora's chaos suite: faults under load, reconciliation after each")]
struct Args {
    /// Every scenario (else the short run).
    #[arg(long)]
    full: bool,
    /// Only these scenarios, comma-separated: steady, kill-auth, kill-post,
    /// kill-gateway-1, kill-gateway-2, broker, postgres, rebalance, duplicates, restart.
    #[arg(long, value_delimiter = ',')]
    scenarios: Vec<String>,
    #[arg(long)]
    workers: Option<usize>,
    /// Commands per second per worker.
    #[arg(long)]
    rate: Option<f64>,
    /// How long the broker stays frozen, in seconds.
    #[arg(long = "broker-frozen-seconds", value_name = "SECONDS", value_parser = agora_platform::config::seconds)]
    broker_frozen: Option<std::time::Duration>,
    /// Where to write the table (default with --full: ops/chaos/results/latest.md).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Work directory for the databases and logs (default: a new one under the temp directory).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// `agora-local` (default: next to this program).
    #[arg(long)]
    local_bin: Option<PathBuf>,
    /// Keep the work directory even when every scenario passed.
    #[arg(long)]
    keep: bool,
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let here = std::env::current_exe()?.parent().context("no directory")?.to_owned();
    let local = args.local_bin.clone().or_else(|| Some(here.join("agora-local")).filter(|path| path.exists()));
    let programs = Programs { node: here.join("agora-chaos-node"), local };
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("agora-chaos-{}", chrono::Utc::now().format("%Y%m%d-%H%M%S"))));
    let mut options = if args.full { Options::full(programs, dir.clone()) } else { Options::short(programs, dir.clone()) };
    if !args.scenarios.is_empty() {
        options.scenarios = args.scenarios.iter().map(|name| Scenario::parse(name)).collect::<anyhow::Result<_>>()?;
    }
    if let Some(workers) = args.workers {
        options.load.workers = workers;
    }
    if let Some(rate) = args.rate {
        options.load.rate = rate;
    }
    if let Some(frozen) = args.broker_frozen {
        options.timings.broker_frozen = frozen;
    }
    let rows = runner::run(&options).await?;
    let title = if args.full { "Chaos suite: full run" } else { "Chaos suite: short run" };
    let table = agora_chaos::report::markdown(&rows, &options, title);
    println!("{table}");
    let out = args.out.clone().or_else(|| args.full.then(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("results/latest.md")));
    if let Some(out) = out {
        std::fs::write(&out, &table).with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("chaos: wrote {}", out.display());
    }
    let passed = rows.iter().all(|row| row.passed()) && rows.len() == options.scenarios.len();
    if passed && !args.keep {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("chaos: logs and databases kept in {}", dir.display());
    }
    Ok(passed)
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("agora-chaos: {error:#}");
            ExitCode::from(2)
        }
    }
}
