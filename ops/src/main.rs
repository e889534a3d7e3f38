//! `agora-local`: the whole system in one process, for a local run. It
//! starts the embedded Kafka-protocol broker (or uses `KAFKA_BROKERS`),
//! creates the databases on the local PostgreSQL, and runs auth-service,
//! post-service and the gateway on their default ports until Ctrl-C.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;

use agora_platform::{kafka, shutdown, telemetry};
use anyhow::Context;
use clap::Parser;
use secrecy::SecretString;

#[derive(Debug, Parser)]
#[command(name = "agora-local", about = "Run all of Agora locally in one process")]
struct Args {
    /// PostgreSQL server URL; each service uses its own database on it.
    #[arg(long, env = "AGORA_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    #[arg(long, env = "AGORA_AUTH_PORT", default_value_t = 8081)]
    auth_port: u16,
    #[arg(long, env = "AGORA_POST_PORT", default_value_t = 8082)]
    post_port: u16,
    #[arg(long, env = "AGORA_GATEWAY_PORT", default_value_t = 8080)]
    gateway_port: u16,
    /// Where auth-service keeps its token signing key (created if missing).
    #[arg(long, env = "AUTH_SIGNING_KEY_FILE", default_value = ".agora/auth-signing-key.pem")]
    signing_key_file: PathBuf,
    #[command(flatten)]
    kafka: kafka::KafkaArgs,
}

/// mimalloc: the request path makes many small, short-lived allocations
/// across worker threads, where it is markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init_logging();
    let args = Args::parse();
    let (kafka, _embedded_broker) = kafka::resolve(&args.kafka).await?;
    let database = |name: &str| agora_platform::db::with_database(&args.postgres_url, name).map(SecretString::from);

    // Each service reads the environment as its own binary would; the
    // ports, databases and addresses of its neighbours are this run's.
    let auth = agora_auth_service::Config {
        port: args.auth_port,
        database_url: database("agora_auth")?,
        signing_key_file: args.signing_key_file.clone(),
        // The gateway calls from loopback and names the client; so could
        // any local process (a local run only).
        trusted_proxies: vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
        ..agora_auth_service::Config::from_environment()?
    };
    let auth = agora_auth_service::Application::build(auth, kafka.clone()).await.context("auth-service failed to start")?;

    let jwks_url = format!("http://127.0.0.1:{}/.well-known/jwks.json", auth.port());
    let post = agora_post_service::Config {
        port: args.post_port,
        database_url: database("agora_post")?,
        jwks_url: jwks_url.clone(),
        ..agora_post_service::Config::from_environment()?
    };
    let post = agora_post_service::Application::build(post, kafka.clone()).await.context("post-service failed to start")?;

    let gateway = agora_gateway::Config {
        port: args.gateway_port,
        database_url: database("agora_read")?,
        auth_url: format!("http://127.0.0.1:{}/graphql", auth.port()),
        post_url: format!("http://127.0.0.1:{}/graphql", post.port()),
        jwks_url,
        ..agora_gateway::Config::from_environment()?
    };
    let gateway = agora_gateway::Application::build(gateway, kafka.clone()).await.context("the gateway failed to start")?;

    tracing::info!(
        gateway = %format!("http://127.0.0.1:{}/graphql", gateway.port()),
        auth = auth.port(),
        post = post.port(),
        kafka = %kafka.brokers,
        "Agora is running; open the gateway in a browser for GraphiQL; Ctrl-C stops it"
    );
    let stop = shutdown::on_signal();
    let services = vec![
        ("auth-service", tokio::spawn(auth.run_until_stopped(stop.child_token()))),
        ("post-service", tokio::spawn(post.run_until_stopped(stop.child_token()))),
        ("gateway", tokio::spawn(gateway.run_until_stopped(stop.child_token()))),
    ];
    // One service ending stops the others.
    shutdown::supervise(stop, services).await
}
