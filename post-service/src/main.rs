use agora_platform::backfill::BackfillArgs;
use agora_platform::{db, kafka, shutdown, telemetry};
use agora_post_service::{backfill, startup, Application, Config};
use anyhow::Context;
use clap::Parser;

/// mimalloc: the request path makes many small, short-lived allocations
/// across worker threads, where it is markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The service, or one of the operations an operator runs beside it.
#[derive(clap::Parser)]
#[command(name = "post-service")]
struct Cli {
    #[command(subcommand)]
    operation: Option<Operation>,
    #[command(flatten)]
    config: Config,
}

#[derive(clap::Subcommand)]
enum Operation {
    /// Emits, through the outbox, the events of every row that has none
    /// (data imported by SQL or older than the outbox); a second run emits nothing.
    Backfill(BackfillArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // Flushes the traces still buffered when main returns.
    let _telemetry = telemetry::init("post-service")?;
    let Cli { operation, config } = Cli::parse();
    if let Some(Operation::Backfill(args)) = operation {
        let pool = db::connect_and_migrate(&config.database(), startup::migrations()).await?;
        let report = backfill::run(&pool, args.batch_size).await?;
        println!("{report}");
        return Ok(());
    }
    let (kafka, _embedded_broker) = kafka::resolve(&config.kafka).await?;
    let application = Application::build(config, kafka).await.context("post-service failed to start")?;
    tracing::info!(port = application.port(), "post-service listening");
    application.run_until_stopped(shutdown::on_signal()).await
}
