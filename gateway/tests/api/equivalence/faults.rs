//! Error documents: a generated request (see [`generator`](super::generator))
//! with one fault in the operation it selects. Field errors (a page size
//! out of range, a cursor this API never issued) in one or two added root
//! fields, so null propagation shows and the other roots still answer
//! where the faulty field is nullable; and request errors: a field or
//! argument the schema does not have, a variable of the wrong type or a
//! required one not sent, an operationName naming no operation.

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;
use serde_json::{json, Value};

use super::document::{self, Document, ExtraVariable, Item, Naming, Operation};
use super::generator::{operations, Known};

/// Page sizes the paging rules refuse (0 to 100 are allowed).
const BAD_FIRSTS: [i64; 5] = [-1, 101, 1000, -2147483648, 2147483647];
/// Strings no answer gave as a cursor: base64 of `post:`, of a negative
/// instant, of an id that is not one, of an instant beyond any.
const GARBAGE_CURSORS: [&str; 7] = [
    "",
    "nope",
    "cG9zdDo",
    "cG9zdDotMTowMTkwYTAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA",
    "cG9zdDoxOm5vcGU",
    "cG9zdDo5OTk5OTk5OTk5OTk5OTk5OTk5OTowMTkwYTAwMC0wMDAwLTcwMDAtODAwMC0wMDAwMDAwMDAwMDA",
    "0190a000-0000-7000-8000-000000000000",
];

/// Root fields under which a page's arguments go wrong, `{page}` standing
/// for those arguments; nullable ones (`user`, `post`, `me`…) turn null
/// alone, the others take `data` with them.
const PAGED_ROOTS: [&str; 7] = [
    "posts({page}) { nodes { id } }",
    "posts(first: 2) { edges { node { author { posts({page}) { pageInfo { hasNextPage } } } } } }",
    "user(id: {user}) { username posts({page}) { nodes { title } } }",
    "userByUsername(username: \"bob\") { posts({page}) { edges { cursor } } }",
    "post(id: {post}) { title author { posts({page}) { nodes { id } } } }",
    "me { id posts({page}) { nodes { id } } }",
    "leaderboard { username posts({page}) { nodes { id } } }",
];

/// Fields and arguments the schema does not have, or misused.
const INVALID_ROOTS: [&str; 10] = [
    "nope",
    "user(id: {user}) { id nope }",
    "posts { nodes { title author { password } } }",
    "posts { pageInfo { total } }",
    "leaderboard { id posts { count } }",
    "posts(last: 2) { nodes { id } }",
    "post { id }",
    "me",
    "me { id { value } }",
    "posts(first: \"two\") { nodes { id } }",
];

/// A variable `$bad` (its definition, none: undeclared), the root that
/// uses it, and what is sent for it (none: nothing).
fn bad_variables() -> Vec<(Option<&'static str>, &'static str, Option<Value>)> {
    let posts = "posts(first: $bad) { nodes { id } }";
    let user = "user(id: $bad) { id }";
    vec![
        (Some("$bad: Int"), posts, Some(json!("three"))),
        (Some("$bad: Int"), posts, Some(json!(2.5))),
        (Some("$bad: Int"), posts, Some(json!(3_000_000_000_i64))),
        (Some("$bad: Int = 3"), posts, Some(json!("3"))),
        (Some("$bad: Int!"), posts, None),
        (Some("$bad: ID!"), user, None),
        (Some("$bad: ID!"), user, Some(Value::Null)),
        (Some("$bad: ID!"), user, Some(json!(true))),
        (Some("$bad: String!"), "userByUsername(username: $bad) { id }", Some(json!(7))),
        (Some("$bad: String"), "posts(after: $bad) { nodes { id } }", Some(json!(["x"]))),
        (Some("$bad: Boolean!"), "__typename @skip(if: $bad)", Some(json!("yes"))),
        (Some("$bad: Boolean!"), "__typename @include(if: $bad)", None),
        // Declared with a type its position does not take, or not used at all.
        (Some("$bad: String"), posts, Some(json!("3"))),
        (Some("$bad: Int"), "__typename", Some(json!(3))),
        (None, posts, None),
    ]
}

