//! The system under test: an embedded Kafka-protocol broker in this process,
//! fresh databases, and auth-service, post-service and the gateway each as
//! its own process (so that each one's memory and CPU can be read).

use std::path::{Path, PathBuf};
use std::time::Duration;

use agora_platform::kafka::EmbeddedKafka;
use anyhow::Context;
use sqlx::migrate::MigrateDatabase;
use sqlx::Postgres;

use crate::procs::{free_port, Proc, Spec};

pub const AUTH_DB: &str = "agora_bench_auth";
pub const POST_DB: &str = "agora_bench_post";
pub const READ_DB: &str = "agora_bench_read";

/// Partitions per topic on the benchmark's broker. librdkafka's mock
/// cluster keeps at most 5 MiB or 100,000 messages per partition and drops
/// the oldest beyond that; at 16 partitions the full data set's topics stay
/// whole, so the rebuild replays every event ever produced.
pub const PARTITIONS: i32 = 16;

/// Runs one service as its own process (see src/bin/service.rs).
pub const SERVICE_BIN: &str = "agora-bench-service";

pub struct System {
    pub kafka: EmbeddedKafka,
    pub postgres: String,
    pub bin_dir: PathBuf,
    pub work_dir: PathBuf,
    pub auth: Proc,
    pub post: Proc,
    pub gateway: Option<Proc>,
    client: reqwest::Client,
}

pub fn database_url(postgres: &str, name: &str) -> anyhow::Result<String> {
    agora_platform::db::with_database(postgres, name)
}

/// Drops the database if it exists (whoever is connected); the service
/// that uses it creates it anew.
pub async fn drop_database(postgres: &str, name: &str) -> anyhow::Result<()> {
    let url = database_url(postgres, name)?;
    if Postgres::database_exists(&url).await.context("cannot reach PostgreSQL")? {
        Postgres::force_drop_database(&url).await.with_context(|| format!("cannot drop {name}"))?;
    }
    Ok(())
}

fn common_env(postgres: &str, brokers: &str, port: u16, database: &str) -> anyhow::Result<Vec<(String, String)>> {
    Ok(vec![
        ("HOST".into(), "127.0.0.1".into()),
        ("PORT".into(), port.to_string()),
        ("DATABASE_URL".into(), database_url(postgres, database)?),
        ("KAFKA_BROKERS".into(), brokers.to_owned()),
        ("RUST_LOG".into(), std::env::var("BENCH_SERVICE_LOG").unwrap_or_else(|_| "warn".into())),
        ("METRICS_PORT".into(), "0".into()),
        // The benchmark registers, logs in and posts as a few clients on
        // one address, far past a public deployment's budgets.
        ("AUTH_REGISTRATIONS_PER_ADDRESS".into(), "0".into()),
        ("AUTH_LOGIN_ATTEMPTS_PER_ADDRESS".into(), "0".into()),
        ("AUTH_LOGIN_ATTEMPTS_PER_USERNAME_AND_ADDRESS".into(), "0".into()),
        ("AUTH_LOGIN_FAILURES_PER_USERNAME".into(), "0".into()),
        ("POSTS_PER_AUTHOR_PER_HOUR".into(), "0".into()),
    ])
}

