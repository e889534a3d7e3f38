//! Hostile GraphQL documents: the corpus the query limits are tested with
//! (gateway and both subgraphs, HTTP and WebSocket) and that the load check
//! in `ops/bench` sends. Each is small; unlimited, each would take a
//! service down (memory, CPU, or a runtime thread pinned in validation).

use serde_json::{json, Value};

/// One hostile request and how it must be refused.
#[derive(Debug, Clone)]
pub struct HostileCase {
    pub name: &'static str,
    pub query: String,
    pub variables: Value,
    /// `extensions.code` of the refusal.
    pub code: &'static str,
    /// `extensions.reason` of a QUERY_TOO_COMPLEX refusal.
    pub reason: Option<&'static str>,
}

impl HostileCase {
    fn new(name: &'static str, query: String, code: &'static str, reason: Option<&'static str>) -> Self {
        HostileCase { name, query, variables: json!({}), code, reason }
    }

    /// Whether the refusal reports what was measured (`extensions.cost`
    /// and `extensions.limit`): every QUERY_TOO_COMPLEX but a fragment
    /// cycle's, which has no finite measure.
    pub fn is_measured(&self) -> bool {
        self.reason.is_some_and(|reason| reason != "fragmentCycle")
    }
}

/// A million post bodies asked for in 130 bytes.
pub const LIST_AMPLIFICATION: &str =
    "{ posts(first:100){ nodes{ author{ posts(first:100){ nodes{ author{ posts(first:100){ nodes{ body } } } } } } } } }";

/// `{ ...F0 }` and `levels` fragments on `on`, each spreading the next ten
/// times: 10^levels fields once expanded.
pub fn fragment_fan_out(operation: &str, on: &str, leaf: &str, levels: usize) -> String {
    let mut document = format!("{operation} {{ ...F0 }}");
    for level in 0..levels {
        let spreads = format!("...F{} ", level + 1).repeat(10);
        document.push_str(&format!(" fragment F{level} on {on} {{ {spreads}}}"));
    }
    document.push_str(&format!(" fragment F{levels} on {on} {{ {leaf} }}"));
    document
}

/// `{ a { a { … } } }`, `levels` deep.
pub fn nested_fields(field: &str, levels: usize) -> String {
    format!("{}{}", format!("{{ {field} ").repeat(levels), "}".repeat(levels))
}

/// `{ field(x: [[…]]) { __typename } }`, the list value `levels` deep.
pub fn nested_list_value(field: &str, levels: usize) -> String {
    format!("{{ {field}(x: {}1{}) {{ __typename }} }}", "[".repeat(levels), "]".repeat(levels))
}

/// `levels` inline fragments in one another: nesting without field depth.
pub fn nested_inline_fragments(on: &str, levels: usize) -> String {
    format!("{{ {} __typename {} }}", format!("... on {on} {{ ").repeat(levels), "}".repeat(levels))
}

/// `count` aliases of `selection`.
pub fn aliases(selection: &str, count: usize) -> String {
    let fields: String = (0..count).map(|n| format!("a{n}: {selection} ")).collect();
    format!("{{ {fields}}}")
}

/// The cases every Agora GraphQL endpoint must refuse quickly (the
/// gateway's public schema; fields a subgraph lacks are named by its own
/// cases).
pub fn gateway_corpus() -> Vec<HostileCase> {
    vec![
        HostileCase::new("list amplification", LIST_AMPLIFICATION.to_owned(), "QUERY_TOO_COMPLEX", Some("cost")),
        HostileCase::new(
            "fragment fan-out, 8 levels",
            fragment_fan_out("query", "Query", "__typename", 8),
            "QUERY_TOO_COMPLEX",
            Some("size"),
        ),
        HostileCase::new(
            "fragment fan-out, 12 levels",
            fragment_fan_out("query", "Query", "__typename", 12),
            "QUERY_TOO_COMPLEX",
            Some("size"),
        ),
        HostileCase::new(
            "fragment fan-out under an empty page",
            format!(
                "{{ posts(first: 0) {{ nodes {{ ...F0 }} }} }}{}",
                fragment_fan_out("query", "Post", "id", 8).trim_start_matches("query { ...F0 }")
            ),
            "QUERY_TOO_COMPLEX",
            Some("size"),
        ),
        HostileCase::new(
            "fragment cycle",
            "{ ...F0 } fragment F0 on Query { ...F1 ...F1 } fragment F1 on Query { ...F0 ...F0 }".to_owned(),
            "QUERY_TOO_COMPLEX",
            Some("fragmentCycle"),
        ),
        HostileCase::new("nesting past the parser's limit", nested_fields("me", 70), "QUERY_TOO_COMPLEX", Some("depth")),
        // Some thousand levels deep the parser runs out of stack (48 KB: within a subgraph's body limit).
        HostileCase::new("nesting past the parser's stack", nested_fields("me", 8_000), "QUERY_TOO_COMPLEX", Some("depth")),
        HostileCase::new(
            "a value nested past the parser's stack",
            nested_list_value("me", 8_000),
            "QUERY_TOO_COMPLEX",
            Some("depth"),
        ),
        HostileCase::new(
            "nesting past the recursion check",
            nested_inline_fragments("Query", 40),
            "QUERY_TOO_COMPLEX",
            Some("depth"),
        ),
        HostileCase::new("41 aliases", aliases("__typename", 41), "QUERY_TOO_COMPLEX", Some("aliases")),
    ]
}

/// `count` representations of users for `_entities` (about 30 bytes each:
/// 10,000 of them are over a subgraph's body limit already).
pub fn user_representations(count: usize) -> Value {
    Value::Array((0..count).map(|n| json!({ "__typename": "User", "id": n.to_string() })).collect())
}

/// The cases a subgraph must refuse: the gateway's that apply to its
/// schema (those asking for posts only if it `has_posts`), and `_entities`
/// asked for `representations` at once.
pub fn subgraph_corpus(has_posts: bool, representations: usize) -> Vec<HostileCase> {
    let mut cases: Vec<HostileCase> =
        gateway_corpus().into_iter().filter(|case| has_posts || !case.query.contains("posts")).collect();
    cases.push(HostileCase {
        name: "_entities with many representations",
        query: "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id } } }".to_owned(),
        variables: json!({ "r": user_representations(representations) }),
        code: "QUERY_TOO_COMPLEX",
        reason: Some("listSize"),
    });
    cases
}
