//! One run: the system started, then each scenario in turn under load, each
//! followed by a wait for quiet (reconciliation finds no difference, or the
//! deadline passes) and the verdict on its commands and subscribers.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agora_ops::reconcile::{reconcile, Report};

use crate::client::Client;
use crate::feed::{Feed, FEED_GRACE};
use crate::load::{Load, LoadSettings};
use crate::scenarios::{Scenario, Timings};
use crate::system::{Programs, System};
use crate::verify::{self, Effects, FeedCounts};

#[derive(Debug, Clone)]
pub struct Options {
    pub scenarios: Vec<Scenario>,
    pub load: LoadSettings,
    pub timings: Timings,
    /// Load before the fault, and after it.
    pub warmup: Duration,
    pub cooldown: Duration,
    /// How long to wait for quiet after the load stopped.
    pub quiet_deadline: Duration,
    /// How long the client retries one command.
    pub command_deadline: Duration,
    pub programs: Programs,
    /// Where the databases, logs and the broker's output go.
    pub dir: PathBuf,
}

/// One line of the table, and what explains it.
#[derive(Debug, Clone, Default)]
pub struct Row {
    pub scenario: String,
    pub effects: Effects,
    pub feed: FeedCounts,
    /// From the end of the load to the first reconciliation without difference.
    pub converged: Option<Duration>,
    pub differences: usize,
    /// Differences the previous scenario did not leave.
    pub new_differences: usize,
    pub reconciliation: String,
    /// The whole scenario, load, fault and wait included.
    pub elapsed: Duration,
    /// The fault could not be applied, or a check could not be made.
    pub errors: Vec<String>,
}

impl Row {
    /// Nothing lost, nothing applied twice, every subscriber's feed exact,
    /// no reconciliation difference, and no command that a careful client
    /// could not handle: none answered INTERNAL (not retryable, yet the
    /// command may have been applied) and none failed although applied.
    pub fn passed(&self) -> bool {
        self.errors.is_empty()
            && !self.effects.failed.contains_key("INTERNAL")
            && self.effects.failed_but_applied == 0
            && self.effects.lost.is_empty()
            && self.effects.twice.is_empty()
            && self.feed.missing == 0
            && self.feed.duplicated == 0
            && self.differences == 0
    }
}

impl Row {
    /// The row's figures on one line, for the console.
    pub fn line(&self) -> String {
        let converged = self.converged.map_or_else(|| "never".to_owned(), |d| format!("in {:.1} s", d.as_secs_f64()));
        format!(
            "sent {}, acknowledged {}, lost {}, applied twice {}, feed missing {}/{}, feed duplicated {}, converged {converged}, differences {}{}",
            self.effects.sent,
            self.effects.acknowledged,
            self.effects.lost.len(),
            self.effects.twice.len(),
            self.feed.missing,
            self.feed.expected,
            self.feed.duplicated,
            self.differences,
            if self.passed() { "" } else { "  ← FAILED" }
        )
    }
}

type Keys = BTreeSet<String>;

fn keys(report: &Report) -> Keys {
    report.differences.iter().map(|d| format!("{:?} {:?} {}", d.check, d.kind, d.id)).collect()
}

/// Runs every scenario of `options`; the rows, in order. Fails only when the
/// system cannot be started at all.
pub async fn run(options: &Options) -> anyhow::Result<Vec<Row>> {
    std::fs::create_dir_all(&options.dir)?;
    let mut system = System::start(&options.dir, options.programs.clone()).await?;
    let mut feed = Feed::start(&system.client_gateways());
    feed.wait_connected(system.client_gateways().len()).await;
    let mut rows = Vec::new();
    let mut previous = Keys::new();
    for (index, scenario) in options.scenarios.iter().enumerate() {
        eprintln!("chaos: {} …", scenario.name());
        let was_local = system.local;
        let mut row = Row { scenario: scenario.name(), ..Row::default() };
        if let Err(error) = scenario.prepare(&mut system).await {
            row.errors.push(format!("prepare: {error:#}"));
            rows.push(row);
            break;
        }
        if system.local != was_local {
            feed.stop().await;
            feed = Feed::start(&system.client_gateways());
            feed.wait_connected(system.client_gateways().len()).await;
        }
        previous = one(options, &mut system, &feed, *scenario, index, &mut row, previous).await;
        eprintln!("chaos: {} → {}", row.scenario, row.line());
        rows.push(row);
    }
    feed.stop().await;
    system.shutdown().await;
    Ok(rows)
}