impl System {
    pub async fn start(postgres: &str, bin_dir: &Path, work_dir: &Path) -> anyhow::Result<System> {
        for name in [AUTH_DB, POST_DB, READ_DB] {
            drop_database(postgres, name).await?;
        }
        let logs = work_dir.join("logs");
        std::fs::create_dir_all(&logs)?;
        let kafka = EmbeddedKafka::start_with_partitions(PARTITIONS)?;
        let brokers = kafka.bootstrap_servers().to_owned();
        let client = crate::gql::client();

        let key_file = work_dir.join("auth-signing-key.pem");
        let _ = std::fs::remove_file(&key_file);
        let port = free_port()?;
        let mut env = common_env(postgres, &brokers, port, AUTH_DB)?;
        env.push(("AUTH_SIGNING_KEY_FILE".into(), key_file.display().to_string()));
        // Tokens outlive a full run.
        env.push(("AUTH_TOKEN_TTL_SECONDS".into(), "86400".into()));
        let program = bin_dir.join(SERVICE_BIN);
        let mut auth = Proc::spawn(
            Spec { name: "auth-service", program: &program, args: vec!["auth".into()], env, port, cwd: None },
            &logs,
        )?;
        auth.wait_ready(&client, "/healthz", false, Duration::from_secs(60)).await?;

        let port = free_port()?;
        let mut env = common_env(postgres, &brokers, port, POST_DB)?;
        env.push(("AUTH_JWKS_URL".into(), auth.url("/.well-known/jwks.json")));
        let mut post = Proc::spawn(
            Spec { name: "post-service", program: &program, args: vec!["post".into()], env, port, cwd: None },
            &logs,
        )?;
        post.wait_ready(&client, "/healthz", false, Duration::from_secs(60)).await?;

        let mut system = System {
            kafka,
            postgres: postgres.to_owned(),
            bin_dir: bin_dir.to_owned(),
            work_dir: work_dir.to_owned(),
            auth,
            post,
            gateway: None,
            client,
        };
        system.restart_gateway().await?;
        Ok(system)
    }

    pub fn auth_graphql(&self) -> String {
        self.auth.url("/graphql")
    }

    pub fn post_graphql(&self) -> String {
        self.post.url("/graphql")
    }

    /// A gateway process on `database` with projector group `group`, its
    /// `/metrics` on a port of its own (the mixed workload reads the
    /// response cache's counters there).
    pub fn spawn_gateway(&self, name: &str, database: &str, group: &str) -> anyhow::Result<Proc> {
        let port = free_port()?;
        let metrics_port = free_port()?;
        let mut env = common_env(&self.postgres, self.kafka.bootstrap_servers(), port, database)?;
        env.retain(|(key, _)| key != "METRICS_PORT");
        env.push(("METRICS_PORT".into(), metrics_port.to_string()));
        env.push(("AUTH_URL".into(), self.auth_graphql()));
        env.push(("POST_URL".into(), self.post_graphql()));
        env.push(("AUTH_JWKS_URL".into(), self.auth.url("/.well-known/jwks.json")));
        env.push(("PROJECTOR_GROUP".into(), group.to_owned()));
        let program = self.bin_dir.join(SERVICE_BIN);
        let mut gateway = Proc::spawn(
            Spec { name, program: &program, args: vec!["gateway".into()], env, port, cwd: None },
            &self.work_dir.join("logs"),
        )?;
        gateway.metrics_port = Some(metrics_port);
        Ok(gateway)
    }

    pub fn gateway(&self) -> &Proc {
        self.gateway.as_ref().expect("the gateway runs")
    }

    pub fn gateway_graphql(&self) -> String {
        self.gateway().url("/graphql")
    }

    /// Stops the gateway (if any) and starts a fresh process on the same
    /// read model (the projector resumes where the database says), so that
    /// memory figures start from a clean process.
    pub async fn restart_gateway(&mut self) -> anyhow::Result<()> {
        if let Some(old) = self.gateway.take() {
            old.stop(Duration::from_secs(10)).await;
        }
        let mut gateway = self.spawn_gateway("gateway", READ_DB, "agora-gateway-projector")?;
        gateway.wait_ready(&self.client, "/healthz", false, Duration::from_secs(60)).await?;
        self.gateway = Some(gateway);
        Ok(())
    }

    pub async fn stop(mut self) {
        if let Some(gateway) = self.gateway.take() {
            gateway.stop(Duration::from_secs(10)).await;
        }
        self.post.stop(Duration::from_secs(10)).await;
        self.auth.stop(Duration::from_secs(10)).await;
    }
}

pub async fn pool(postgres: &str, database: &str, size: u32) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(size)
        .connect(&database_url(postgres, database)?)
        .await
        .with_context(|| format!("cannot connect to {database}"))
}
