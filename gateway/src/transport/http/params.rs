//! GraphQL-over-HTTP request parameters (`query`, `operationName`,
//! `variables`, `extensions`) from a POST body or a GET query string, checked
//! strictly so that a malformed request is a 400, never a silent default.

use std::collections::HashMap;

use axum::http::{header, HeaderMap};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::error::TransportError;

/// The parameters of one GraphQL request.
#[derive(Debug, PartialEq)]
pub struct GraphQlParams {
    pub query: String,
    pub operation_name: Option<String>,
    pub variables: Map<String, Value>,
    pub extensions: Map<String, Value>,
}

impl GraphQlParams {
    /// Parses a POST body sent as `application/json`.
    pub fn from_json_body(body: &[u8]) -> Result<Self, TransportError> {
        let value: Value = serde_json::from_slice(body).map_err(|error| TransportError::InvalidJson(error.to_string()))?;
        let Value::Object(mut object) = value else {
            return Err(TransportError::BodyNotAnObject);
        };
        let query = match object.remove("query") {
            // A persisted query names its document by hash instead.
            None | Some(Value::Null) if persisted(object.get("extensions")) => String::new(),
            None | Some(Value::Null) => return Err(TransportError::MissingQuery),
            Some(Value::String(query)) => query,
            Some(_) => return Err(TransportError::InvalidParameter { name: "query", expected: "a string" }),
        };
        let operation_name = match object.remove("operationName") {
            None | Some(Value::Null) => None,
            Some(Value::String(name)) => Some(name),
            Some(_) => return Err(TransportError::InvalidParameter { name: "operationName", expected: "a string" }),
        };
        Ok(Self {
            query,
            operation_name,
            variables: json_map(object.remove("variables"), "variables")?,
            extensions: json_map(object.remove("extensions"), "extensions")?,
        })
    }

    /// Parses a GET query string, where `variables` and `extensions` are JSON
    /// text. `Ok(None)` when there is no `query` parameter at all.
    pub fn from_query_string(query_string: Option<&str>) -> Result<Option<Self>, TransportError> {
        #[derive(Deserialize)]
        struct Raw {
            query: Option<String>,
            #[serde(rename = "operationName")]
            operation_name: Option<String>,
            variables: Option<String>,
            extensions: Option<String>,
        }
        let raw: Raw = serde_urlencoded::from_str(query_string.unwrap_or_default())
            .map_err(|error| TransportError::InvalidQueryString(error.to_string()))?;
        let parse = |text: Option<String>, name: &'static str| -> Result<Map<String, Value>, TransportError> {
            let value = match text.filter(|text| !text.is_empty()) {
                None => None,
                Some(text) => Some(
                    serde_json::from_str(&text)
                        .map_err(|error| TransportError::ParameterNotJson { name, reason: error.to_string() })?,
                ),
            };
            json_map(value, name)
        };
        let extensions = parse(raw.extensions, "extensions")?;
        let query = match raw.query {
            Some(query) => query,
            // A persisted query names its document by hash instead.
            None if extensions.contains_key("persistedQuery") => String::new(),
            None => return Ok(None),
        };
        Ok(Some(Self {
            query,
            operation_name: raw.operation_name.filter(|name| !name.is_empty()),
            variables: parse(raw.variables, "variables")?,
            extensions,
        }))
    }

    /// The request for the executor.
    pub fn into_request(self) -> async_graphql::Request {
        let mut request =
            async_graphql::Request::new(self.query).variables(async_graphql::Variables::from_json(Value::Object(self.variables)));
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        request.extensions = async_graphql::Extensions(
            self.extensions
                .into_iter()
                .filter_map(|(key, value)| Some((key, async_graphql::Value::from_json(value).ok()?)))
                .collect::<HashMap<_, _>>(),
        );
        request
    }
}

/// Whether `extensions` asks for a persisted query.
fn persisted(extensions: Option<&Value>) -> bool {
    extensions.and_then(Value::as_object).is_some_and(|extensions| extensions.contains_key("persistedQuery"))
}

