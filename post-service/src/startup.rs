//! Building and running post-service: `Application::build` binds the
//! listener and prepares everything, `run_until_stopped` serves HTTP and
//! runs the outbox relay until shutdown.

use std::sync::Arc;

use agora_platform::health::MetricsServer;
use agora_platform::kafka::{KafkaProbe, KafkaSettings};
use agora_platform::outbox::{Relay, RelaySettings};
use agora_platform::receipts::WriteReceipts;
use agora_platform::tokens::{self, Caller, JwksVerifier};
use agora_platform::{db, health, subgraph, trace_context};
use anyhow::Context;
use async_graphql_axum::GraphQLRequest;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::Response;
use axum::routing::post;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::config::Config;
use crate::graphql::{self, PostSchema};
use crate::rate_limit::PostBudget;

/// The advisory lock key that elects post-service's one active outbox relay.
pub const RELAY_LOCK_KEY: i64 = 0x6167_6f72_706f_7374; // "agorpost"

/// A post body is at most 20,000 characters; JSON may escape each as a
/// surrogate pair (12 bytes), plus the query.
const BODY_LIMIT_BYTES: usize = 256 * 1024;

#[derive(Clone)]
struct AppState {
    schema: PostSchema,
    verifier: Arc<JwksVerifier>,
}

pub struct Application {
    listener: TcpListener,
    port: u16,
    pool: PgPool,
    kafka: KafkaSettings,
    router: Router,
    metrics: MetricsServer,
}

/// The migrations of the service's database, run before it serves or backfills.
pub fn migrations() -> Vec<sqlx::migrate::Migrator> {
    vec![db::outbox_migrations(), sqlx::migrate!("./migrations")]
}

impl Application {
    pub async fn build(config: Config, kafka: KafkaSettings) -> anyhow::Result<Self> {
        let pool = db::connect_and_migrate(&config.database(), migrations()).await?;
        let verifier = Arc::new(JwksVerifier::new(config.jwks_url.clone(), reqwest::Client::new(), config.jwks_min_refetch));
        let budget = PostBudget::per_hour(config.posts_per_author_per_hour);
        let state = AppState { schema: graphql::schema(pool.clone(), config.query_limits.limiter(), budget), verifier };
        let dependencies = health::Dependencies { database: pool.clone(), kafka: KafkaProbe::new(&kafka, "post-readiness")? };
        let router = Router::new()
            .route(
                "/graphql",
                post(graphql_handler)
                    // The limit inside: its bare 413 is answered as a GraphQL error.
                    .route_layer(RequestBodyLimitLayer::new(BODY_LIMIT_BYTES))
                    .route_layer(axum::middleware::from_fn(subgraph::json_only)),
            )
            .with_state(state)
            .merge(health::router(dependencies))
            .layer(TraceLayer::new_for_http())
            .layer(axum::middleware::from_fn_with_state("post-service", trace_context::http_requests));
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let port = listener.local_addr()?.port();
        let metrics = MetricsServer::bind(config.metrics_host, config.metrics_port).await?;
        Ok(Application { listener, port, pool, kafka, router, metrics })
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
    /// relay batch finish.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let relay = Relay::new(self.pool.clone(), self.kafka.clone(), RelaySettings::new(RELAY_LOCK_KEY), "post-outbox-relay");
        let server_shutdown = shutdown.clone();
        let server =
            axum::serve(self.listener, self.router).with_graceful_shutdown(async move { server_shutdown.cancelled().await });
        let tasks = vec![
            ("http server", tokio::spawn(async move { server.await.context("the HTTP server failed") })),
            ("outbox relay", tokio::spawn(relay.run(shutdown.child_token()))),
            ("metrics server", tokio::spawn(self.metrics.run(shutdown.child_token()))),
        ];
        let result = agora_platform::shutdown::supervise(shutdown, tasks).await;
        self.pool.close().await;
        result
    }
}

#[tracing::instrument(skip_all)]
async fn graphql_handler(State(state): State<AppState>, headers: HeaderMap, request: GraphQLRequest) -> Response {
    let verification = match tokens::bearer(&headers) {
        Some(token) => Some(state.verifier.verify(token).await),
        None => None,
    };
    let request = request.into_inner().data(Caller::from_verification(verification));
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
