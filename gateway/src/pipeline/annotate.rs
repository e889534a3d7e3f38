//! The last step: what every answer carries besides its data. Every error
//! gets a code, and the extensions report what the request cost and did:
//! `cost`, `strategy`, `upstreamRequests`, `sqlStatements`, `cache`,
//! `executor` for queries (after
//! a mutation, the consistency token adds `consistencyToken`, see
//! [`super::consistency_token::annotate`]).

use std::collections::BTreeMap;

use agora_platform::errors::ErrorCode;
use async_graphql::{Response, ServerError, Value};

/// An error of the request as a whole (no path, no location), with its code.
pub fn request_error(code: ErrorCode, message: impl Into<String>) -> ServerError {
    let mut error = ServerError::new(message, None);
    let mut extensions = async_graphql::ErrorExtensionValues::default();
    extensions.set("code", code.as_str());
    error.extensions = Some(extensions);
    error
}

/// Gives every error a code: the validator's come without one (the limits'
/// refusals carry theirs).
pub fn add_missing_codes(response: &mut Response) {
    for error in &mut response.errors {
        let has_code = error.extensions.as_ref().is_some_and(|extensions| extensions.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if error.path.is_empty() { ErrorCode::BadUserInput } else { ErrorCode::Internal };
        error.extensions.get_or_insert_with(Default::default).set("code", code.as_str());
    }
}

/// The extensions every answer carries.
pub fn extensions(
    cost: u64,
    strategy: &'static str,
    upstream_requests: usize,
    sql_statements: usize,
    cache: Option<&'static str>,
) -> BTreeMap<String, Value> {
    let mut extensions = BTreeMap::new();
    extensions.insert("cost".into(), Value::from(cost));
    extensions.insert("strategy".into(), Value::from(strategy));
    extensions.insert("upstreamRequests".into(), Value::from(upstream_requests as u64));
    extensions.insert("sqlStatements".into(), Value::from(sql_statements as u64));
    if let Some(cache) = cache {
        extensions.insert("cache".into(), Value::from(cache));
    }
    extensions
}

/// Who executed a query (`extensions.executor`): `compiled` or `resolvers`.
pub fn executor(extensions: &mut BTreeMap<String, Value>, executor: Option<&'static str>) {
    if let Some(executor) = executor {
        extensions.insert("executor".into(), Value::from(executor));
    }
}
