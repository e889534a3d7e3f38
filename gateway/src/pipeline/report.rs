//! What every request tells the operators once it is answered: one log line
//! (target `agora::request`) and the request latency histogram
//! `agora_gateway_request_duration_seconds{operation,type,strategy,status}`.
//!
//! The histogram's labels are bounded: an operation is labelled by its name
//! only while fewer than [`MAX_OPERATION_NAMES`] names have been seen by
//! this process (the names clients choose are unbounded), after that
//! `other`; a request without a name is `anonymous`, one whose document
//! selects no operation (it does not parse, names a missing operation) or
//! that the query limits refused (its document is then not read further)
//! is `unknown`. The log line keeps the name itself.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use agora_platform::trace_context::TraceParent;
use async_graphql::parser::types::OperationType;
use async_graphql::Value;

use super::Answer;

/// The most operation names that label the histogram, per process.
pub const MAX_OPERATION_NAMES: usize = 100;

/// A name longer than this labels as `other` and is cut short in the log.
const MAX_NAME_LENGTH: usize = 64;

/// What the pipeline learnt of a request while it ran it.
#[derive(Debug, Default)]
pub struct RequestFacts {
    /// The selected operation: its name (`None`: anonymous) and type;
    /// `None` when the document selects none.
    pub operation: Option<(Option<String>, OperationType)>,
    /// `read-model`, `composition`, or `unknown` for a strategy the
    /// request named wrongly.
    pub strategy: &'static str,
}

/// Logs the request's line and records its latency.
pub fn report(facts: &RequestFacts, answer: &Answer, elapsed: Duration, trace: &TraceParent) {
    let (extensions, codes) = match answer {
        Answer::Response(response) => (&response.extensions, error_codes(response)),
        Answer::Serialized { extensions, .. } => (extensions, Vec::new()),
    };
    let count = |name: &str| match extensions.get(name) {
        Some(Value::Number(number)) => number.as_u64().unwrap_or(0),
        _ => 0,
    };
    let cache = match extensions.get("cache") {
        Some(Value::String(cache)) => cache.as_str(),
        _ => "bypass",
    };
    let executor = match extensions.get("executor") {
        Some(Value::String(executor)) => executor.as_str(),
        _ => "none",
    };
    let operation_type = match &facts.operation {
        Some((_, OperationType::Query)) => "query",
        Some((_, OperationType::Mutation)) => "mutation",
        Some((_, OperationType::Subscription)) => "subscription",
        None => "unknown",
    };
    let status = if codes.is_empty() { "ok".to_owned() } else { codes.join(",") };
    let name = match &facts.operation {
        Some((Some(name), _)) => name.chars().take(MAX_NAME_LENGTH).collect(),
        Some((None, _)) => "anonymous".to_owned(),
        None => "unknown".to_owned(),
    };
    metrics::histogram!(
        "agora_gateway_request_duration_seconds",
        "operation" => operation_label(&facts.operation),
        "type" => operation_type,
        "strategy" => facts.strategy,
        "status" => if codes.is_empty() { "ok" } else { "error" },
    )
    .record(elapsed.as_secs_f64());
    tracing::info!(
        target: "agora::request",
        operation = %name,
        operationType = operation_type,
        strategy = facts.strategy,
        status = %status,
        durationMs = elapsed.as_secs_f64() * 1000.0,
        cache,
        executor,
        sqlStatements = count("sqlStatements"),
        upstreamRequests = count("upstreamRequests"),
        traceId = trace.trace_id().unwrap_or_default(),
        "request"
    );
}

/// The distinct codes of the answer's errors, in order of appearance.
fn error_codes(response: &async_graphql::Response) -> Vec<String> {
    let mut codes: Vec<String> = Vec::new();
    for error in &response.errors {
        let code = match error.extensions.as_ref().and_then(|extensions| extensions.get("code")) {
            Some(Value::String(code)) => code.clone(),
            _ => "INTERNAL".to_owned(),
        };
        if !codes.contains(&code) {
            codes.push(code);
        }
    }
    codes
}

/// The histogram's `operation` label (see the module).
fn operation_label(operation: &Option<(Option<String>, OperationType)>) -> String {
    static SEEN: OnceLock<Mutex<HashSet<String>>> = OnceLock::new();
    let name = match operation {
        Some((Some(name), _)) => name,
        Some((None, _)) => return "anonymous".to_owned(),
        None => return "unknown".to_owned(),
    };
    if name.len() > MAX_NAME_LENGTH || name == "anonymous" || name == "unknown" || name == "other" {
        return "other".to_owned();
    }
    let mut seen = SEEN.get_or_init(Default::default).lock().expect("the operation names lock");
    if seen.contains(name) || (seen.len() < MAX_OPERATION_NAMES && seen.insert(name.clone())) {
        name.clone()
    } else {
        "other".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anonymous_and_unselected_operations_have_labels_of_their_own() {
        assert_eq!(operation_label(&Some((None, OperationType::Query))), "anonymous");
        assert_eq!(operation_label(&None), "unknown");
        // A client cannot pass its operation off as one of them.
        assert_eq!(operation_label(&Some((Some("anonymous".into()), OperationType::Query))), "other");
    }

    #[test]
    fn names_past_the_limit_fold_into_other() {
        let named = |name: String| operation_label(&Some((Some(name), OperationType::Query)));
        assert_eq!(named("Feed".into()), "Feed");
        for index in 0..MAX_OPERATION_NAMES {
            named(format!("Generated{index}"));
        }
        assert_eq!(named("OneTooMany".into()), "other");
        assert_eq!(named("Feed".into()), "Feed", "a name seen before keeps its label");
        assert_eq!(named("x".repeat(MAX_NAME_LENGTH + 1)), "other");
    }
}
