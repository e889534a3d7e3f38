use agora_auth_service::{Application, Config};
use agora_platform::{kafka, shutdown, telemetry};
use anyhow::Context;
use clap::Parser;

/// mimalloc: the request path makes many small, short-lived allocations
/// across worker threads, where it is markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_logging();
    let config = Config::parse();
    let (kafka, _embedded_broker) = kafka::resolve(&config.kafka).await?;
    let application = Application::build(config, kafka).await.context("auth-service failed to start")?;
    tracing::info!(port = application.port(), "auth-service listening");
    application.run_until_stopped(shutdown::on_signal()).await
}
