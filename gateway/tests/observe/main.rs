//! What the system tells its operators, observed from outside as they would:
//! the traces it exports over OTLP/HTTP ([`traces`]), the metrics on
//! `/metrics` against the README's list ([`metrics`]), and the gateway's
//! one log line per request ([`request_log`], from the real binary).
//!
//! A binary of its own: the tracer is installed once per process, so
//! [`setup`] points it, before anything else runs, at the OTLP receiver of
//! this process ([`otlp`]).

#[path = "../api/helpers.rs"]
#[allow(dead_code)]
mod helpers;
mod metrics;
mod otlp;
mod request_log;
mod traces;

use std::sync::OnceLock;

/// Starts the OTLP receiver and installs the process's logs and traces,
/// exporting to it, once; every test calls it first.
pub fn setup() -> &'static otlp::Receiver {
    static RECEIVER: OnceLock<otlp::Receiver> = OnceLock::new();
    RECEIVER.get_or_init(|| {
        let receiver = otlp::Receiver::start();
        // Set before the tests start anything that reads the environment.
        std::env::set_var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", format!("http://127.0.0.1:{}/v1/traces", receiver.port));
        std::env::set_var("OTEL_BSP_SCHEDULE_DELAY", "100");
        if std::env::var_os("TEST_LOG").is_none() {
            // Logs only when asked for; the traces keep every span at info.
            std::env::set_var("RUST_LOG", "off");
        }
        agora_platform::telemetry::init("agora").map(std::mem::forget).expect("the trace settings are valid");
        receiver
    })
}
