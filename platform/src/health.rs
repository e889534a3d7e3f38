//! `/healthz` (the process is up), `/readyz` (its database and Kafka answer)
//! and `/metrics` (Prometheus text format), the same for every part.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use sqlx::PgPool;

use crate::kafka::KafkaProbe;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// What readiness depends on.
#[derive(Clone)]
pub struct Dependencies {
    pub database: PgPool,
    pub kafka: KafkaProbe,
}

pub fn router<S: Clone + Send + Sync + 'static>(dependencies: Dependencies) -> Router<S> {
    // Installed now, so that what the process records from its start is kept.
    let metrics = crate::telemetry::metrics();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .route("/metrics", get(move || std::future::ready(metrics.render())))
        .with_state(dependencies)
}

async fn ready(State(dependencies): State<Dependencies>) -> impl IntoResponse {
    let database = async {
        tokio::time::timeout(CHECK_TIMEOUT, sqlx::query("select 1").execute(&dependencies.database))
            .await
            .is_ok_and(|result| result.is_ok())
    };
    let (database, kafka) = tokio::join!(database, dependencies.kafka.reachable(CHECK_TIMEOUT));
    let status = if database && kafka { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let word = |ok: bool| if ok { "ok" } else { "unavailable" };
    (status, Json(serde_json::json!({ "database": word(database), "kafka": word(kafka) })))
}
