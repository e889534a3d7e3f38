use std::time::{Duration, Instant};

use async_graphql::Variables;
use proptest::prelude::*;
use serde_json::json;

use super::*;

fn limiter() -> QueryLimiter {
    QueryLimiter::new(Limits { max_depth: 12, max_cost: 2_000, max_aliases: 30, max_fields: 1_000 }, CostModel::agora())
}

fn check(query: &str) -> Result<Measured, Refusal> {
    check_with(query, json!({}))
}

fn check_with(query: &str, variables: serde_json::Value) -> Result<Measured, Refusal> {
    let mut request = async_graphql::Request::new(query).variables(Variables::from_json(variables));
    limiter().check(&mut request)
}

fn reason(result: Result<Measured, Refusal>) -> (Reason, u64, u64) {
    match result {
        Err(Refusal::TooComplex { reason, measured, limit, .. }) => (reason, measured, limit),
        other => panic!("not refused as too complex: {other:?}"),
    }
}

/// `levels` fragments, each spreading the next ten times.
pub(crate) fn fan_out(levels: usize) -> String {
    let mut document = "{ ...F0 }".to_owned();
    for level in 0..levels {
        let spreads = format!("...F{} ", level + 1).repeat(10);
        document.push_str(&format!(" fragment F{level} on Query {{ {spreads}}}"));
    }
    document.push_str(&format!(" fragment F{levels} on Query {{ __typename }}"));
    document
}

#[test]
fn every_field_costs_one_times_the_lists_above_it() {
    assert_eq!(check("{ me { id } }").unwrap().cost, 2);
    // 1 for posts, 20 (the default page) times nodes { id }.
    assert_eq!(check("{ posts { nodes { id } } }").unwrap().cost, 1 + 20 * 2);
    assert_eq!(check("{ posts(first: 5) { nodes { id } } }").unwrap().cost, 1 + 5 * 2);
    assert_eq!(check_with("query($n: Int) { posts(first: $n) { nodes { id } } }", json!({ "n": 3 })).unwrap().cost, 7);
    assert_eq!(check("{ leaderboard { id } }").unwrap().cost, 11);
    // A page larger than allowed counts as the largest (the resolver refuses it).
    assert_eq!(check("{ posts(first: 1000) { nodes { id } } }").unwrap().cost, 1 + 100 * 2);
    let nested = "{ posts(first: 10) { nodes { author { posts(first: 10) { nodes { id } } } } } }";
    assert_eq!(check(nested).unwrap().cost, 1 + 10 * (1 + 1 + (1 + 10 * 2)));
}

#[test]
fn the_list_amplification_query_is_refused_for_its_cost() {
    let query =
        "{ posts(first:100){ nodes{ author{ posts(first:100){ nodes{ author{ posts(first:100){ nodes{ body } } } } } } } } }";
    let (reason, cost, limit) = reason(check(query));
    assert_eq!((reason, limit), (Reason::Cost, 2_000));
    assert!(cost > 1_000_000, "{cost}");
}

#[test]
fn entities_cost_per_representation_and_too_many_are_refused() {
    let representations: Vec<_> = (0..10).map(|n| json!({ "__typename": "User", "id": n.to_string() })).collect();
    let query = "query($r: [_Any!]!) { _entities(representations: $r) { ... on User { id postCount } } }";
    assert_eq!(check_with(query, json!({ "r": representations })).unwrap().cost, 1 + 10 * 2);
    let many: Vec<_> = (0..10_000).map(|n| json!({ "__typename": "User", "id": n.to_string() })).collect();
    assert_eq!(reason(check_with(query, json!({ "r": many }))), (Reason::ListSize, 10_000, MAX_ELEMENTS));
}

#[test]
fn a_fragment_fan_out_is_refused_at_once_for_its_expanded_size() {
    for levels in [8, 12, 20] {
        let started = Instant::now();
        let (reason, fields, limit) = reason(check(&fan_out(levels)));
        assert!(started.elapsed() < Duration::from_millis(100), "{levels} levels took {:?}", started.elapsed());
        assert_eq!((reason, limit), (Reason::Size, 1_000), "{levels} levels");
        assert!(fields >= 10u64.saturating_pow(levels as u32), "{levels}: {fields}");
    }
    // Spreads nest too: 40 levels are refused for their nesting, as quickly.
    assert_eq!(reason(check(&fan_out(40))), (Reason::Depth, 33, MAX_NESTING as u64));
}

