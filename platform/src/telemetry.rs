//! Logs (tracing) and metrics (Prometheus) for every Agora process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{fmt, EnvFilter};

/// Installs the log subscriber: `RUST_LOG` filters (default `info`), and
/// `LOG_FORMAT=json` switches to one JSON object per line. Safe to call more
/// than once (tests start many services in one process).
pub fn init_logging() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let result = if json {
        fmt().with_env_filter(filter).json().flatten_event(true).try_init()
    } else {
        fmt().with_env_filter(filter).try_init()
    };
    let _ = result;
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's);
            // then this handle renders only what it records itself.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}
