//! GraphQL conventions shared by every subgraph: the error codes of the
//! public contract and the collection of the write receipts that make
//! read-your-writes work.

use std::sync::{Arc, Mutex};

use agora_schema::receipts::{WriteReceipt, WritesExtension};
use async_graphql::{ErrorExtensions, Value};

/// The codes a client finds in `errors[].extensions.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadUserInput,
    Unauthenticated,
    Forbidden,
    NotFound,
    Conflict,
    RateLimited,
    QueryTooComplex,
    UpstreamUnavailable,
    Timeout,
    /// A database or broker the answer needs is away for now: retryable.
    Unavailable,
    Internal,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadUserInput => "BAD_USER_INPUT",
            ErrorCode::Unauthenticated => "UNAUTHENTICATED",
            ErrorCode::Forbidden => "FORBIDDEN",
            ErrorCode::NotFound => "NOT_FOUND",
            ErrorCode::Conflict => "CONFLICT",
            ErrorCode::RateLimited => "RATE_LIMITED",
            ErrorCode::QueryTooComplex => "QUERY_TOO_COMPLEX",
            ErrorCode::UpstreamUnavailable => "UPSTREAM_UNAVAILABLE",
            ErrorCode::Timeout => "TIMEOUT",
            ErrorCode::Unavailable => "UNAVAILABLE",
            ErrorCode::Internal => "INTERNAL",
        }
    }

    /// A GraphQL error with this code.
    pub fn error(self, message: impl Into<String>) -> async_graphql::Error {
        async_graphql::Error::new(message).extend_with(|_, extensions| extensions.set("code", self.as_str()))
    }
}

/// An unexpected failure: logged with its cause chain, answered without details.
pub fn internal(error: impl Into<anyhow::Error>) -> async_graphql::Error {
    let error = error.into();
    tracing::error!(error = format!("{error:#}"), "internal error");
    ErrorCode::Internal.error("internal error")
}

/// A database failure: UNAVAILABLE (retryable) when the database is away
/// for now (see [`crate::db::is_unavailable`]), else INTERNAL. Logged either way.
pub fn database_error(error: &sqlx::Error) -> async_graphql::Error {
    if crate::db::is_unavailable(error) {
        tracing::warn!(%error, "the database is unavailable");
        ErrorCode::Unavailable.error("the database is unavailable for now; retry later")
    } else {
        internal(anyhow::anyhow!("database: {error}"))
    }
}

/// The HTTP status of a GraphQL answer that has no data because something
/// it needs is away (every error UNAVAILABLE): 503, so that any client or
/// router knows it may retry. `None`: the usual status.
pub fn unavailable_status(response: &async_graphql::Response) -> Option<axum::http::StatusCode> {
    let unavailable = |error: &async_graphql::ServerError| {
        matches!(
            error.extensions.as_ref().and_then(|extensions| extensions.get("code")),
            Some(Value::String(code)) if code == ErrorCode::Unavailable.as_str()
        )
    };
    let no_data = matches!(response.data, Value::Null);
    (no_data && !response.errors.is_empty() && response.errors.iter().all(unavailable))
        .then_some(axum::http::StatusCode::SERVICE_UNAVAILABLE)
}

/// The receipts of one request, filled by mutations as they commit and
/// reported in the answer's `extensions` (`agora_schema::receipts`).
#[derive(Debug, Clone, Default)]
pub struct WriteReceipts(Arc<Mutex<Vec<WriteReceipt>>>);

impl WriteReceipts {
    pub fn push(&self, receipt: WriteReceipt) {
        self.0.lock().expect("receipts lock").push(receipt);
    }

    /// Executes a request and reports the writes it made in
    /// `extensions.writes`; the request's `traceparent` goes with its events.
    pub async fn execute<E: async_graphql::Executor>(
        executor: &E,
        request: async_graphql::Request,
        headers: &axum::http::HeaderMap,
    ) -> async_graphql::Response {
        let receipts = WriteReceipts::default();
        let request = request.data(receipts.clone()).data(TraceParent::from_headers(headers));
        let mut response = executor.execute(request).await;
        let written = WritesExtension { writes: std::mem::take(&mut *receipts.0.lock().expect("receipts lock")) };
        let serde_json::Value::Object(members) = serde_json::to_value(written).expect("receipts serialize") else {
            unreachable!("a struct serializes to an object")
        };
        for (name, value) in members {
            response.extensions.insert(name, Value::from_json(value).expect("valid JSON"));
        }
        response
    }
}

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
}

/// Input that does not meet the contract's rules: answered as
/// BAD_USER_INPUT, naming the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct InputError {
    pub field: &'static str,
    pub reason: String,
}

impl InputError {
    pub fn new(field: &'static str, reason: impl Into<String>) -> Self {
        InputError { field, reason: reason.into() }
    }
}

impl From<agora_schema::rules::RuleError> for InputError {
    fn from(error: agora_schema::rules::RuleError) -> Self {
        InputError { field: error.field, reason: error.reason }
    }
}

impl ErrorExtensions for InputError {
    fn extend(&self) -> async_graphql::Error {
        let field = self.field;
        ErrorCode::BadUserInput.error(self.to_string()).extend_with(|_, extensions| extensions.set("field", field))
    }
}

/// Turns a coded error into a GraphQL error that keeps its code. A bare `?`
/// would not: async-graphql converts any `Display` error without extensions.
pub trait Coded<T> {
    fn coded(self) -> async_graphql::Result<T>;
}

impl<T, E: ErrorExtensions> Coded<T> for Result<T, E> {
    fn coded(self) -> async_graphql::Result<T> {
        self.map_err(|error| error.extend())
    }
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
