//! `agora-local`: the whole system in one process, for a local run. It
//! starts the embedded Kafka-protocol broker (or uses `KAFKA_BROKERS`),
//! uses the PostgreSQL at `AGORA_POSTGRES_URL` or, when nothing answers
//! there, starts a private one in `.agora/postgres` ([`local::postgres`]),
//! creates the databases, and runs auth-service, post-service and the
//! gateway until Ctrl-C (or SIGTERM, or a service failing), then stops the
//! private PostgreSQL. Once the gateway is ready it seeds demo data if asked
//! (`--seed`, [`local::seed`]) and prints where everything is.

mod local;

use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use agora_platform::{kafka, shutdown, telemetry};
use anyhow::Context;
use clap::Parser;
use secrecy::SecretString;
use tokio_util::sync::CancellationToken;

use local::postgres::{self, PrivatePostgres};

#[derive(Debug, Parser)]
#[command(name = "agora-local", about = "Run all of Agora locally in one process")]
struct Args {
    /// PostgreSQL server URL; each service uses its own database on it.
    /// When nothing answers there, a private server is started instead.
    #[arg(long, env = "AGORA_POSTGRES_URL", default_value = "postgres://postgres@127.0.0.1:5432")]
    postgres_url: String,
    /// The data folder of the private PostgreSQL (kept between runs).
    #[arg(long, env = "AGORA_POSTGRES_FOLDER", default_value = ".agora/postgres")]
    postgres_folder: PathBuf,
    /// Where the PostgreSQL server binaries are (initdb, pg_ctl, postgres);
    /// unset: `pg_config --bindir`, then PATH, then /usr/lib/postgresql/*/bin.
    #[arg(long, env = "AGORA_POSTGRES_BINDIR")]
    postgres_bindir: Option<PathBuf>,
    #[arg(long, env = "AGORA_AUTH_PORT", default_value_t = 8081)]
    auth_port: u16,
    #[arg(long, env = "AGORA_POST_PORT", default_value_t = 8082)]
    post_port: u16,
    #[arg(long, env = "AGORA_GATEWAY_PORT", default_value_t = 8080)]
    gateway_port: u16,
    /// Port of auth-service's `/metrics`; unset: as auth-service reads it
    /// (`METRICS_PORT`, else 9081).
    #[arg(long, env = "AGORA_AUTH_METRICS_PORT")]
    auth_metrics_port: Option<u16>,
    /// Port of post-service's `/metrics`; unset: `METRICS_PORT`, else 9082.
    #[arg(long, env = "AGORA_POST_METRICS_PORT")]
    post_metrics_port: Option<u16>,
    /// Port of the gateway's `/metrics`; unset: `METRICS_PORT`, else 9080.
    #[arg(long, env = "AGORA_GATEWAY_METRICS_PORT")]
    gateway_metrics_port: Option<u16>,
    /// Where auth-service keeps its token signing key (created if missing).
    #[arg(long, env = "AUTH_SIGNING_KEY_FILE", default_value = ".agora/auth-signing-key.pem")]
    signing_key_file: PathBuf,
    /// Once ready, create a few users and posts through the public API
    /// (again on a later run: nothing is added twice).
    #[arg(long)]
    seed: bool,
    #[command(flatten)]
    kafka: kafka::KafkaArgs,
}

/// How long the ready message waits for the gateway's `/readyz`.
const READY_TIMEOUT: Duration = Duration::from_secs(120);

/// mimalloc: the request path makes many small, short-lived allocations
/// across worker threads, where it is markedly cheaper than glibc's malloc.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _telemetry = telemetry::init("agora-local")?;
    let args = Args::parse();
    let stop = shutdown::on_signal();
    let mut private = None;
    let postgres_url = if postgres::answers(&args.postgres_url) {
        args.postgres_url.clone()
    } else {
        tracing::info!(url = %args.postgres_url, "nothing answers on AGORA_POSTGRES_URL: starting a private PostgreSQL");
        let (folder, bindir) = (args.postgres_folder.clone(), args.postgres_bindir.clone());
        let server = tokio::task::spawn_blocking(move || {
            let bindir = postgres::find_bindir(bindir.as_deref())?;
            PrivatePostgres::start(&folder, bindir)
        })
        .await??;
        let url = server.url();
        private = Some(server);
        url
    };
    let result = run(&args, &postgres_url, private.as_ref(), stop).await;
    if let Some(mut server) = private {
        tokio::task::spawn_blocking(move || server.stop()).await?;
    }
    result
}

/// Runs the services until `stop` (or one of them fails).
async fn run(args: &Args, postgres_url: &str, private: Option<&PrivatePostgres>, stop: CancellationToken) -> anyhow::Result<()> {
    let started = tokio::select! {
        started = start(args, postgres_url) => started?,
        _ = stop.cancelled() => return Ok(()),
    };
    let Started { auth, post, gateway, kafka, _embedded_broker } = started;
    let ports = Ports {
        gateway: gateway.port(),
        gateway_metrics: gateway.metrics_port(),
        auth_metrics: auth.metrics_port(),
        post_metrics: post.metrics_port(),
    };
    let postgres = match private {
        Some(server) => format!("{} (private, data in {})", server.shown_url(), server.folder().display()),
        None => postgres_url.to_owned(),
    };
    let seed = args.seed;
    let announced = stop.clone();
    let services = vec![
        ("auth-service", tokio::spawn(auth.run_until_stopped(stop.child_token()))),
        ("post-service", tokio::spawn(post.run_until_stopped(stop.child_token()))),
        ("gateway", tokio::spawn(gateway.run_until_stopped(stop.child_token()))),
        (
            "startup",
            tokio::spawn(async move {
                tokio::select! {
                    ready = when_ready(ports, seed, &postgres, &kafka.brokers) => ready?,
                    _ = announced.cancelled() => return Ok(()),
                }
                announced.cancelled().await;
                Ok(())
            }),
        ),
    ];
    // One service ending stops the others.
    shutdown::supervise(stop, services).await
}

