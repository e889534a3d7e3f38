//! Building and running the gateway: `Application::build` binds the
//! listener and assembles the stages (the commands, the live feed, the
//! pipeline over the schema and the sources, the transports' one
//! application state), `run_until_stopped` serves HTTP and WebSocket and
//! runs the projector, the live feed and the projector's lag monitor
//! (for `/metrics` and `/readyz`) until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use agora_platform::client_address::{self, TrustedProxies};
use agora_platform::health::MetricsServer;
use agora_platform::kafka::{KafkaProbe, KafkaSettings};
use agora_platform::tokens::JwksVerifier;
use agora_platform::{consumer, db, health, trace_context};
use anyhow::Context;
use axum::Router;
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tower_http::trace::TraceLayer;

use crate::commands::{Commands, Consistency};
use crate::config::Config;
use crate::live::{LiveFeed, LiveReader};
use crate::pipeline::{self, ParsedDocuments, Pipeline, ResponseCache, SharedOperations, TokenKey, TrustedDocuments};
use crate::plan::CompiledReads;
use crate::projector::lag::{LagMonitor, ProjectorLag};
use crate::projector::{generation, Projector, ProjectorSettings};
use crate::sources::{composition, read_model};
use crate::transport::{self, http::HttpLimits, AppState};
use crate::upstream::Upstream;

pub struct Application {
    listener: TcpListener,
    port: u16,
    pool: PgPool,
    kafka: KafkaSettings,
    config: Config,
    router: Router,
    /// Stops what `build` already started (the notification listener).
    background: CancellationToken,
    /// Closes the WebSocket connections.
    sockets: CancellationToken,
    /// Feeds subscribers; positioned at the topics' end during `build`.
    live_reader: LiveReader,
    metrics: MetricsServer,
    /// The partitions the projector is positioned on and consuming.
    projecting: consumer::Positioned,
    /// Measures the projector's lag for `/metrics` and `/readyz`.
    lag_monitor: LagMonitor,
}

