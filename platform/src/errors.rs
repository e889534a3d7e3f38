//! The error codes of the public contract (`errors[].extensions.code`),
//! the same in every subgraph and the gateway, and how a failure becomes
//! one: unexpected ones INTERNAL without details, a database that is away
//! UNAVAILABLE (and HTTP 503 when an answer has nothing else).

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
    /// A subscription's resume cursor is not one this API issued.
    BadCursor,
    /// A subscription's resume cursor is too old (or from another log) to
    /// replay what was missed: subscribe again without it.
    CursorExpired,
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
            ErrorCode::BadCursor => "BAD_CURSOR",
            ErrorCode::CursorExpired => "CURSOR_EXPIRED",
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