#[derive(Debug, Clone)]
enum Fault {
    /// Roots whose pages break the paging rules, with the variables they use.
    FieldErrors(Vec<(String, Option<ExtraVariable>)>),
    Invalid(&'static str),
    Variable(Option<&'static str>, &'static str, Option<Value>),
    /// operationName naming no operation, or none among several.
    OperationName(bool),
}

/// A generated request with one fault in its selected operation.
pub fn faulty_request(known: &Known) -> impl Strategy<Value = Document> {
    let known = known.clone();
    (operations(&known, 2), any::<prop::sample::Index>(), any::<bool>(), any::<bool>(), fault(&known)).prop_map(
        move |(mut operations, selected, anonymous, send_name, fault)| {
            let selected = selected.index(operations.len());
            let naming = Naming { anonymous, send_name };
            let operation = &mut operations[selected];
            let mut wrong_name = None;
            match fault {
                Fault::FieldErrors(roots) => {
                    for (n, (root, variable)) in roots.into_iter().enumerate() {
                        insert_root(operation, n, format!("e{n}: {root}"));
                        operation.extra.extend(variable);
                    }
                }
                Fault::Invalid(root) => insert_root(operation, 0, format!("e0: {}", with_known(root, &known))),
                Fault::Variable(definition, root, sent) => {
                    insert_root(operation, 0, format!("e0: {}", with_known(root, &known)));
                    operation.extra.extend(definition.map(|definition| ExtraVariable {
                        definition: definition.to_owned(),
                        name: "bad".to_owned(),
                        sent,
                    }));
                }
                Fault::OperationName(missing) => wrong_name = Some(missing),
            }
            let mut written = document::write(&operations, selected, naming);
            match wrong_name {
                Some(true) if operations.len() > 1 => written.operation_name = None,
                Some(_) => written.operation_name = Some("Nope".to_owned()),
                None => {}
            }
            written
        },
    )
}

/// `root` among the operation's roots, at a place that depends on `n`.
fn insert_root(operation: &mut Operation, n: usize, root: String) {
    let place = (n * 2 + 1).min(operation.roots.len());
    operation.roots.insert(place, Item::Raw(root));
}

fn fault(known: &Known) -> BoxedStrategy<Fault> {
    let paged = prop_oneof![
        6 => (select(PAGED_ROOTS.to_vec()), bad_page(false)),
        1 => (Just("leaderboard({page}) { id }"), bad_page(true)),
    ];
    let known_for_paged = known.clone();
    let field_errors = vec(paged, 1..=2).prop_map(move |roots| {
        let roots = roots.into_iter().enumerate().map(|(n, (root, (page, variable)))| {
            let page = page.replace("$bad", &format!("$bad{n}"));
            let variable = variable.map(|variable| ExtraVariable {
                definition: variable.definition.replace("$bad", &format!("$bad{n}")),
                name: format!("bad{n}"),
                sent: variable.sent,
            });
            (with_known(&root.replace("{page}", &page), &known_for_paged), variable)
        });
        Fault::FieldErrors(roots.collect())
    });
    prop_oneof![
        3 => field_errors,
        1 => select(INVALID_ROOTS.to_vec()).prop_map(Fault::Invalid),
        2 => select(bad_variables()).prop_map(|(definition, root, sent)| Fault::Variable(definition, root, sent)),
        1 => any::<bool>().prop_map(Fault::OperationName),
    ]
    .boxed()
}

/// Page arguments the rules refuse: `first` out of range or `after` not a
/// cursor (unless `first_only`), as a literal, a sent variable `$bad` or
/// its default.
fn bad_page(first_only: bool) -> BoxedStrategy<(String, Option<ExtraVariable>)> {
    let first = select(BAD_FIRSTS.to_vec()).prop_map(|first| ("first", "Int", json!(first)));
    let after = select(GARBAGE_CURSORS.to_vec()).prop_map(|cursor| ("after", "String", json!(cursor)));
    let argument = if first_only { first.boxed() } else { prop_oneof![first, after].boxed() };
    (argument, 0..3u8)
        .prop_map(|((name, ty, value), form)| {
            let literal = serde_json::to_string(&value).expect("a JSON value");
            match form {
                0 => (format!("{name}: {literal}"), None),
                1 => (
                    format!("{name}: $bad"),
                    Some(ExtraVariable { definition: format!("$bad: {ty}"), name: "bad".into(), sent: Some(value) }),
                ),
                _ => (
                    format!("{name}: $bad"),
                    Some(ExtraVariable { definition: format!("$bad: {ty} = {literal}"), name: "bad".into(), sent: None }),
                ),
            }
        })
        .boxed()
}

/// `root` with `{user}` and `{post}` standing for a known user and post.
fn with_known(root: &str, known: &Known) -> String {
    root.replace("{user}", &format!("{:?}", known.user_ids[0])).replace("{post}", &format!("{:?}", known.post_ids[0]))
}