impl Application {
    pub async fn build(config: Config, kafka: KafkaSettings) -> anyhow::Result<Self> {
        let migrations = vec![agora_platform::consumer::migrations(), sqlx::migrate!("./migrations")];
        let pool = db::connect_and_migrate(&config.database(), migrations).await?;
        generation::warn_if_outdated(&pool).await?;
        let background = CancellationToken::new();
        let consistency = Consistency::start(pool.clone(), background.clone()).await?;
        let upstream = Arc::new(Upstream::new(config.auth_url.clone(), config.post_url.clone(), config.upstream_timeout)?);
        let verifier = Arc::new(JwksVerifier::new(config.jwks_url.clone(), reqwest::Client::new(), config.jwks_min_refetch));
        let (live, live_reader) =
            LiveFeed::start(config.live_buffer_events, config.resume_max_events, &kafka, pool.clone(), consistency.clone())
                .await?;
        let token_key = TokenKey::from_config(config.consistency_token_secret.as_ref());
        let trusted = match &config.trusted_documents {
            Some(source) => TrustedDocuments::listed(source)?,
            None => TrustedDocuments::automatic(config.persisted_queries_bytes),
        };
        tokio::spawn(trusted.clone().watch(Duration::from_secs(2), background.clone()));
        let commands = Commands {
            upstream: upstream.clone(),
            consistency: consistency.clone(),
            consistency_timeout: config.consistency_timeout,
        };
        let pipeline = Pipeline {
            schema: pipeline::schema(commands, live, config.query_limiter()),
            read_model: read_model::factory(pool.clone()),
            composition: Some(composition::factory(upstream)),
            verifier,
            cache: ResponseCache::new(config.response_cache_bytes, consistency.clone()),
            compiled: (config.compiled_plans_bytes > 0).then(|| CompiledReads::new(pool.clone(), config.compiled_plans_bytes)),
            consistency,
            consistency_timeout: config.consistency_timeout,
            token_key: token_key.clone(),
            limiter: config.query_limiter(),
            subscriptions: SharedOperations::new(config.live_buffer_events, token_key),
            trusted: trusted.clone(),
            documents: ParsedDocuments::new(config.parsed_documents_bytes),
        };
        let pipeline = Arc::new(pipeline);
        tokio::spawn(prepare_trusted(pipeline.clone(), trusted.clone(), background.clone()));
        let sockets = CancellationToken::new();
        let state = AppState {
            executor: pipeline,
            limits: HttpLimits { body_limit_bytes: config.body_limit_bytes, request_timeout: config.request_timeout },
            websocket: config.live(),
            closing: sockets.clone(),
        };
        let dependencies = health::Dependencies { database: pool.clone(), kafka: KafkaProbe::new(&kafka, "gateway-readiness")? };
        let lag = ProjectorLag::new(config.ready_max_projector_lag);
        let lag_monitor = LagMonitor::new(pool.clone(), &kafka, lag.clone(), config.projector_lag_interval)?;
        let router = transport::router(state)
            .merge(health::router_with_checks(dependencies, vec![Arc::new(lag)]))
            .layer(axum::middleware::from_fn_with_state(
                Arc::new(TrustedProxies::new(config.trusted_proxies.iter().copied())),
                client_address::resolve,
            ))
            .layer(TraceLayer::new_for_http())
            .layer(axum::middleware::from_fn_with_state("gateway", trace_context::http_requests));
        let listener = TcpListener::bind((config.host, config.port))
            .await
            .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
        let port = listener.local_addr()?.port();
        let metrics = MetricsServer::bind(config.metrics_host, config.metrics_port).await?;
        let projecting = consumer::Positioned::new(Vec::new());
        Ok(Application {
            listener,
            port,
            pool,
            kafka,
            config,
            router,
            background,
            sockets,
            live_reader,
            metrics,
            projecting,
            lag_monitor,
        })
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

    /// The partitions this replica's projector consumes: none until its
    /// group first assigns it some, and while a rebalance moves them.
    pub fn projecting(&self) -> tokio::sync::watch::Receiver<Vec<consumer::Partition>> {
        self.projecting.subscribe()
    }

    /// Serves until `shutdown`, then lets in-flight requests finish and the
    /// projector commit its batch.
    pub async fn run_until_stopped(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let settings = ProjectorSettings {
            group_id: self.config.projector_group.clone(),
            batch_size: self.config.projector_batch_size,
            retry_backoff: Duration::from_millis(500),
        };
        let projector = Projector::new(self.pool.clone(), self.kafka.clone(), settings, self.projecting);
        let server_shutdown = shutdown.clone();
        let server = axum::serve(self.listener, self.router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move { server_shutdown.cancelled().await });
        let sockets = self.sockets.clone();
        let closing = shutdown.clone();
        let tasks = vec![
            ("http server", tokio::spawn(async move { server.await.context("the HTTP server failed") })),
            ("projector", tokio::spawn(projector.run(shutdown.child_token()))),
            ("live feed", tokio::spawn(self.live_reader.run(shutdown.child_token()))),
            ("metrics server", tokio::spawn(self.metrics.run(shutdown.child_token()))),
            ("projector lag", tokio::spawn(self.lag_monitor.run(shutdown.child_token()))),
            // WebSockets are told to close as soon as shutdown starts.
            (
                "websocket closer",
                tokio::spawn(async move {
                    closing.cancelled().await;
                    sockets.cancel();
                    Ok(())
                }),
            ),
        ];
        let result = agora_platform::shutdown::supervise(shutdown, tasks).await;
        self.background.cancel();
        self.pool.close().await;
        result
    }
}

/// Compiles the plans of the listed trusted documents at start and after
/// every reload of the list (checked as often as the list is), until `shutdown`.
async fn prepare_trusted(pipeline: Arc<Pipeline>, trusted: TrustedDocuments, shutdown: CancellationToken) {
    let mut prepared = None;
    loop {
        let listed = trusted.listed_now();
        let Some(documents) = listed else { return };
        if !prepared.as_ref().is_some_and(|prepared| Arc::ptr_eq(prepared, &documents)) {
            let texts: Vec<Arc<str>> = documents.values().cloned().collect();
            pipeline.prepare(&texts).await;
            prepared = Some(documents);
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
        }
    }
}
