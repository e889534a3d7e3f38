//! The gateway's configuration, from flags and the environment.

use std::net::IpAddr;
use std::time::Duration;

use agora_platform::config::milliseconds;
use agora_platform::db::DatabaseSettings;
use agora_platform::kafka::KafkaArgs;
use agora_platform::query_limits::{CostModel, Limits, QueryLimiter};
use secrecy::SecretString;

use crate::transport::websocket::LiveSettings;

#[derive(Debug, Clone, clap::Parser)]
#[command(name = "gateway", about = "Agora's public GraphQL gateway")]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = 8080)]
    pub port: u16,
    /// PostgreSQL URL of the read model (created if missing).
    #[arg(long, env = "DATABASE_URL", default_value = "postgres://postgres@127.0.0.1:5432/agora_read", value_parser = agora_platform::db::secret)]
    pub database_url: SecretString,
    #[arg(long, env = "DATABASE_MAX_CONNECTIONS", default_value_t = 20)]
    pub database_max_connections: u32,
    #[command(flatten)]
    pub kafka: KafkaArgs,
    /// auth-service's GraphQL endpoint.
    #[arg(long, env = "AUTH_URL", default_value = "http://127.0.0.1:8081/graphql")]
    pub auth_url: String,
    /// post-service's GraphQL endpoint.
    #[arg(long, env = "POST_URL", default_value = "http://127.0.0.1:8082/graphql")]
    pub post_url: String,
    /// Where auth-service publishes the keys that sign tokens.
    #[arg(long, env = "AUTH_JWKS_URL", default_value = "http://127.0.0.1:8081/.well-known/jwks.json")]
    pub jwks_url: String,
    /// The shortest time between two JWKS fetches caused by unknown key ids.
    #[arg(long = "jwks-min-refetch-ms", env = "JWKS_MIN_REFETCH_MS", value_name = "MILLISECONDS", default_value = "10000", value_parser = milliseconds)]
    pub jwks_min_refetch: Duration,
    /// How long a call to a service may take.
    #[arg(long = "upstream-timeout-ms", env = "UPSTREAM_TIMEOUT_MS", value_name = "MILLISECONDS", default_value = "5000", value_parser = milliseconds)]
    pub upstream_timeout: Duration,
    /// How long a mutation, or a query with a consistency token, waits for the read model.
    #[arg(long = "consistency-timeout-ms", env = "CONSISTENCY_TIMEOUT_MS", value_name = "MILLISECONDS", default_value = "5000", value_parser = milliseconds)]
    pub consistency_timeout: Duration,
    /// Kafka consumer group of the projector (replicas sharing a read model share it).
    #[arg(long, env = "PROJECTOR_GROUP", default_value = "agora-gateway-projector")]
    pub projector_group: String,
    /// The most events the projector applies in one transaction.
    #[arg(long, env = "PROJECTOR_BATCH_SIZE", default_value_t = 500)]
    pub projector_batch_size: usize,
    /// `/readyz` answers 503 while the projector is more than this many
    /// events behind the log (0: the lag does not count). Every replica
    /// shares the projector's lag, so all of them leave the load balancer
    /// together: set it above what a burst or a backfill produces.
    #[arg(long, env = "READY_MAX_PROJECTOR_LAG", default_value_t = 1_000)]
    pub ready_max_projector_lag: u64,
    /// How often the projector's lag is measured (for `/metrics` and `/readyz`).
    #[arg(long = "projector-lag-interval-ms", env = "PROJECTOR_LAG_INTERVAL_MS", value_name = "MILLISECONDS", default_value = "1000", value_parser = milliseconds)]
    pub projector_lag_interval: Duration,
    /// Fields nested in fields.
    #[arg(long, env = "MAX_QUERY_DEPTH", default_value_t = 12)]
    pub max_query_depth: usize,
    /// The cost of a query: each field 1, times the size of every list above it.
    #[arg(long, env = "MAX_QUERY_COMPLEXITY", default_value_t = 5_000)]
    pub max_query_complexity: u64,
    /// Aliased fields, with fragments expanded.
    #[arg(long, env = "MAX_QUERY_ALIASES", default_value_t = 30)]
    pub max_query_aliases: u64,
    /// Fields once fragments are expanded (and selections as written).
    #[arg(long, env = "MAX_QUERY_FIELDS", default_value_t = 1_000)]
    pub max_query_fields: u64,
    /// The largest request body accepted.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = 256 * 1024)]
    pub body_limit_bytes: usize,
    /// Bytes of read-model answers kept until the read model changes
    /// (anonymous queries only; 0 turns the response cache off).
    #[arg(long, env = "RESPONSE_CACHE_BYTES", default_value_t = 64 * 1024 * 1024)]
    pub response_cache_bytes: u64,
    /// Bytes of compiled read-model plans kept, by document (0 turns the
    /// compiled executor off: the resolvers answer every query).
    #[arg(long, env = "COMPILED_PLANS_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub compiled_plans_bytes: u64,
    /// Bytes of parsed documents kept, by their text (0: every request is parsed).
    #[arg(long, env = "PARSED_DOCUMENTS_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub parsed_documents_bytes: u64,
    /// Bytes of documents kept for automatic persisted queries.
    #[arg(long, env = "PERSISTED_QUERIES_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub persisted_queries_bytes: u64,
    /// Trusted documents (an Apollo persisted-query manifest, a `.graphql`
    /// file, or a folder of them): when set, only they run.
    #[arg(long, env = "TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<std::path::PathBuf>,
    /// Events the live feed buffers for its slowest subscriber; one further
    /// behind is dropped.
    #[arg(long, env = "LIVE_BUFFER_EVENTS", default_value_t = 1024)]
    pub live_buffer_events: usize,
    /// The most events a subscription resumed from a cursor may have
    /// missed; one that missed more is refused (CURSOR_EXPIRED).
    #[arg(long, env = "RESUME_MAX_EVENTS", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub resume_max_events: u64,
    /// How long a WebSocket client may take to send connection_init.
    #[arg(long = "ws-init-timeout-ms", env = "WS_INIT_TIMEOUT_MS", value_name = "MILLISECONDS", default_value = "10000", value_parser = milliseconds)]
    pub ws_init_timeout: Duration,
    /// How often the server sends a keep-alive on a WebSocket.
    #[arg(long = "ws-keep-alive-ms", env = "WS_KEEP_ALIVE_MS", value_name = "MILLISECONDS", default_value = "15000", value_parser = milliseconds)]
    pub ws_keep_alive: Duration,
    /// How long a message may wait for a WebSocket client that does not read.
    #[arg(long = "ws-send-timeout-ms", env = "WS_SEND_TIMEOUT_MS", value_name = "MILLISECONDS", default_value = "5000", value_parser = milliseconds)]
    pub ws_send_timeout: Duration,
    /// How long one request may take in all.
    #[arg(long = "request-timeout-ms", env = "REQUEST_TIMEOUT_MS", value_name = "MILLISECONDS", default_value = "15000", value_parser = milliseconds)]
    pub request_timeout: Duration,
    /// Operations one WebSocket connection may run at once.
    #[arg(long, env = "WS_MAX_SUBSCRIPTIONS", default_value_t = 100)]
    pub ws_max_subscriptions: usize,
    /// The largest WebSocket message (or frame) accepted; a larger one
    /// closes the connection with 1009.
    #[arg(long, env = "WS_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub ws_max_message_bytes: usize,
    /// The key every gateway replica signs consistency tokens with. Unset:
    /// a fixed, public local-development key (with a warning at startup).
    #[arg(long, env = "CONSISTENCY_TOKEN_SECRET", value_parser = agora_platform::db::secret)]
    pub consistency_token_secret: Option<SecretString>,
    /// Peers (a load balancer) whose X-Forwarded-For names the client;
    /// none by default: the gateway is the edge.
    #[arg(long, env = "TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpAddr>,
    /// Address of the Prometheus `/metrics` listener.
    #[arg(long, env = "METRICS_HOST", default_value = "127.0.0.1")]
    pub metrics_host: IpAddr,
    /// Port of the `/metrics` listener (0 picks a free one).
    #[arg(long, env = "METRICS_PORT", default_value_t = 9080)]
    pub metrics_port: u16,
}

impl Default for Config {
    /// The defaults `--help` shows, the environment unread: for a gateway
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

    pub fn query_limiter(&self) -> QueryLimiter {
        let limits = Limits {
            max_depth: self.max_query_depth,
            max_cost: self.max_query_complexity,
            max_aliases: self.max_query_aliases,
            max_fields: self.max_query_fields,
        };
        QueryLimiter::new(limits, CostModel::agora())
    }

    pub fn live(&self) -> LiveSettings {
        LiveSettings {
            init_timeout: self.ws_init_timeout,
            keep_alive: self.ws_keep_alive,
            send_timeout: self.ws_send_timeout,
            max_subscriptions: self.ws_max_subscriptions,
            max_message_bytes: self.ws_max_message_bytes,
        }
    }
}
