//! One run's sections, in the order they are measured: throughput,
//! freshness, subscribers, rebuild. A section that fails leaves a note in the
//! results and the run goes on with the next one.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;

use crate::dataset::{self, BenchUser, LoadReport};
use crate::freshness::{self, FreshnessReport};
use crate::profile::Plan;
use crate::rebuild::{self, RebuildReport};
use crate::subscribers::{self, SubscriberLevel};
use crate::system::System;
use crate::throughput::{self, Outcome};

/// The sections a run measures (`--only`).
#[derive(Debug, Clone)]
pub struct Sections(pub Vec<String>);

impl Sections {
    pub fn includes(&self, name: &str) -> bool {
        self.0.iter().any(|section| section == name)
    }
}

/// What the throughput section needs besides the plan.
#[derive(Debug, Clone)]
pub struct Peers {
    pub oha: PathBuf,
    pub node: PathBuf,
    pub peers_dir: PathBuf,
    pub hive_router: Option<PathBuf>,
    pub skip_node_gateways: bool,
}

/// Everything measured, section by section.
pub struct Measured {
    pub dataset: LoadReport,
    pub throughput: Outcome,
    pub freshness: Option<FreshnessReport>,
    pub subscribers: Vec<SubscriberLevel>,
    pub rebuild: Option<RebuildReport>,
}

pub struct Run<'a> {
    pub system: &'a mut System,
    pub plan: &'a Plan,
    pub sections: &'a Sections,
    pub peers: &'a Peers,
    /// Why a section failed, or what it had to leave out.
    pub notes: &'a mut Vec<String>,
}

impl Run<'_> {
    pub async fn measure(mut self, hold_seconds: u64) -> anyhow::Result<Measured> {
        println!("loading the data set…");
        let (users, dataset) =
            dataset::load(self.system, self.plan.users, self.plan.posts).await.context("loading the data set")?;
        println!(
            "  {} users in {:.1} s; {} posts inserted in {:.1} s; read model and points caught up in {:.1} s ({} events)",
            dataset.users,
            dataset.register_seconds,
            dataset.posts,
            dataset.insert_posts_seconds,
            dataset.catch_up_seconds,
            dataset.events
        );
        self.hold(hold_seconds).await;
        let throughput = self.throughput(&users).await;
        // The mixed workload's commands leave the points ledger a backlog:
        // freshness starts from a quiet pipeline.
        if !throughput.mixed.is_empty() {
            self.quiet().await;
        }
        let mut freshness = self.freshness(&users).await;
        // Measure the next part on a quiet system: the burst of createPost
        // leaves the points ledger a backlog (one transaction per award).
        if let Some(seconds) = self.quiet().await {
            println!("  pipeline quiet (every post and point in the read model) {seconds:.1} s later");
            if let Some(report) = freshness.as_mut() {
                report.points_caught_up_seconds = Some(seconds);
            }
        }
        let subscribers = self.subscribers(&users).await?;
        let rebuild = self.rebuild().await;
        Ok(Measured { dataset, throughput, freshness, subscribers, rebuild })
    }

    /// Keeps the loaded system up before measuring, for profiling by hand.
    async fn hold(&self, seconds: u64) {
        if seconds == 0 {
            return;
        }
        let system = &self.system;
        println!(
            "holding {seconds} s: gateway {} (pid {}), auth-service {} (pid {}), post-service {} (pid {})",
            system.gateway_graphql(),
            system.gateway().pid,
            system.auth_graphql(),
            system.auth.pid,
            system.post_graphql(),
            system.post.pid
        );
        tokio::time::sleep(std::time::Duration::from_secs(seconds)).await;
    }

    /// Records why `section` failed; the run goes on.
    fn failed(&mut self, section: &str, error: anyhow::Error) {
        eprintln!("  {section} failed: {error:#}");
        self.notes.push(format!("{section} failed: {error:#}"));
    }

    async fn throughput(&mut self, users: &Arc<Vec<BenchUser>>) -> Outcome {
        if !self.sections.includes("throughput") {
            return Outcome::default();
        }
        println!("throughput (oha; pgbench for the SQL ceiling)…");
        let settings = throughput::Settings {
            oha: self.peers.oha.clone(),
            levels: self.plan.levels.clone(),
            headline: self.plan.headline,
            seconds: self.plan.seconds,
            warmup: self.plan.warmup,
            node: self.peers.node.clone(),
            peers_dir: self.peers.peers_dir.clone(),
            hive_router: self.peers.hive_router.clone(),
            skip_node_gateways: self.peers.skip_node_gateways,
            mixed_write_rates: self.plan.mixed_write_rates.clone(),
        };
        match throughput::run(self.system, &settings, users).await {
            Ok(outcome) => outcome,
            Err(error) => {
                self.failed("throughput", error);
                Outcome::default()
            }
        }
    }

    async fn freshness(&mut self, users: &Arc<Vec<BenchUser>>) -> Option<FreshnessReport> {
        if !self.sections.includes("freshness") {
            return None;
        }
        let (rate, seconds) = (self.plan.freshness_rate, self.plan.freshness_seconds);
        println!("freshness: createPost at {rate}/s for {seconds} s…");
        match freshness::run(self.system, users.clone(), rate, seconds).await {
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
                Some(report)
            }
            Err(error) => {
                self.failed("freshness", error);
                None
            }
        }
    }

    /// Waits until the read model shows every post and point; the seconds it took.
    async fn quiet(&mut self) -> Option<f64> {
        match dataset::wait_quiescent(self.system, self.plan.users).await {
            Ok(seconds) => Some(seconds),
            Err(error) => {
                self.notes.push(format!("the pipeline did not quiet down: {error:#}"));
                None
            }
        }
    }

    /// Every level with one shared document, then the largest with a
    /// document per subscriber (the worst case for the gateway).
    async fn subscribers(&mut self, users: &[BenchUser]) -> anyhow::Result<Vec<SubscriberLevel>> {
        let mut results = Vec::new();
        if !self.sections.includes("subscribers") {
            return Ok(results);
        }
        let (rate, seconds) = (self.plan.subscriber_rate, self.plan.subscriber_seconds);
        let levels = self.plan.subscriber_levels.clone();
        let largest = levels.iter().max().copied();
        for (n, distinct) in levels.iter().map(|&n| (n, false)).chain(largest.map(|n| (n, true))) {
            self.quiet().await;
            let documents = if distinct { "a document each" } else { "one document" };
            println!("subscribers: {n} on one gateway ({documents}), {rate} posts/s for {seconds} s…");
            match subscribers::run_level(self.system, users, n, distinct, rate, seconds).await {
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
                    results.push(level);
                }
                Err(error) => self.failed(&format!("subscribers ({n})"), error),
            }
        }
        // Leave a clean gateway behind.
        self.system.restart_gateway().await?;
        Ok(results)
    }

    async fn rebuild(&mut self) -> Option<RebuildReport> {
        if !self.sections.includes("rebuild") {
            return None;
        }
        println!("rebuild: a new read-model generation replaying every topic while the live one serves…");
        match rebuild::run(self.system, crate::system::PARTITIONS as usize).await {
            Ok(report) => {
                println!(
                    "  {} events in {:.1} s: {:.0} events/s, cut-over {:.0} ms, {} of {} reads failed",
                    report.events, report.seconds, report.events_per_second, report.cutover_ms, report.failed_reads, report.reads
                );
                Some(report)
            }
            Err(error) => {
                self.failed("rebuild", error);
                None
            }
        }
    }
}
