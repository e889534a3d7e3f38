//! The query strategy a request asks for with `x-query-strategy`: the read
//! model (the default) or composition (calling the services).

use axum::http::HeaderMap;

pub const STRATEGY_HEADER: &str = "x-query-strategy";

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
}