async fn one(
    options: &Options,
    system: &mut System,
    feed: &Feed,
    scenario: Scenario,
    index: usize,
    row: &mut Row,
    previous: Keys,
) -> Keys {
    let started = Instant::now();
    let urls = system.client_gateways().iter().map(|(_, port)| format!("http://127.0.0.1:{port}/graphql")).collect();
    let client = Arc::new(Client::new(urls, options.command_deadline));
    let load = Load::start(client, options.load, &format!("s{index}"));
    tokio::time::sleep(options.warmup).await;
    if let Err(error) = scenario.inject(system, &options.timings, &load).await {
        row.errors.push(format!("fault: {error:#}"));
    }
    tokio::time::sleep(options.cooldown).await;
    let commands = load.stop().await;
    let stopped = Instant::now();

    let mut last: Option<Report> = None;
    loop {
        match reconcile(&system.sources()).await {
            Ok(report) => {
                let clean = report.is_clean();
                last = Some(report);
                if clean {
                    row.converged = Some(stopped.elapsed());
                    break;
                }
            }
            Err(error) => row.reconciliation = format!("reconciliation failed: {error:#}"),
        }
        if stopped.elapsed() > options.quiet_deadline {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let grace = FEED_GRACE;
    let feed_deadline = Instant::now() + Duration::from_secs(15);
    while !verify::feed_complete(&commands, &feed.sessions(), started, grace) && Instant::now() < feed_deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    row.feed = verify::feed(&commands, &feed.sessions(), (started, Instant::now()), grace);
    row.elapsed = started.elapsed();
    let sources = system.sources();
    match verify::effects(&commands, &sources.auth_database_url, &sources.post_database_url, &sources.read_database_url).await {
        Ok(effects) => row.effects = effects,
        Err(error) => row.errors.push(format!("checking the commands: {error:#}")),
    }
    match last {
        Some(report) => {
            let now = keys(&report);
            row.differences = report.differences.len();
            row.new_differences = now.difference(&previous).count();
            row.reconciliation = report.render(8);
            now
        }
        None => previous,
    }
}

impl Options {
    /// The short run (part of `cargo test`): two scenarios, low load.
    pub fn short(programs: Programs, dir: PathBuf) -> Options {
        Options {
            scenarios: vec![Scenario::Steady, Scenario::Kill("post-service")],
            load: LoadSettings { workers: 3, rate: 1.0, commands_per_user: 12 },
            timings: Timings {
                pause: Duration::from_secs(2),
                broker_frozen: Duration::from_secs(10),
                rebalance_stay: Duration::from_secs(8),
                republish: 20,
            },
            warmup: Duration::from_secs(3),
            cooldown: Duration::from_secs(3),
            quiet_deadline: Duration::from_secs(30),
            command_deadline: Duration::from_secs(30),
            programs,
            dir,
        }
    }

    /// The full run: every scenario, a steadier load, a 30 s broker freeze.
    pub fn full(programs: Programs, dir: PathBuf) -> Options {
        Options {
            scenarios: Scenario::all(),
            load: LoadSettings { workers: 6, rate: 1.5, commands_per_user: 20 },
            timings: Timings {
                pause: Duration::from_secs(3),
                broker_frozen: Duration::from_secs(30),
                rebalance_stay: Duration::from_secs(10),
                republish: 40,
            },
            warmup: Duration::from_secs(5),
            cooldown: Duration::from_secs(5),
            quiet_deadline: Duration::from_secs(90),
            command_deadline: Duration::from_secs(60),
            ..Options::short(programs, dir)
        }
    }
}