struct Started {
    auth: agora_auth_service::Application,
    post: agora_post_service::Application,
    gateway: agora_gateway::Application,
    kafka: kafka::KafkaSettings,
    _embedded_broker: Option<kafka::EmbeddedKafka>,
}

async fn start(args: &Args, postgres_url: &str) -> anyhow::Result<Started> {
    let (kafka, embedded_broker) = kafka::resolve(&args.kafka).await?;
    let database = |name: &str| agora_platform::db::with_database(postgres_url, name).map(SecretString::from);

    // Each service reads the environment as its own binary would; the
    // ports, databases and addresses of its neighbours are this run's.
    let auth_environment = agora_auth_service::Config::from_environment()?;
    let auth = agora_auth_service::Config {
        port: args.auth_port,
        metrics_port: args.auth_metrics_port.unwrap_or(auth_environment.metrics_port),
        database_url: database("agora_auth")?,
        signing_key_file: args.signing_key_file.clone(),
        // The gateway calls from loopback and names the client; so could
        // any local process (a local run only).
        trusted_proxies: vec![Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into()],
        ..auth_environment
    };
    let auth = agora_auth_service::Application::build(auth, kafka.clone()).await.context("auth-service failed to start")?;

    let jwks_url = format!("http://127.0.0.1:{}/.well-known/jwks.json", auth.port());
    let post_environment = agora_post_service::Config::from_environment()?;
    let post = agora_post_service::Config {
        port: args.post_port,
        metrics_port: args.post_metrics_port.unwrap_or(post_environment.metrics_port),
        database_url: database("agora_post")?,
        jwks_url: jwks_url.clone(),
        ..post_environment
    };
    let post = agora_post_service::Application::build(post, kafka.clone()).await.context("post-service failed to start")?;

    let gateway_environment = agora_gateway::Config::from_environment()?;
    let gateway = agora_gateway::Config {
        port: args.gateway_port,
        metrics_port: args.gateway_metrics_port.unwrap_or(gateway_environment.metrics_port),
        database_url: database("agora_read")?,
        auth_url: format!("http://127.0.0.1:{}/graphql", auth.port()),
        post_url: format!("http://127.0.0.1:{}/graphql", post.port()),
        jwks_url,
        ..gateway_environment
    };
    let gateway = agora_gateway::Application::build(gateway, kafka.clone()).await.context("the gateway failed to start")?;
    Ok(Started { auth, post, gateway, kafka, _embedded_broker: embedded_broker })
}

#[derive(Debug, Clone, Copy)]
struct Ports {
    gateway: u16,
    gateway_metrics: u16,
    auth_metrics: u16,
    post_metrics: u16,
}

/// Waits until the gateway's `/readyz` answers 200, seeds if asked, and
/// says where everything is.
async fn when_ready(ports: Ports, seed: bool, postgres: &str, kafka: &str) -> anyhow::Result<()> {
    let base = format!("http://127.0.0.1:{}", ports.gateway);
    wait_for_readiness(&format!("{base}/readyz")).await?;
    if seed {
        let seeded = local::seed::seed(&format!("{base}/graphql")).await.context("--seed failed")?;
        tracing::info!(
            users_registered = seeded.users_registered,
            users_existing = seeded.users_existing,
            posts_created = seeded.posts_created,
            posts_existing = seeded.posts_existing,
            password = local::seed::PASSWORD,
            "seeded"
        );
    }
    let metrics = |port: u16| format!("http://127.0.0.1:{port}/metrics");
    tracing::info!(
        app = %format!("{base}/app"),
        playground = %format!("{base}/graphql"),
        gateway_metrics = %metrics(ports.gateway_metrics),
        auth_metrics = %metrics(ports.auth_metrics),
        post_metrics = %metrics(ports.post_metrics),
        postgres,
        kafka,
        "Agora is ready"
    );
    println!(
        "\nAgora is ready:\n  app         {base}/app\n  playground  {base}/graphql\n  metrics     gateway {}, auth-service {}, post-service {}\n  postgres    {postgres}\n  kafka       {kafka}\nCtrl-C stops it.\n",
        metrics(ports.gateway_metrics),
        metrics(ports.auth_metrics),
        metrics(ports.post_metrics),
    );
    Ok(())
}

async fn wait_for_readiness(url: &str) -> anyhow::Result<()> {
    let client = reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(5)).build()?;
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let last = match client.get(url).send().await {
            Ok(response) if response.status().is_success() => return Ok(()),
            Ok(response) => format!("{}: {}", response.status(), response.text().await.unwrap_or_default()),
            Err(error) => error.to_string(),
        };
        if Instant::now() > deadline {
            // Slow, not broken (a long replay): the run goes on.
            tracing::warn!(url, answer = %last, "the gateway is not ready after {READY_TIMEOUT:?}; going on");
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
