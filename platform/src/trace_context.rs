//! Trace context: one request followed across services, through the
//! events it causes.
//!
//! A trace crosses a process boundary as a W3C `traceparent`: in the HTTP
//! header of a call to a service, in the outbox row a command writes, and
//! in the Kafka header the relay publishes it with. Where a process picks
//! one up, its span [`continues`](TraceParent::continue_in) that trace;
//! where it hands one on, it hands on its own span's
//! ([`TraceParent::of_span`]), so every span's parent is the span that
//! caused it. When traces are not exported (no OpenTelemetry layer, see
//! [`crate::telemetry`]) spans have no trace context: the `traceparent`
//! that came in is handed on as it came.
//!
//! [`http_requests`] is the span of every HTTP request a service serves.

use std::collections::HashMap;

use axum::extract::Request;
use axum::middleware::Next;
use axum::response::Response;
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C trace context of the request that caused a change, carried to
/// the event's Kafka headers so a trace can follow it across services.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceParent(Option<String>);

impl TraceParent {
    pub const HEADER: &'static str = "traceparent";

    /// The `traceparent` header, if it is a well-formed one.
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Self {
        TraceParent::parse(headers.get(Self::HEADER).and_then(|value| value.to_str().ok()))
    }

    /// A well-formed `version-traceid-spanid-flags` value, else nothing.
    pub fn parse(value: Option<&str>) -> Self {
        let valid = |value: &&str| {
            let parts: Vec<&str> = value.split('-').collect();
            let hex = |part: &str, length: usize| {
                part.len() == length && part.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            };
            parts.len() == 4
                && hex(parts[0], 2)
                && parts[0] != "ff"
                && hex(parts[1], 32)
                && parts[1].bytes().any(|b| b != b'0')
                && hex(parts[2], 16)
                && parts[2].bytes().any(|b| b != b'0')
                && hex(parts[3], 2)
        };
        TraceParent(value.map(str::trim).filter(valid).map(str::to_owned))
    }

    /// The trace context of a request being resolved.
    pub fn of(ctx: &async_graphql::Context<'_>) -> Self {
        ctx.data_opt::<TraceParent>().cloned().unwrap_or_default()
    }

    pub fn as_deref(&self) -> Option<&str> {
        self.0.as_deref()
    }

    /// The trace context of `span`, as a child of it would carry it; none
    /// when traces are not exported.
    pub fn of_span(span: &tracing::Span) -> Self {
        let context = span.context();
        if !context.span().span_context().is_valid() {
            return TraceParent::default();
        }
        let mut carrier = HashMap::new();
        TraceContextPropagator::new().inject_context(&context, &mut carrier);
        TraceParent::parse(carrier.get(Self::HEADER).map(String::as_str))
    }

    /// The trace context of the current span (see [`TraceParent::of_span`]).
    pub fn current() -> Self {
        TraceParent::of_span(&tracing::Span::current())
    }

    /// This context, or `fallback` when there is none.
    pub fn or(self, fallback: &TraceParent) -> Self {
        if self.0.is_some() {
            self
        } else {
            fallback.clone()
        }
    }

    /// Makes `span`, just created, a child of the span that sent this
    /// context. Nothing happens without a context, or when traces are not
    /// exported.
    pub fn continue_in(&self, span: &tracing::Span) {
        let Some(value) = self.as_deref() else { return };
        let carrier = HashMap::from([(Self::HEADER.to_owned(), value.to_owned())]);
        let parent = TraceContextPropagator::new().extract(&carrier);
        // Fails only for a span already started: it keeps the parent it has.
        let _ = span.set_parent(parent);
    }

    /// The trace id: the 32 hex digits after the version.
    pub fn trace_id(&self) -> Option<&str> {
        self.as_deref().and_then(|value| value.get(3..35))
    }
}

/// The paths a span may be named after; any other is `other` (span names
/// must not grow with what clients send).
const NAMED_PATHS: [&str; 5] = ["/graphql", "/healthz", "/readyz", "/.well-known/jwks.json", "/metrics"];

/// Middleware: every request served in a span of its own (`http request`,
/// named `POST /graphql` in traces), a child of the caller's `traceparent`
/// if it sent one. `service` names the process serving it, for a process
/// that runs several (`agora-local`, the tests).
pub async fn http_requests(
    axum::extract::State(service): axum::extract::State<&'static str>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().clone();
    let path = request.uri().path();
    let route = NAMED_PATHS.iter().find(|named| **named == path).copied().unwrap_or("other");
    let span = tracing::info_span!(
        "http request",
        otel.name = format!("{method} {route}"),
        otel.kind = "server",
        service,
        http.request.method = %method,
        http.route = route,
        http.response.status_code = tracing::field::Empty,
    );
    TraceParent::from_headers(request.headers()).continue_in(&span);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::TraceParent;

    #[test]
    fn keeps_a_well_formed_traceparent() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(Some(value)).as_deref(), Some(value));
    }

    #[test]
    fn reads_the_trace_id() {
        let value = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        assert_eq!(TraceParent::parse(Some(value)).trace_id(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
        assert_eq!(TraceParent::default().trace_id(), None);
    }

    #[test]
    fn without_an_exporter_a_span_has_no_context_and_the_incoming_one_is_handed_on() {
        let incoming = TraceParent::parse(Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        let span = tracing::info_span!("no exporter");
        incoming.continue_in(&span);
        assert_eq!(TraceParent::of_span(&span), TraceParent::default());
        assert_eq!(TraceParent::of_span(&span).or(&incoming), incoming);
    }

    #[test]
    fn drops_a_malformed_traceparent() {
        for value in [
            "",
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        ] {
            assert_eq!(TraceParent::parse(Some(value)), TraceParent::default(), "{value}");
        }
    }
}
