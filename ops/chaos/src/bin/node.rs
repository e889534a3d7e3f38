//! `agora-chaos-node broker|auth|post|gateway`: one part of the system as a
//! process of its own, for the chaos suite.
//!
//! - `broker`: the embedded Kafka-protocol broker (librdkafka's mock
//!   cluster) with Agora's topics; prints `bootstrap=<host:port>` and runs
//!   until SIGTERM/SIGINT. The suite freezes it with SIGSTOP.
//! - `auth`, `post`, `gateway`: the service's own `Application`, configured
//!   from the environment exactly like its binary (`auth-service`,
//!   `post-service`, `gateway`), through `agora_ops::service`; Kafka is
//!   taken as given from `KAFKA_BROKERS` (the broker above, whose topics
//!   exist).

use agora_platform::shutdown;
use anyhow::Context;
use rdkafka::mocking::MockCluster;
use std::io::Write;

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

fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).unwrap_or_default().as_str() {
        "broker" => broker(),
        which @ ("auth" | "post" | "gateway") => {
            tokio::runtime::Builder::new_multi_thread().enable_all().build()?.block_on(agora_ops::service::run(which))
        }
        _ => anyhow::bail!("usage: agora-chaos-node broker|auth|post|gateway (configured from the environment)"),
    }
}