/// Checks that a POST body is `application/json` in UTF-8 (the only charset
/// GraphQL over HTTP allows; no charset means UTF-8).
pub fn check_content_type(headers: &HeaderMap) -> Result<(), TransportError> {
    let value = headers.get(header::CONTENT_TYPE).map(|value| value.to_str().unwrap_or("(not text)")).unwrap_or("(none)");
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or_default().trim();
    let charset_is_utf8 = parts.filter_map(|parameter| parameter.split_once('=')).all(|(name, value)| {
        !name.trim().eq_ignore_ascii_case("charset") || value.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
    });
    if essence.eq_ignore_ascii_case("application/json") && charset_is_utf8 {
        Ok(())
    } else {
        Err(TransportError::UnsupportedMediaType(value.to_owned()))
    }
}

fn json_map(value: Option<Value>, name: &'static str) -> Result<Map<String, Value>, TransportError> {
    match value {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(map)) => Ok(map),
        Some(_) => Err(TransportError::InvalidParameter { name, expected: "an object (a map)" }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(value: Value) -> Result<GraphQlParams, TransportError> {
        GraphQlParams::from_json_body(value.to_string().as_bytes())
    }

    #[test]
    fn accepts_a_full_post_body() {
        let params = body(serde_json::json!({
            "query": "query Q($n: Int) { hello }", "operationName": "Q", "variables": {"n": 1}, "extensions": {"x": true}
        }))
        .unwrap();
        assert_eq!(params.operation_name.as_deref(), Some("Q"));
        assert_eq!(params.variables["n"], 1);
        assert_eq!(params.extensions["x"], true);
    }

    #[test]
    fn null_optional_parameters_are_absent() {
        let params =
            body(serde_json::json!({"query": "{ hello }", "operationName": null, "variables": null, "extensions": null}))
                .unwrap();
        assert_eq!(params.operation_name, None);
        assert!(params.variables.is_empty() && params.extensions.is_empty());
    }

    #[test]
    fn rejects_malformed_post_bodies() {
        assert!(matches!(GraphQlParams::from_json_body(b"{ \"not a JSON"), Err(TransportError::InvalidJson(_))));
        assert!(matches!(GraphQlParams::from_json_body(b""), Err(TransportError::InvalidJson(_))));
        assert!(matches!(body(serde_json::json!([{"query": "{ hello }"}])), Err(TransportError::BodyNotAnObject)));
        assert!(matches!(body(serde_json::json!({"qeury": "{ hello }"})), Err(TransportError::MissingQuery)));
        for invalid in
            [serde_json::json!({"obj": "ect"}), serde_json::json!(0), serde_json::json!(false), serde_json::json!(["a"])]
        {
            assert!(body(serde_json::json!({"query": invalid.clone()})).is_err());
            assert!(body(serde_json::json!({"query": "{ hello }", "operationName": invalid})).is_err());
        }
        for invalid in [serde_json::json!("string"), serde_json::json!(0), serde_json::json!(false), serde_json::json!(["a"])] {
            assert!(body(serde_json::json!({"query": "{ hello }", "variables": invalid.clone()})).is_err());
            assert!(body(serde_json::json!({"query": "{ hello }", "extensions": invalid})).is_err());
        }
    }

    #[test]
    fn reads_json_variables_from_a_query_string() {
        let params = GraphQlParams::from_query_string(Some("query=%7B%20hello%20%7D&variables=%7B%22a%22%3A1%7D&operationName="))
            .unwrap()
            .unwrap();
        assert_eq!(params.query, "{ hello }");
        assert_eq!(params.variables["a"], 1);
        assert_eq!(params.operation_name, None);
        assert_eq!(GraphQlParams::from_query_string(None).unwrap(), None);
        assert!(GraphQlParams::from_query_string(Some("query=x&variables=%5B1%5D")).is_err());
        assert!(GraphQlParams::from_query_string(Some("query=x&extensions=nope")).is_err());
    }

    #[test]
    fn only_utf8_json_bodies_are_supported() {
        let with = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(header::CONTENT_TYPE, value.parse().unwrap());
            check_content_type(&headers)
        };
        assert!(with("application/json").is_ok());
        assert!(with("Application/JSON; charset=UTF-8").is_ok());
        assert!(with("application/json; charset=latin1").is_err());
        assert!(with("text/plain;charset=UTF-8").is_err());
        assert!(check_content_type(&HeaderMap::new()).is_err());
    }
}
