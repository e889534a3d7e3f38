//! `agora-chaos-node broker|auth|post|gateway`: one part of the system as a
//! process of its own, for the chaos suite.
//!
//! - `broker`: the embedded Kafka-protocol broker (librdkafka's mock
//!   cluster) with Agora's topics; prints `bootstrap=<host:port>` and runs
//!   until SIGTERM/SIGINT. The suite freezes it with SIGSTOP.
//! - `auth`, `post`, `gateway`: the service's own `Application`, configured
//!   from the environment exactly like its binary (`auth-service`,
//!   `post-service`, `gateway`), as ops/bench/src/bin/service.rs does; Kafka
//!   is taken as given from `KAFKA_BROKERS` (the broker above, whose topics
//!   exist).

use std::io::Write;
use std::time::Duration;

use agora_platform::kafka::KafkaSettings;
use agora_platform::{shutdown, telemetry};
use anyhow::Context;
use clap::Parser;
use rdkafka::mocking::MockCluster;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn broker() -> anyhow::Result<()> {
    let cluster: MockCluster<'static, rdkafka::producer::DefaultProducerContext> =
        MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
    for topic in agora_schema::topics::ALL {
        cluster.create_topic(topic, agora_schema::topics::DEFAULT_PARTITIONS, 1)?;
    }
    println!("bootstrap={}", cluster.bootstrap_servers());
    std::io::stdout().flush()?;
    // The cluster is not Send: it stays on this thread while a small
    // runtime waits for the signal to stop.
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        let stop = shutdown::on_signal();
        stop.cancelled().await;
    });
    drop(cluster);
    Ok(())
}

async fn service(which: &str) -> anyhow::Result<()> {
    telemetry::init_logging();
    let brokers = std::env::var("KAFKA_BROKERS").context("KAFKA_BROKERS must name the suite's broker")?;
    let delivery_timeout_ms: u64 = std::env::var("KAFKA_DELIVERY_TIMEOUT_MS").ok().and_then(|v| v.parse().ok()).unwrap_or(30_000);
    let kafka = KafkaSettings { brokers, delivery_timeout: Duration::from_millis(delivery_timeout_ms) };
    let stop = shutdown::on_signal();
    match which {
        "auth" => {
            let config = agora_auth_service::Config::try_parse_from(["auth-service"])?;
            let app = agora_auth_service::Application::build(config, kafka).await.context("auth-service failed to start")?;
            tracing::info!(port = app.port(), "auth-service listening");
            app.run_until_stopped(stop).await
        }
        "post" => {
            let config = agora_post_service::Config::try_parse_from(["post-service"])?;
            let app = agora_post_service::Application::build(config, kafka).await.context("post-service failed to start")?;
            tracing::info!(port = app.port(), "post-service listening");
            app.run_until_stopped(stop).await
        }
        "gateway" => {
            let config = agora_gateway::Config::try_parse_from(["gateway"])?;
            let app = agora_gateway::Application::build(config, kafka).await.context("the gateway failed to start")?;
            tracing::info!(port = app.port(), "gateway listening");
            app.run_until_stopped(stop).await
        }
        _ => unreachable!(),
    }
}

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).unwrap_or_default().as_str() {
        "broker" => broker(),
        which @ ("auth" | "post" | "gateway") => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(service(which))
        }
        _ => anyhow::bail!("usage: agora-chaos-node broker|auth|post|gateway (configured from the environment)"),
    }
}
