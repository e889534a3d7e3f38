//! Logs, traces and metrics for every Agora process.
//!
//! - Logs: `tracing` events, filtered by `RUST_LOG` (default `info`), as
//!   text or, with `LOG_FORMAT=json`, one JSON object per line.
//! - Traces: the same `tracing` spans, exported as OpenTelemetry traces over
//!   OTLP/HTTP (protobuf) when the standard variables ask for it:
//!   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` (used as given) or
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` (`/v1/traces` appended), or
//!   `OTEL_TRACES_EXPORTER=otlp` (then `http://localhost:4318`).
//!   `OTEL_TRACES_EXPORTER=none` or `OTEL_SDK_DISABLED=true` turns them off,
//!   and without an endpoint they are off: no OpenTelemetry layer is
//!   installed at all, and spans cost what `tracing` costs. The SDK reads
//!   the rest itself (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
//!   `OTEL_TRACES_SAMPLER`, `OTEL_BSP_SCHEDULE_DELAY`,
//!   `OTEL_EXPORTER_OTLP_HEADERS`, `OTEL_EXPORTER_OTLP_TIMEOUT` …); each
//!   process names itself (`service.name`) unless `OTEL_SERVICE_NAME` does.
//!   How a trace crosses processes (HTTP, the outbox, Kafka) is in
//!   [`crate::trace_context`].
//! - Metrics: one Prometheus recorder per process ([`metrics`]); every
//!   histogram named `…_seconds` has [`LATENCY_BUCKETS`], so it renders as
//!   a Prometheus histogram (aggregatable across replicas), not a summary.

use std::sync::OnceLock;

use anyhow::Context as _;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{fmt, EnvFilter, Layer, Registry};

/// The process's tracer provider, when traces are exported.
static PROVIDER: OnceLock<Option<SdkTracerProvider>> = OnceLock::new();

/// Flushes the traces still buffered when dropped: `main` holds it until
/// the process ends.
#[must_use = "the traces buffered at exit are flushed when this is dropped"]
pub struct Telemetry(());

impl Drop for Telemetry {
    fn drop(&mut self) {
        shutdown();
    }
}

/// Installs logs and traces for the process `service` (`gateway`,
/// `auth-service`, …). Safe to call more than once (tests and `agora-local`
/// start many services in one process): the first call decides, for the
/// whole process. An `OTEL_*` setting this cannot honour is an error.
pub fn init(service: &'static str) -> anyhow::Result<Telemetry> {
    static RESULT: OnceLock<Result<(), String>> = OnceLock::new();
    RESULT.get_or_init(|| install(service).map_err(|error| format!("{error:#}"))).clone().map_err(anyhow::Error::msg)?;
    Ok(Telemetry(()))
}

/// Logs (and traces, if asked for) for a process that runs several services
/// or none in particular (the tests): named `agora` unless `OTEL_SERVICE_NAME`
/// names it. A tracing setting it cannot honour is reported on stderr.
pub fn init_logging() {
    match init("agora") {
        Ok(telemetry) => std::mem::forget(telemetry),
        Err(error) => eprintln!("{error:#}"),
    }
}

/// Exports every span that ended and is still buffered, now (tests, exit).
pub fn flush() {
    if let Some(Some(provider)) = PROVIDER.get() {
        if let Err(error) = provider.force_flush() {
            tracing::warn!(%error, "cannot flush the traces");
        }
    }
}

/// Flushes and stops the exporter; spans that end later are not exported.
fn shutdown() {
    if let Some(Some(provider)) = PROVIDER.get() {
        if let Err(error) = provider.shutdown() {
            eprintln!("cannot flush the traces on shutdown: {error}");
        }
    }
}

/// Installs the subscriber: the log layer, filtered by `RUST_LOG`, and the
/// trace layer when the environment asks for traces, with every span and
/// event at `info` and above whatever `RUST_LOG` says (how much is logged
/// does not decide what a trace shows). The logs are installed even when
/// the trace settings are wrong, so that the error can be logged.
fn install(service: &'static str) -> anyhow::Result<()> {
    let provider = tracer_provider(service);
    let traces = provider
        .as_ref()
        .ok()
        .and_then(Option::as_ref)
        .map(|provider| tracing_opentelemetry::layer().with_tracer(provider.tracer(service)).with_filter(LevelFilter::INFO));
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("LOG_FORMAT").is_ok_and(|format| format.eq_ignore_ascii_case("json"));
    let logs: Box<dyn Layer<Registry> + Send + Sync> =
        if json { fmt::layer().json().flatten_event(true).boxed() } else { fmt::layer().boxed() };
    // Another subscriber may be installed already (an embedding program's): it stays.
    let _ = tracing_subscriber::registry().with(logs.with_filter(filter)).with(traces).try_init();
    let provider = provider?;
    if provider.is_some() {
        tracing::info!(service, "exporting traces over OTLP/HTTP");
    }
    let _ = PROVIDER.set(provider);
    Ok(())
}

