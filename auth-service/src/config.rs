//! auth-service's configuration, from flags and the environment.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use agora_platform::config::{milliseconds, seconds};
use agora_platform::db::DatabaseSettings;
use agora_platform::kafka::KafkaArgs;
use secrecy::SecretString;

use crate::rate_limit::BudgetSettings;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "auth-service", about = "Agora's auth-service: users, credentials, tokens and the points ledger")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8081)]
    pub port: u16,
    /// PostgreSQL URL of auth-service's own database (created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/agora_auth", value_parser = agora_platform::db::secret)]
    pub database_url: SecretString,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// What one query may ask (depth, cost, aliases, fields).
    #[command(flatten)]
    pub query_limits: agora_platform::query_limits::SubgraphLimitArgs,
    /// PKCS#8 PEM file of the Ed25519 key that signs tokens; generated on
    /// first start when missing (a development convenience).
    #[arg(long, env = "AUTH_SIGNING_KEY_FILE", default_value = ".agora/auth-signing-key.pem")]
    pub signing_key_file: PathBuf,
    /// Earlier signing keys (comma-separated PEM files), still published in
    /// the JWKS and accepted while their tokens live: a key rotation.
    #[arg(long, env = "AUTH_PREVIOUS_KEY_FILES", value_delimiter = ',')]
    pub previous_key_files: Vec<PathBuf>,
    /// Lifetime of an access token.
    #[arg(long = "token-ttl-seconds", env = "AUTH_TOKEN_TTL_SECONDS", value_name = "SECONDS", default_value = "900", value_parser = seconds)]
    pub token_ttl: Duration,
    /// Address of the Prometheus `/metrics` listener.
    #[arg(long, env = "METRICS_HOST", default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Port of the `/metrics` listener (0 picks a free one).
    #[arg(long, env = "METRICS_PORT", default_value_t = 9081)]
    pub metrics_port: u16,
    /// Login attempts allowed per minute for one username from one client
    /// address (0: no limit).
    #[arg(long, env = "AUTH_LOGIN_ATTEMPTS_PER_USERNAME_AND_ADDRESS", default_value_t = 10)]
    pub login_attempts_per_username_and_address: u32,
    /// Login attempts allowed per minute from one client address, whatever
    /// the usernames (0: no limit).
    #[arg(long, env = "AUTH_LOGIN_ATTEMPTS_PER_ADDRESS", default_value_t = 60)]
    pub login_attempts_per_address: u32,
    /// Wrong passwords allowed per hour for one username from anywhere;
    /// past them wrong passwords are RATE_LIMITED, a right one still logs in
    /// (0: no limit).
    #[arg(long, env = "AUTH_LOGIN_FAILURES_PER_USERNAME", default_value_t = 100)]
    pub login_failures_per_username: u32,
    /// Registrations allowed per hour from one client address (0: no limit).
    #[arg(long, env = "AUTH_REGISTRATIONS_PER_ADDRESS", default_value_t = 20)]
    pub registrations_per_address: u32,
    /// Password hashes (argon2id) computed at once; 0: one per core.
    #[arg(long, env = "AUTH_HASHING_CONCURRENCY", default_value_t = 0)]
    pub hashing_concurrency: usize,
    /// How long a login or registration waits for a hashing slot before it
    /// is answered RATE_LIMITED.
    #[arg(long = "hashing-wait-ms", env = "AUTH_HASHING_WAIT_MS", value_name = "MILLISECONDS", default_value = "5000", value_parser = milliseconds)]
    pub hashing_wait: Duration,
    /// Peers whose X-Forwarded-For names the real client (the gateway's
    /// address); none by default, so a client cannot name itself.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Kafka consumer group of the points ledger.
    #[arg(long, env = "AUTH_LEDGER_GROUP", default_value = "agora-auth-points-ledger")]
    pub ledger_group: String,
}

impl Default for Config {
    /// The defaults `--help` shows, the environment unread: for a service
    /// run in code (tests), which sets what it needs field by field.
    fn default() -> Self {
        agora_platform::config::defaults()
    }
}

impl Config {
    /// The configuration from the environment alone, as the binary reads it
    /// when given no flags.
    pub fn from_environment() -> Result<Self, clap::Error> {
        agora_platform::config::from_environment()
    }

    pub fn database(&self) -> DatabaseSettings {
        DatabaseSettings { url: self.database_url.clone(), max_connections: self.database_max_connections }
    }

    pub fn budgets(&self) -> BudgetSettings {
        let cores = std::thread::available_parallelism().map(usize::from).unwrap_or(1);
        BudgetSettings {
            login_attempts_per_username_and_address: self.login_attempts_per_username_and_address,
            login_attempts_per_address: self.login_attempts_per_address,
            login_failures_per_username: self.login_failures_per_username,
            registrations_per_address: self.registrations_per_address,
            hashing_concurrency: if self.hashing_concurrency == 0 { cores } else { self.hashing_concurrency },
            hashing_wait: self.hashing_wait,
        }
    }
}
