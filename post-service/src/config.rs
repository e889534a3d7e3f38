//! post-service's configuration, from flags and the environment.

use std::net::IpAddr;
use std::time::Duration;

use agora_platform::config::milliseconds;
use agora_platform::db::DatabaseSettings;
use agora_platform::kafka::KafkaArgs;
use secrecy::SecretString;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "post-service", about = "Agora's post-service: posts")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8082)]
    pub port: u16,
    /// PostgreSQL URL of post-service's own database (created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/agora_post", value_parser = agora_platform::db::secret)]
    pub database_url: SecretString,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 10)]
    pub database_max_connections: u32,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// What one query may ask (depth, cost, aliases, fields).
    #[command(flatten)]
    pub query_limits: agora_platform::query_limits::SubgraphLimitArgs,
    /// Where auth-service publishes the keys that sign tokens.
    #[arg(long, env = "AUTH_JWKS_URL", default_value = "http://127.0.0.1:8081/.well-known/jwks.json")]
    pub jwks_url: String,
    /// The shortest time between two JWKS fetches caused by unknown key ids.
    #[arg(long = "jwks-min-refetch-ms", env = "JWKS_MIN_REFETCH_MS", value_name = "MILLISECONDS", default_value = "10000", value_parser = milliseconds)]
    pub jwks_min_refetch: Duration,
    /// Posts one author may publish per hour (0: no limit).
    #[arg(long, env = "POSTS_PER_AUTHOR_PER_HOUR", default_value_t = 60)]
    pub posts_per_author_per_hour: u32,
    /// Address of the Prometheus `/metrics` listener.
    #[arg(long, env = "METRICS_HOST", default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Port of the `/metrics` listener (0 picks a free one).
    #[arg(long, env = "METRICS_PORT", default_value_t = 9082)]
    pub metrics_port: u16,
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
}
