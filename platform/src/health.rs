//! `/healthz` (the process is up) and `/readyz` (its database and Kafka
//! answer, and whatever further [`Check`]s a part adds, such as the
//! gateway's projector lag) on the public port, and `/metrics` (Prometheus text format) on a
//! listener of its own (loopback by default: what a process counts is for
//! its operators, not for every client), the same for every part.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::kafka::KafkaProbe;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness depends on.
#[derive(Clone)]
pub struct Dependencies {
    pub database: PgPool,
    pub kafka: KafkaProbe,
}

/// A further condition of readiness, beside the database and Kafka. It
/// answers at once from what it last measured (a readiness probe must not
/// wait on the thing it reports).
pub trait Check: Send + Sync + 'static {
    /// Its key in the body of `/readyz`.
    fn name(&self) -> &'static str;
    /// Whether it holds, and what `/readyz` says of it.
    fn status(&self) -> (bool, serde_json::Value);
}

#[derive(Clone)]
struct Readiness {
    dependencies: Dependencies,
    checks: Vec<Arc<dyn Check>>,
}

pub fn router<S: Clone + Send + Sync + 'static>(dependencies: Dependencies) -> Router<S> {
    router_with_checks(dependencies, Vec::new())
}

/// [`router`], with `/readyz` also asking each of `checks`.
pub fn router_with_checks<S: Clone + Send + Sync + 'static>(
    dependencies: Dependencies,
    checks: Vec<Arc<dyn Check>>,
) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(Readiness { dependencies, checks })
}

/// `/metrics` on its own listener, bound by [`MetricsServer::bind`].
pub struct MetricsServer {
    listener: TcpListener,
    port: u16,
}

impl MetricsServer {
    /// Binds `host:port` (port 0 picks a free one) and installs the recorder,
    /// so that what the process records from its start is kept.
    pub async fn bind(host: IpAddr, port: u16) -> anyhow::Result<Self> {
        crate::telemetry::metrics();
        let listener =
            TcpListener::bind((host, port)).await.with_context(|| format!("cannot listen for metrics on {host}:{port}"))?;
        let port = listener.local_addr()?.port();
        Ok(MetricsServer { listener, port })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves `/metrics` until `shutdown`.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let metrics = crate::telemetry::metrics();
        let router = Router::new().route("/metrics", get(move || std::future::ready(metrics.render())));
        axum::serve(self.listener, router)
            .with_graceful_shutdown(async move { shutdown.cancelled().await })
            .await
            .context("the metrics server failed")
    }
}

async fn ready(State(readiness): State<Readiness>) -> impl IntoResponse {
    let dependencies = &readiness.dependencies;
    let database = async {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("select 1").execute(&dependencies.database))
            .await
            .is_ok_and(|result| result.is_ok())
    };
    let (database, kafka) = tokio::join!(database, dependencies.kafka.reachable(CHECK_TIMEOUT));
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    let mut body = serde_json::json!({ "database": word(database), "kafka": word(kafka) });
    let mut ok = database && kafka;
    for check in &readiness.checks {
        let (holds, status) = check.status();
        ok &= holds;
        body[check.name()] = status;
    }
    let status = if ok { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, Json(body))
}
