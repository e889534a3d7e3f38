//! What an operator runs besides the gateway itself, as subcommands of its
//! binary: `gateway rebuild` (a new read-model generation from the start of
//! the log, then a switch of every replica) and `gateway generations` (the
//! read model's generations and which one serves) and `gateway dead-letters`
//! (list, replay or skip what the projector could not apply). They connect to the same
//! database and brokers as the gateway, from the same flags and environment.

use std::net::IpAddr;
use std::time::Duration;

use agora_platform::config::milliseconds;
use agora_platform::consumer::dead_letters;
use agora_platform::db;
use agora_platform::health::MetricsServer;
use agora_platform::kafka::KafkaSettings;
use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::projector::rebuild::{self, RebuildSettings};
use crate::projector::{self, generation};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Operation {
    /// Replays every topic from its start into a new read-model generation
    /// while the serving one answers, then switches every gateway to it.
    Rebuild(RebuildArgs),
    /// Lists the read model's generations and which one serves.
    Generations,
    /// Lists, replays or skips the projector's dead letters.
    #[command(subcommand)]
    DeadLetters(dead_letters::Command),
}

#[derive(Debug, Clone, clap::Args)]
pub struct RebuildArgs {
    /// The most events applied in one transaction.
    #[arg(long, env = "REBUILD_BATCH_SIZE", default_value_t = 5_000)]
    pub batch_size: usize,
    /// The longest the serving projector may be held at the switch.
    #[arg(long = "cutover-timeout-ms", env = "REBUILD_CUTOVER_TIMEOUT_MS", value_name = "MILLISECONDS", default_value = "5000", value_parser = milliseconds)]
    pub cutover_timeout: Duration,
    /// Keep the old generation's schema (for a rollback) instead of dropping it.
    #[arg(long)]
    pub keep_old: bool,
    /// Address of the rebuild's own `/metrics` listener (progress gauges).
    #[arg(long, env = "REBUILD_METRICS_HOST", default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Port of the rebuild's `/metrics` listener (0 picks a free one).
    #[arg(long, env = "REBUILD_METRICS_PORT", default_value_t = 9089)]
    pub metrics_port: u16,
}

/// Runs `operation` to its end.
pub async fn run(operation: Operation, config: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let migrations = vec![agora_platform::consumer::migrations(), sqlx::migrate!("./migrations")];
    let pool = db::connect_and_migrate(&config.database(), migrations).await?;
    match operation {
        Operation::DeadLetters(command) => projector::dead_letters(&pool, command).await,
        Operation::Generations => {
            for row in generation::list(&pool).await? {
                println!(
                    "g{}\tshape {}\t{}\tcreated {}\t{}",
                    row.generation,
                    row.shape_version,
                    row.state,
                    row.created_at.to_rfc3339(),
                    row.serving_since.map(|at| format!("serving since {}", at.to_rfc3339())).unwrap_or_default()
                );
            }
            Ok(())
        }
        Operation::Rebuild(args) => {
            // A rebuild replays the topics of the running system: an embedded
            // broker of its own would hold none of them.
            let brokers = config.kafka.brokers.clone().context(
                "a rebuild replays the running system's topics: set KAFKA_BROKERS to its brokers \
                 (agora-local logs the embedded broker's address as kafka=...)",
            )?;
            let kafka = KafkaSettings { brokers, delivery_timeout: config.kafka.delivery_timeout };
            let metrics = MetricsServer::bind(args.metrics_host, args.metrics_port).await?;
            tracing::info!(port = metrics.port(), "rebuild progress on /metrics");
            let metrics_task = tokio::spawn(metrics.run(shutdown.child_token()));
            let settings = RebuildSettings {
                batch_size: args.batch_size,
                cutover_timeout: args.cutover_timeout,
                keep_old: args.keep_old,
                ..RebuildSettings::default()
            };
            let report = rebuild::run(pool, kafka, &config.projector_group, settings, shutdown.clone()).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            shutdown.cancel();
            let _ = metrics_task.await;
            Ok(())
        }
    }
}
