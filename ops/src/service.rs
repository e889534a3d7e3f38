//! One Agora service as a process of its own, configured from the
//! environment exactly like its own binary (`auth-service`, `post-service`,
//! `gateway`) and started the same way (`Application::build`, then
//! `run_until_stopped` until SIGTERM/Ctrl-C), for the tools that run the
//! system as separate processes (the benchmark, the chaos suite).
//!
//! The one difference: Kafka is taken as given from `KAFKA_BROKERS` (the
//! tool's embedded broker, whose topics already exist) instead of through
//! `agora_platform::kafka::resolve`, whose topic creation does not return
//! against the embedded (librdkafka mock) broker.

use agora_platform::kafka::{KafkaArgs, KafkaSettings};
use agora_platform::{shutdown, telemetry};
use anyhow::Context;

/// The services [`run`] can start.
pub const ROLES: [&str; 3] = ["auth", "post", "gateway"];

/// Runs the service `role` (one of [`ROLES`]) until a stop signal.
pub async fn run(role: &str) -> anyhow::Result<()> {
    telemetry::init_logging();
    let brokers = std::env::var("KAFKA_BROKERS").context("KAFKA_BROKERS must name the broker to use")?;
    // The broker as given, with the delivery timeout the service's own
    // configuration read (`KAFKA_DELIVERY_TIMEOUT_MS`).
    let kafka = |args: &KafkaArgs| KafkaSettings { brokers: brokers.clone(), delivery_timeout: args.delivery_timeout };
    let stop = shutdown::on_signal();
    match role {
        "auth" => {
            let config = agora_auth_service::Config::from_environment()?;
            let kafka = kafka(&config.kafka);
            let app = agora_auth_service::Application::build(config, kafka).await.context("auth-service failed to start")?;
            tracing::info!(port = app.port(), "auth-service listening");
            app.run_until_stopped(stop).await
        }
        "post" => {
            let config = agora_post_service::Config::from_environment()?;
            let kafka = kafka(&config.kafka);
            let app = agora_post_service::Application::build(config, kafka).await.context("post-service failed to start")?;
            tracing::info!(port = app.port(), "post-service listening");
            app.run_until_stopped(stop).await
        }
        "gateway" => {
            let config = agora_gateway::Config::from_environment()?;
            let kafka = kafka(&config.kafka);
            let app = agora_gateway::Application::build(config, kafka).await.context("the gateway failed to start")?;
            tracing::info!(port = app.port(), "gateway listening");
            app.run_until_stopped(stop).await
        }
        other => anyhow::bail!("unknown service {other:?}: one of {}", ROLES.join(", ")),
    }
}