fn cycle_of(result: Result<Measured, Refusal>) -> Vec<String> {
    match result {
        Err(Refusal::FragmentCycle(path)) => path,
        other => panic!("not refused as a fragment cycle: {other:?}"),
    }
}

#[test]
fn a_fragment_cycle_is_too_complex_and_named_by_its_path() {
    let error = check("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }").unwrap_err().into_server_error();
    assert_eq!(error.message, "fragment A spreads itself: A -> B -> A");
    let extensions = error.extensions.unwrap();
    assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from("QUERY_TOO_COMPLEX")));
    assert_eq!(extensions.get("reason"), Some(&async_graphql::Value::from("fragmentCycle")));
    // A cycle has no finite measure to report.
    assert_eq!(extensions.get("cost"), None);
    assert_eq!(cycle_of(check("{ ...A } fragment A on Query { me { ...A } }")), ["A", "A"]);
    // A cycle no operation spreads is found too (where it is entered depends on the map's order).
    let unused = cycle_of(check("{ me { id } } fragment F0 on Query { ...F1 } fragment F1 on Query { ...F0 }"));
    assert!(unused == ["F0", "F1", "F0"] || unused == ["F1", "F0", "F1"], "{unused:?}");
}

#[test]
fn depth_counts_fields_through_fragments() {
    let mut deep = "id".to_owned();
    for _ in 0..6 {
        deep = format!("posts {{ nodes {{ author {{ {deep} }} }} }}");
    }
    assert_eq!(reason(check(&format!("{{ {deep} }}"))).0, Reason::Depth);
    let through_fragments =
        "{ me { ...A } } fragment A on User { posts { nodes { ...B } } } fragment B on Post { author { ...C } } \
        fragment C on User { posts { nodes { author { posts { nodes { author { posts { nodes { author { id } } } } } } } } } }";
    let (reason, depth, limit) = reason(check(through_fragments));
    assert_eq!((reason, depth, limit), (Reason::Depth, 14, 12));
}

#[test]
fn selections_nested_past_the_parsers_limit_are_too_complex() {
    let deep = format!("{}{}", "{ a ".repeat(70), "}".repeat(70));
    assert_eq!(reason(check(&deep)), (Reason::Depth, 70, MAX_BRACKET_NESTING as u64));
    // Inline fragments nest without adding field depth: refused before async-graphql's recursion check.
    let inline = format!("{{ {} __typename {} }}", "... on Query { ".repeat(40), "}".repeat(40));
    assert_eq!(reason(check(&inline)), (Reason::Depth, 33, MAX_NESTING as u64));
}

#[test]
fn a_document_nested_past_the_parsers_stack_is_too_complex_not_a_syntax_error() {
    // Some thousand levels deep the parser runs out of stack and says so as a syntax error.
    let deep = format!("{}{}", "{a".repeat(10_000), "}".repeat(10_000));
    assert_eq!(reason(check(&deep)), (Reason::Depth, 10_000, MAX_BRACKET_NESTING as u64));
    let deep_value = format!("{{ a(x: {}1{}) {{ id }} }}", "[".repeat(10_000), "]".repeat(10_000));
    assert_eq!(reason(check(&deep_value)), (Reason::Depth, 10_002, MAX_BRACKET_NESTING as u64));
    // Values nest like selections: a hundred levels is too deep for any schema here.
    let nested_object = format!("{{ a(x: {}1{}) {{ id }} }}", "{b: ".repeat(100), "}".repeat(100));
    assert_eq!(reason(check(&nested_object)).0, Reason::Depth);
    // What the limit lets through, the parser parses (its own limit, 64 selection sets, is never what refuses).
    let deepest = format!("{}{}", "{a".repeat(MAX_BRACKET_NESTING), "}".repeat(MAX_BRACKET_NESTING));
    assert!(async_graphql::parser::parse_query(&deepest).is_ok());
}

