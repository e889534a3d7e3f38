use agora_gateway::operations::{self, Operation};
use agora_gateway::{Application, Config};
use agora_platform::{kafka, shutdown, telemetry};
use anyhow::Context;
use clap::Parser;

/// mimalloc: the request path makes many small, short-lived allocations
/// across worker threads, where it is markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The gateway, or one of the operations an operator runs beside it.
#[derive(clap::Parser)]
#[command(name = "gateway", about = "Agora's public GraphQL gateway")]
struct Cli {
    #[command(subcommand)]
    operation: Option<Operation>,
    #[command(flatten)]
    config: Config,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Flushes the traces still buffered when main returns.
    let _telemetry = telemetry::init("gateway")?;
    let Cli { operation, config } = Cli::parse();
    if let Some(operation) = operation {
        return operations::run(operation, config, shutdown::on_signal()).await;
    }
    let (kafka, _embedded_broker) = kafka::resolve(&config.kafka).await?;
    let application = Application::build(config, kafka).await.context("the gateway failed to start")?;
    tracing::info!(port = application.port(), "gateway listening");
    application.run_until_stopped(shutdown::on_signal()).await
}
