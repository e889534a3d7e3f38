//! `agora-reconcile`: compares a running system's write models and outboxes
//! with its read model and topics, and reports every difference without
//! fixing anything. Exit status: 0 no difference, 1 differences, 2 the
//! comparison could not be made.

use std::process::ExitCode;
use std::time::Duration;

use agora_ops::reconcile::{reconcile, Sources};
use clap::Parser;

#[derive(Debug, Parser)]
#[command(name = "agora-reconcile", about = "Compare Agora's write models and outboxes with its read model and topics")]
struct Args {
    /// PostgreSQL server the three databases live on (used for any URL not given).
    #[arg(long, env = "AGORA_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// auth-service's database (default: agora_auth on --postgres-url).
    #[arg(long, env = "AUTH_DATABASE_URL")]
    auth_database_url: Option<String>,
    /// post-service's database (default: agora_post on --postgres-url).
    #[arg(long, env = "POST_DATABASE_URL")]
    post_database_url: Option<String>,
    /// The gateway's read model (default: agora_read on --postgres-url).
    #[arg(long, env = "READ_DATABASE_URL")]
    read_database_url: Option<String>,
    /// Kafka bootstrap servers; without them the topics are not read.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS")]
    kafka_brokers: Option<String>,
    /// How long reading one topic may take.
    #[arg(long = "topic-timeout-seconds", value_name = "SECONDS", default_value = "60", value_parser = agora_platform::config::seconds)]
    topic_timeout: Duration,
    /// Differences listed per check in the human-readable report.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// The whole report as JSON on stdout instead.
    #[arg(long)]
    json: bool,
}

fn database(given: &Option<String>, server: &str, name: &str) -> anyhow::Result<String> {
    match given {
        Some(url) => Ok(url.clone()),
        None => agora_platform::db::with_database(server, name),
    }
}

async fn run(args: Args) -> anyhow::Result<bool> {
    let sources = Sources {
        auth_database_url: database(&args.auth_database_url, &args.postgres_url, "agora_auth")?,
        post_database_url: database(&args.post_database_url, &args.postgres_url, "agora_post")?,
        read_database_url: database(&args.read_database_url, &args.postgres_url, "agora_read")?,
        kafka_brokers: args.kafka_brokers.clone(),
        topic_timeout: args.topic_timeout,
    };
    let report = reconcile(&sources).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.render(args.limit));
    }
    Ok(report.is_clean())
}

#[tokio::main]
async fn main() -> ExitCode {
    match run(Args::parse()).await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(error) => {
            eprintln!("agora-reconcile: {error:#}");
            ExitCode::from(2)
        }
    }
}