#[test]
fn brackets_in_strings_and_comments_do_not_nest() {
    let brackets = "{[(".repeat(100);
    for query in [
        format!("{{ a(x: \"{brackets}\") {{ id }} }}"),
        format!("{{ a(x: \"\\\"{brackets}\") {{ id }} }}"),
        format!("{{ a(x: \"\"\"{brackets} \\\"\"\" \" {brackets}\"\"\") {{ id }} }}"),
        format!("{{ a # {brackets}\n {{ id }} }}"),
    ] {
        assert!(check(&query).is_ok(), "{query}: {:?}", check(&query));
    }
}

#[test]
fn aliases_are_counted_with_fragments_expanded() {
    let aliases: String = (0..31).map(|n| format!("a{n}: me {{ id }} ")).collect();
    assert_eq!(reason(check(&format!("{{ {aliases} }}"))), (Reason::Aliases, 31, 30));
    let spread = "{ ...A ...A ...A ...A } fragment A on Query { a: me { id } b: me { id } c: me { id } d: me { id } e: me { id } f: me { id } g: me { id } h: me { id } }";
    assert_eq!(reason(check(spread)), (Reason::Aliases, 32, 30));
}

#[test]
fn a_variable_left_out_costs_its_default_as_execution_uses_it() {
    let written = check("{ posts(first: 100) { nodes { id } } }").unwrap().cost;
    let defaulted = "query($n: Int = 100) { posts(first: $n) { nodes { id } } }";
    assert_eq!(check(defaulted).unwrap().cost, written);
    assert!(check_with(defaulted, json!({ "n": 1 })).unwrap().cost < written);
    // Each operation's own default.
    let two =
        "query A($n: Int = 1) { posts(first: $n) { nodes { id } } } query B($n: Int = 100) { posts(first: $n) { nodes { id } } }";
    let mut request = async_graphql::Request::new(two).operation_name("B");
    assert_eq!(limiter().check(&mut request).unwrap().cost, written);
}

#[test]
fn the_named_operation_is_the_one_costed() {
    let document = "query Small { me { id } } query Large { posts { nodes { id } } }";
    let mut request = async_graphql::Request::new(document).operation_name("Small");
    assert_eq!(limiter().check(&mut request).unwrap().cost, 2);
    let mut request = async_graphql::Request::new(document);
    assert_eq!(limiter().check(&mut request).unwrap().cost, 41);
}

#[test]
fn a_refusal_carries_its_code_cost_limit_and_reason() {
    let error = check(&fan_out(8)).unwrap_err().into_server_error();
    let extensions = error.extensions.unwrap();
    assert_eq!(extensions.get("code"), Some(&async_graphql::Value::from("QUERY_TOO_COMPLEX")));
    assert_eq!(extensions.get("reason"), Some(&async_graphql::Value::from("size")));
    assert_eq!(extensions.get("limit"), Some(&async_graphql::Value::from(1_000u64)));
    assert!(extensions.get("cost").is_some());
}