/// The OTLP/HTTP exporter the environment asks for; `None` when it asks for none.
fn tracer_provider(service: &'static str) -> anyhow::Result<Option<SdkTracerProvider>> {
    if !traces_wanted(variable)? {
        return Ok(None);
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .build()
        .context("cannot set up the OTLP trace exporter (OTEL_EXPORTER_OTLP_*)")?;
    let mut resource = Resource::builder();
    if variable("OTEL_SERVICE_NAME").is_none() {
        resource = resource.with_service_name(service);
    }
    Ok(Some(SdkTracerProvider::builder().with_resource(resource.build()).with_batch_exporter(exporter).build()))
}

/// Whether the standard variables, as `variable` reads them, ask for
/// traces (see the module); an error for what cannot be honoured.
fn traces_wanted(variable: impl Fn(&str) -> Option<String>) -> anyhow::Result<bool> {
    if variable("OTEL_SDK_DISABLED").is_some_and(|disabled| disabled.eq_ignore_ascii_case("true")) {
        return Ok(false);
    }
    let wanted = match variable("OTEL_TRACES_EXPORTER").map(|exporter| exporter.to_ascii_lowercase()).as_deref() {
        None => variable("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| variable("OTEL_EXPORTER_OTLP_ENDPOINT")).is_some(),
        Some("none") => false,
        Some("otlp") => true,
        Some(other) => anyhow::bail!("OTEL_TRACES_EXPORTER={other} is not supported: use otlp or none"),
    };
    let protocol = variable("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL").or_else(|| variable("OTEL_EXPORTER_OTLP_PROTOCOL"));
    if let Some(protocol) = protocol.filter(|protocol| wanted && protocol != "http/protobuf") {
        anyhow::bail!("OTEL_EXPORTER_OTLP_PROTOCOL={protocol} is not supported: Agora exports traces over http/protobuf");
    }
    Ok(wanted)
}

/// A variable's value, unless it is unset or empty.
fn variable(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|value| value.trim().to_owned()).filter(|value| !value.is_empty())
}

/// The bucket bounds of every latency histogram (`…_seconds`): 1 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 14] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0];

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), &LATENCY_BUCKETS)
                .expect("the latency buckets are not empty")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed (an embedding program's);
            // then this handle renders only what it records itself.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

#[cfg(test)]
mod tests {
    use super::traces_wanted;

    /// Whether traces are wanted with these variables set.
    fn wanted(variables: &[(&str, &str)]) -> anyhow::Result<bool> {
        traces_wanted(|name| variables.iter().find(|(set, _)| *set == name).map(|(_, value)| value.to_string()))
    }

    #[test]
    fn traces_are_off_unless_an_endpoint_or_the_exporter_is_named() {
        assert!(!wanted(&[]).unwrap());
        assert!(wanted(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")]).unwrap());
        assert!(wanted(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:4318/v1/traces")]).unwrap());
        assert!(wanted(&[("OTEL_TRACES_EXPORTER", "otlp")]).unwrap());
    }

    #[test]
    fn none_or_a_disabled_sdk_turns_them_off() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(!wanted(&[endpoint, ("OTEL_TRACES_EXPORTER", "none")]).unwrap());
        assert!(!wanted(&[endpoint, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap());
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error() {
        let endpoint = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318");
        assert!(wanted(&[("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
        let grpc = wanted(&[endpoint, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap_err();
        assert!(grpc.to_string().contains("http/protobuf"), "{grpc}");
        // A protocol for traces that are off is no error.
        assert!(!wanted(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")]).unwrap());
    }

    #[test]
    fn latency_buckets_rise() {
        assert!(super::LATENCY_BUCKETS.windows(2).all(|pair| pair[0] < pair[1]));
    }
}
