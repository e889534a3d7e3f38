//! Building and running auth-service: `Application::build` binds the
//! listener and prepares everything, `run_until_stopped` serves HTTP and
//! runs the outbox relay and the points ledger until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use agora_platform::client_address::{self, TrustedProxies};
use agora_platform::health::MetricsServer;
use agora_platform::kafka::{KafkaProbe, KafkaSettings};
use agora_platform::outbox::{Relay, RelaySettings};
use agora_platform::receipts::WriteReceipts;
use agora_platform::{db, health, subgraph, tokens, trace_context};
use anyhow::Context;
use async_graphql_axum::GraphQLRequest;
use axum::extract::{Extension, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::graphql::{self, AuthSchema, ClientAddress, ResolverDependencies};
use crate::keys::SigningKeys;
use crate::rate_limit::Budgets;

/// The advisory lock key that elects auth-service's one active outbox relay.
pub const RELAY_LOCK_KEY: i64 = 0x6167_6f72_6175_7468; // "agorauth"

#[derive(Clone)]
struct AppState {
    schema: AuthSchema,
    keys: Arc<SigningKeys>,
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    pool: PgPool,
    kafka: KafkaSettings,
    config: Config,
    router: Router,
    metrics: MetricsServer,
}

/// The migrations of the service's database, run before it serves or backfills.
pub fn migrations() -> Vec<sqlx::migrate::Migrator> {
    vec![db::outbox_migrations(), agora_platform::consumer::migrations(), sqlx::migrate!("./migrations")]
}

impl Application {
    pub async fn build(config: Config, kafka: KafkaSettings) -> anyhow::Result<Self> {
        let pool = db::connect_and_migrate(&config.database(), migrations()).await?;
        let keys = Arc::new(SigningKeys::load(&config.signing_key_file, &config.previous_key_files)?);
        let schema = graphql::schema(ResolverDependencies {
            pool: pool.clone(),
            keys: keys.clone(),
            budgets: Budgets::new(config.budgets()),
            token_ttl: config.token_ttl,
            query_limiter: config.query_limits.limiter(),
        });
        let state = AppState { schema, keys };
        let trusted_proxies = Arc::new(TrustedProxies::new(config.trusted_proxies.iter().copied()));
        let dependencies = health::Dependencies { database: pool.clone(), kafka: KafkaProbe::new(&kafka, "auth-readiness")? };
        let router = Router::new()
            .route(
                "/graphql",
                post(graphql_handler)
                    // The limit inside: its bare 413 is answered as a GraphQL error.
                    .route_layer(RequestBodyLimitLayer::new(64 * 1024))
                    .route_layer(axum::middleware::from_fn(subgraph::json_only)),
            )
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state)
            .merge(health::router(dependencies))
            .layer(axum::middleware::from_fn_with_state(trusted_proxies, client_address::resolve))
            .layer(TraceLayer::new_for_http())
            .layer(axum::middleware::from_fn_with_state("auth-service", trace_context::http_requests));
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let port = listener.local_addr()?.port();
        let metrics = MetricsServer::bind(config.metrics_host, config.metrics_port).await?;
        Ok(Application { listener, port, pool, kafka, config, router, metrics })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The port of the `/metrics` listener.
    pub fn metrics_port(&self) -> u16 {
        self.metrics.port()
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    /// Serves until `shutdown`, then lets in-flight requests and the current
    /// relay batch finish; reports how each task ended.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = Relay::new(self.pool.clone(), self.kafka.clone(), RelaySettings::new(RELAY_LOCK_KEY), "auth-outbox-relay");
        let ledger =
            crate::ledger::run(self.pool.clone(), self.kafka.clone(), self.config.ledger_group.clone(), shutdown.child_token());
        let server_shutdown = shutdown.clone();
        let server = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { server_shutdown.cancelled().await });
        let tasks = vec![
            ("http server", tokio::spawn(async move { server.await.context("the HTTP server failed") })),
            ("outbox relay", tokio::spawn(relay.run(shutdown.child_token()))),
            ("points ledger", tokio::spawn(ledger)),
            ("metrics server", tokio::spawn(self.metrics.run(shutdown.child_token()))),
        ];
        let result = agora_platform::shutdown::supervise(shutdown, tasks).await;
        self.pool.close().await;
        result
    }
}

#[tracing::instrument(skip_all)]
async fn graphql_handler(
    State(state): State<AppState>,
    Extension(client): Extension<client_address::ClientAddress>,
    headers: HeaderMap,
    request: GraphQLRequest,
) -> Response {
    let caller = tokens::Caller::from_verification(tokens::bearer(&headers).map(|token| state.keys.verify(token)));
    let request = request.into_inner().data(caller).data(ClientAddress(client.0));
    let request = request.data(agora_platform::idempotency::RequestKey::from_headers(&headers));
    let response = WriteReceipts::execute(&state.schema, request, &headers).await;
    // A database that is away answers 503, so that the caller knows it may retry.
    let status = agora_platform::errors::unavailable_status(&response);
    let mut http = subgraph::respond(response);
    if let Some(status) = status {
        *http.status_mut() = status;
    }
    http
}

async fn jwks(State(state): State<AppState>) -> Json<serde_json::Value> {
    Json(state.keys.jwks())
}