/// The documents a schema must refuse as too complex however they arrive:
/// through the extension alone, with nothing checked before it.
#[test]
fn a_schema_with_the_extension_answers_every_too_deep_or_too_large_document_with_query_too_complex() {
    use async_graphql::{EmptyMutation, EmptySubscription, Object, Schema};

    struct Root;
    #[Object]
    impl Root {
        async fn me(&self) -> Option<Root> {
            None
        }
        async fn id(&self) -> i32 {
            1
        }
    }
    let schema = Schema::build(Root, EmptyMutation, EmptySubscription).extension(QueryLimitsExtension::new(limiter())).finish();
    let spread_chain = {
        let fragments: String = (0..40).map(|n| format!(" fragment F{n} on Root {{ ...F{} }}", n + 1)).collect();
        format!("{{ ...F0 }}{fragments} fragment F40 on Root {{ id }}")
    };
    let documents = [
        ("nested past the parser's limit", format!("{}{}", "{ me ".repeat(70), "}".repeat(70)), "depth"),
        ("nested past the parser's stack", format!("{}{}", "{me".repeat(10_000), "}".repeat(10_000)), "depth"),
        (
            "a value nested past the parser's stack",
            format!("{{ me(x: {}1{}) {{ id }} }}", "[".repeat(10_000), "]".repeat(10_000)),
            "depth",
        ),
        (
            "inline fragments past the recursion check",
            format!("{{ {} id {} }}", "... on Root { ".repeat(40), "}".repeat(40)),
            "depth",
        ),
        ("spreads past the recursion check", spread_chain, "depth"),
        ("too deep in fields", format!("{{ {}id{} }}", "me { ".repeat(13), " }".repeat(13)), "depth"),
        ("a fragment cycle", "{ ...A } fragment A on Root { ...B } fragment B on Root { ...A }".to_owned(), "fragmentCycle"),
        ("a fan-out", fan_out(8).replace("on Query", "on Root"), "size"),
        ("aliases", format!("{{ {} }}", (0..31).map(|n| format!("a{n}: id ")).collect::<String>()), "aliases"),
    ];
    for (name, document, reason) in documents {
        let response = futures::executor::block_on(schema.execute(document.as_str()));
        let extensions = response.errors.first().and_then(|error| error.extensions.clone()).unwrap_or_default();
        assert_eq!(
            extensions.get("code"),
            Some(&async_graphql::Value::from("QUERY_TOO_COMPLEX")),
            "{name}: {:?}",
            response.errors
        );
        assert_eq!(extensions.get("reason"), Some(&async_graphql::Value::from(reason)), "{name}: {:?}", response.errors);
    }
}

#[test]
fn a_syntax_error_is_bad_user_input() {
    assert!(matches!(check("{ posts { "), Err(Refusal::Invalid(_))));
}

/// Pieces documents are made of, valid or not.
fn piece() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("{".to_owned()),
        Just("}".to_owned()),
        Just("posts(first: 100) {".to_owned()),
        Just("nodes {".to_owned()),
        Just("author {".to_owned()),
        Just("id".to_owned()),
        Just("a: me { id }".to_owned()),
        (0..4u8).prop_map(|n| format!("...F{n}")),
        (0..4u8).prop_map(|n| format!("fragment F{n} on Query {{")),
        Just("... on User {".to_owned()),
        Just("_entities(representations: [{}, {}]) {".to_owned()),
        Just("query($n: Int) {".to_owned()),
        Just("posts(first: $n) {".to_owned()),
        Just("\"".to_owned()),
        Just("#".to_owned()),
        "[a-z_(){}:.$\\[\\] ]{0,8}",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    /// Any document is measured (or refused) quickly and without a panic, and
    /// an accepted one is within every limit.
    #[test]
    fn any_document_is_measured_within_bounds(pieces in proptest::collection::vec(piece(), 0..60), repeat in 1..30usize) {
        let document = pieces.join(" ").repeat(repeat);
        let started = Instant::now();
        let result = check(&document);
        prop_assert!(started.elapsed() < Duration::from_millis(200), "{:?}", started.elapsed());
        if let Ok(measured) = result {
            prop_assert!(measured.cost <= 2_000);
        }
    }
}

/// The introspection query GraphiQL sends to draw its docs (graphql-js's
/// `getIntrospectionQuery`, abridged to the parts that make it deep).
const PLAYGROUND_INTROSPECTION: &str = "query IntrospectionQuery { __schema {
    queryType { name } mutationType { name } subscriptionType { name }
    types { ...FullType }
    directives { name description locations args { ...InputValue } } } }
  fragment FullType on __Type { kind name description
    fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason }
    inputFields { ...InputValue } interfaces { ...TypeRef }
    enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } }
  fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue }
  fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType {
    kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";

#[test]
fn the_playground_can_introspect_the_schema_however_deep_its_type_references_go() {
    check(PLAYGROUND_INTROSPECTION).expect("the playground's introspection is allowed");
    // Outside introspection the same depth is still refused.
    let deep = format!("{{ {}id{} }}", "me { posts { nodes { author { ".repeat(3), " } } } }".repeat(3));
    assert_eq!(reason(check(&deep)).0, Reason::Depth);
}
