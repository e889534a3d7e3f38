//! The query strategy a request asks for with `x-query-strategy`: the read
//! model (the default) or composition (calling the services); and, for the
//! read model, the executor with `x-query-executor`: the compiled plan (the
//! default) or the schema's resolvers (to compare the two).

use axum::http::HeaderMap;

pub const STRATEGY_HEADER: &str = "x-query-strategy";
pub const EXECUTOR_HEADER: &str = "x-query-executor";

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Strategy {
    ReadModel,
    Composition,
    /// A value naming neither: the request is refused.
    Unknown(String),
}

impl Strategy {
    /// Its name in metrics and logs: `read-model`, `composition`, `unknown`.
    pub fn label(&self) -> &'static str {
        match self {
            Strategy::ReadModel => "read-model",
            Strategy::Composition => "composition",
            Strategy::Unknown(_) => "unknown",
        }
    }

    /// The strategy the headers name; none, or an empty value, is the read model.
    pub fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(STRATEGY_HEADER) else { return Strategy::ReadModel };
        let value = value.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        match value.as_str() {
            "" | "read-model" => Strategy::ReadModel,
            "composition" => Strategy::Composition,
            _ => Strategy::Unknown(value),
        }
    }
}

/// Who executes a read-model query.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Execution {
    /// The compiled plan (`crate::plan`), which falls back to the resolvers
    /// for what it does not cover.
    Compiled,
    /// The schema's resolvers, always.
    Resolvers,
    Unknown(String),
}

impl Execution {
    /// The executor the headers name; none, or an empty value, is the compiled one.
    pub fn of(headers: &HeaderMap) -> Self {
        let Some(value) = headers.get(EXECUTOR_HEADER) else { return Execution::Compiled };
        let value = value.to_str().unwrap_or_default().trim().to_ascii_lowercase();
        match value.as_str() {
            "" | "compiled" => Execution::Compiled,
            "resolvers" => Execution::Resolvers,
            _ => Execution::Unknown(value),
        }
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn with(value: &'static str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(STRATEGY_HEADER, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn the_read_model_is_the_default_and_names_are_read_loosely() {
        assert_eq!(Strategy::of(&HeaderMap::new()), Strategy::ReadModel);
        assert_eq!(Strategy::of(&with("")), Strategy::ReadModel);
        assert_eq!(Strategy::of(&with(" Read-Model ")), Strategy::ReadModel);
        assert_eq!(Strategy::of(&with("COMPOSITION")), Strategy::Composition);
        assert_eq!(Strategy::of(&with("federation")), Strategy::Unknown("federation".into()));
    }

    #[test]
    fn the_compiled_executor_is_the_default() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(EXECUTOR_HEADER, HeaderValue::from_static(value));
            headers
        };
        assert_eq!(Execution::of(&HeaderMap::new()), Execution::Compiled);
        assert_eq!(Execution::of(&with(" Resolvers")), Execution::Resolvers);
        assert_eq!(Execution::of(&with("jit")), Execution::Unknown("jit".into()));
    }
}
