//! Query documents generated with proptest, from a fixed seed, so a failure
//! names a request that fails again on the next run.
//!
//! What they select: random selections of the schema's fields and
//! arguments (subsets of every type's fields in random order, `__typename`
//! at every level, nested up to four levels of entities, page sizes 0 to
//! 5, authors and cursors taken from the state). How they write it (see
//! [`document`]): aliases at every level, a field twice under two aliases
//! with their own arguments, a response key twice with selections to
//! merge, fields grouped into inline fragments (with and without a type
//! condition) and named fragments (spread once or twice, nested), `@skip`
//! and `@include`, every argument as a literal or as a variable (with or
//! without a default, sent or not), one operation (anonymous or named,
//! its name sent or not) or several named ones of which operationName
//! picks one. Every such document answers without errors; [`faults`]
//! makes error documents of them.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::{json, Value};

use super::document::{self, Argument, Directive, Document, Field, Form, Item, Naming, Operation};
use super::faults;

/// What the state holds, for arguments that name something.
#[derive(Debug, Clone)]
pub struct Known {
    pub user_ids: Vec<String>,
    pub usernames: Vec<String>,
    pub post_ids: Vec<String>,
    /// Every post's cursor, newest first.
    pub cursors: Vec<String>,
}

/// An id that names nothing, and one that is not an id at all.
pub const UNKNOWN_IDS: [&str; 2] = ["0190a000-0000-7000-8000-000000000000", "not-an-id"];
const USER_SCALARS: [&str; 7] = ["__typename", "id", "username", "displayName", "points", "postCount", "createdAt"];
const POST_SCALARS: [&str; 5] = ["__typename", "id", "title", "body", "createdAt"];
const PAGE_INFO: [&str; 5] = ["__typename", "hasPreviousPage", "hasNextPage", "startCursor", "endCursor"];
/// Levels of entities below a root field: posts → author → posts → author.
const LEVELS: u32 = 3;

/// `count` documents that answer without errors, the same ones on every run.
pub fn documents(known: &Known, count: usize) -> Vec<Document> {
    sample(request(known, LEVELS), count, 1)
}

/// `count` documents that answer with errors, the same ones on every run.
pub fn error_documents(known: &Known, count: usize) -> Vec<Document> {
    sample(faults::faulty_request(known), count, 2)
}

/// `count` values of `strategy`, from the seed numbered `seed`.
fn sample(strategy: impl Strategy<Value = Document>, count: usize, seed: u8) -> Vec<Document> {
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &[seed; 32]);
    let mut runner = TestRunner::new_with_rng(Config::default(), rng);
    (0..count).map(|_| strategy.new_tree(&mut runner).expect("a document").current()).collect()
}

/// One to three operations, written out with one of them selected.
fn request(known: &Known, levels: u32) -> impl Strategy<Value = Document> {
    (operations(known, levels), any::<prop::sample::Index>(), any::<bool>(), any::<bool>()).prop_map(
        |(operations, selected, anonymous, send_name)| {
            document::write(&operations, selected.index(operations.len()), Naming { anonymous, send_name })
        },
    )
}

/// One operation (three documents in four), or two or three.
pub fn operations(known: &Known, levels: u32) -> BoxedStrategy<Vec<Operation>> {
    let operation = root_selection(known, levels).prop_map(|roots| Operation { roots, extra: Vec::new() });
    prop_oneof![3 => vec(operation.clone(), 1..=1), 1 => vec(operation, 2..=3)].boxed()
}

/// One to three root fields (the same field maybe more than once), maybe
/// `__typename`.
fn root_selection(known: &Known, levels: u32) -> BoxedStrategy<Vec<Item>> {
    let typename = option::of(decorated(Just(Field::new("__typename", vec![], vec![]))));
    let fields = (vec(root(known, levels), 1..=3), typename).prop_map(|(mut fields, typename)| {
        fields.extend(typename);
        fields
    });
    grouped("Query", fields.prop_shuffle())
}

fn root(known: &Known, levels: u32) -> BoxedStrategy<Field> {
    let ids = |known_ids: &[String]| strings(known_ids.iter().map(String::as_str).chain(UNKNOWN_IDS));
    let by_id = |name, ids, selection: BoxedStrategy<Vec<Item>>| {
        (argument("id", "ID!", ids), selection).prop_map(move |(id, selection)| Field::new(name, vec![id], selection))
    };
    let usernames = strings(known.usernames.iter().map(String::as_str).chain(["nobody"]));
    let field = prop_oneof![
        (page_arguments(known, true), connection(known, levels))
            .prop_map(|(arguments, page)| Field::new("posts", arguments, page)),
        by_id("post", ids(&known.post_ids), post(known, levels)),
        by_id("user", ids(&known.user_ids), user(known, levels)),
        (argument("username", "String!", usernames), user(known, levels)).prop_map(|(name, user)| Field::new(
            "userByUsername",
            vec![name],
            user
        )),
        user(known, levels).prop_map(|user| Field::new("me", vec![], user)),
        (option::of(argument("first", "Int", page_sizes())), user(known, levels)).prop_map(|(first, user)| Field::new(
            "leaderboard",
            first.into_iter().collect(),
            user
        )),
    ];
    decorated(field)
}

/// A user's fields; with `levels` left, maybe pages of their posts.
fn user(known: &Known, levels: u32) -> BoxedStrategy<Vec<Item>> {
    let posts = match levels {
        0 => Just(Vec::new()).boxed(),
        _ => copies(
            (page_arguments(known, false), connection(known, levels - 1))
                .prop_map(|(arguments, page)| Field::new("posts", arguments, page)),
            levels,
        ),
    };
    grouped("User", (leaves(&USER_SCALARS), posts).prop_map(joined).prop_shuffle())
}

/// A post's fields; with `levels` left, maybe its author.
fn post(known: &Known, levels: u32) -> BoxedStrategy<Vec<Item>> {
    let author = match levels {
        0 => Just(Vec::new()).boxed(),
        _ => copies(user(known, levels - 1).prop_map(|user| Field::new("author", vec![], user)), levels),
    };
    grouped("Post", (leaves(&POST_SCALARS), author).prop_map(joined).prop_shuffle())
}

/// Some of a connection's edges, nodes and page info, maybe `__typename`.
fn connection(known: &Known, levels: u32) -> BoxedStrategy<Vec<Item>> {
    let edges = copies(edge(known, levels).prop_map(|edge| Field::new("edges", vec![], edge)), levels.min(1));
    let nodes = copies(post(known, levels).prop_map(|post| Field::new("nodes", vec![], post)), levels);
    let page_info =
        copies(grouped("PageInfo", leaves(&PAGE_INFO)).prop_map(|page_info| Field::new("pageInfo", vec![], page_info)), 1);
    let typename = option::of(decorated(Just(Field::new("__typename", vec![], vec![]))));
    let fields = (edges, nodes, page_info, typename).prop_map(|(edges, nodes, page_info, typename)| {
        let mut fields: Vec<Field> = [edges, nodes, page_info].concat();
        fields.extend(typename);
        if fields.is_empty() {
            let has_next_page = Field::new("hasNextPage", vec![], vec![]);
            fields.push(Field::new("pageInfo", vec![], vec![Item::Field(has_next_page)]));
        }
        fields
    });
    grouped("PostConnection", fields.prop_shuffle())
}

/// An edge's node, maybe with its cursor and `__typename`.
fn edge(known: &Known, levels: u32) -> BoxedStrategy<Vec<Item>> {
    let node = decorated(post(known, levels).prop_map(|post| Field::new("node", vec![], post)));
    grouped(
        "PostEdge",
        (node, leaves(&["cursor", "__typename"]))
            .prop_map(|(node, mut leaves)| {
                leaves.push(node);
                leaves
            })
            .prop_shuffle(),
    )
}

/// `(first: …, after: …, authorId: …)`, each argument maybe left out.
fn page_arguments(known: &Known, by_author: bool) -> BoxedStrategy<Vec<Argument>> {
    let cursors = strings(known.cursors.iter().map(String::as_str));
    let authors = strings(known.user_ids.iter().map(String::as_str).chain(UNKNOWN_IDS));
    let author = if by_author { option::of(argument("authorId", "ID", authors)).boxed() } else { Just(None).boxed() };
    let first = option::of(argument("first", "Int", page_sizes()));
    let after = option::of(argument("after", "String", cursors));
    (first, after, author).prop_map(|(first, after, author)| [first, after, author].into_iter().flatten().collect()).boxed()
}

fn page_sizes() -> Vec<Value> {
    (0..=5).map(Value::from).collect()
}

/// An argument at a position of type `position`, one of `values`, in any
/// form its position allows.
pub fn argument(name: &'static str, position: &'static str, values: Vec<Value>) -> BoxedStrategy<Argument> {
    let nullable = !position.ends_with('!');
    let non_null = any::<bool>();
    let mut forms = vec![
        (4, Just(Form::Literal).boxed()),
        (2, non_null.prop_map(move |non_null| Form::Sent { non_null: non_null || !nullable }).boxed()),
        (1, non_null.prop_map(|non_null| Form::Defaulted { non_null }).boxed()),
        (1, non_null.prop_map(|non_null| Form::Overridden { non_null }).boxed()),
    ];
    if nullable {
        forms.extend([(1, Just(Form::LiteralNull).boxed()), (1, Just(Form::Unsent).boxed()), (1, Just(Form::SentNull).boxed())]);
    }
    let form = proptest::strategy::Union::new_weighted(forms);
    (select(values.clone()), select(values), form)
        .prop_map(move |(value, other, form)| Argument { name, position, value, other, form })
        .boxed()
}

/// Maybe `@skip` or `@include`, its condition literal or a variable.
fn directive() -> BoxedStrategy<Option<Directive>> {
    let condition = argument("if", "Boolean!", vec![json!(true), json!(false)]);
    let directive = (select(vec!["skip", "include"]), condition).prop_map(|(name, condition)| Directive { name, condition });
    prop_oneof![4 => Just(None), 1 => directive.prop_map(Some)].boxed()
}

/// `field`, maybe aliased, maybe under a directive, maybe written twice.
/// A directive on `__typename` takes a literal: async-graphql's validation
/// does not see its variables, and says they are not used.
fn decorated(field: impl Strategy<Value = Field> + 'static) -> BoxedStrategy<Field> {
    (field, any::<bool>(), directive(), prop_oneof![5 => Just(false), 1 => Just(true)])
        .prop_map(|(field, aliased, mut directive, twin)| {
            if let Some(directive) = directive.as_mut().filter(|_| field.name == "__typename") {
                directive.condition.form = Form::Literal;
            }
            Field { aliased, directive, twin, ..field }
        })
        .boxed()
}

/// No copies of `field`, one, or (above the last levels) two: the same
/// field with its own arguments and selection, so under another alias.
fn copies(field: impl Strategy<Value = Field> + 'static, levels: u32) -> BoxedStrategy<Vec<Field>> {
    let most = if levels >= 2 { 2 } else { 1 };
    vec(decorated(field), 0..=most).boxed()
}

/// A non-empty subset of the leaves `names`, each decorated.
fn leaves(names: &[&'static str]) -> BoxedStrategy<Vec<Field>> {
    let length = names.len();
    subsequence(names.to_vec(), 1..=length)
        .prop_flat_map(|names| {
            names.into_iter().map(|name| decorated(Just(Field::new(name, vec![], vec![])))).collect::<Vec<_>>()
        })
        .boxed()
}

/// How a group of a selection's fields is written.
#[derive(Debug, Clone)]
enum Wrapper {
    Inline { typed: bool, directive: Option<Directive> },
    Spread { directive: Option<Directive>, twice: bool },
}

/// `fields` (a selection on `on`) given distinct response keys where they
/// differ, then grouped into fragments, twice over, so fragments nest.
///
/// The first field is the selection's anchor: never skipped, never in a
/// fragment, so no selection is left empty. (async-graphql answers an
/// object whose fields are all skipped with null, even where the schema
/// says non-null, and a response key whose copies answer null and an
/// object with either, whichever comes last: not something to compare.)
fn grouped(on: &'static str, fields: impl Strategy<Value = Vec<Field>> + 'static) -> BoxedStrategy<Vec<Item>> {
    let items = fields.prop_map(|fields| {
        let mut fields = distinct_keys(fields);
        fields[0].directive = None;
        fields.into_iter().map(Item::Field).collect::<Vec<_>>()
    });
    regrouped(on, regrouped(on, items.boxed()))
}

/// Some of `items` but the first moved into up to three fragments, each at
/// the place of its first item.
fn regrouped(on: &'static str, items: BoxedStrategy<Vec<Item>>) -> BoxedStrategy<Vec<Item>> {
    let wrapper = prop_oneof![
        (any::<bool>(), directive()).prop_map(|(typed, directive)| Wrapper::Inline { typed, directive }),
        (directive(), prop_oneof![3 => Just(false), 1 => Just(true)])
            .prop_map(|(directive, twice)| Wrapper::Spread { directive, twice }),
    ]
    .boxed();
    items
        .prop_flat_map(move |items| {
            let groups = vec(select(vec![0, 0, 0, 1, 2, 3]), items.len());
            (Just(items), groups, proptest::array::uniform3(wrapper.clone()))
        })
        .prop_map(move |(items, groups, wrappers)| {
            let mut grouped: Vec<Item> = Vec::new();
            let mut places: [Option<usize>; 3] = [None; 3];
            for (index, (item, group)) in items.into_iter().zip(groups).enumerate() {
                if group == 0 || index == 0 {
                    grouped.push(item);
                    continue;
                }
                let place = *places[group - 1].get_or_insert_with(|| {
                    grouped.push(match wrappers[group - 1].clone() {
                        Wrapper::Inline { typed, directive } => {
                            Item::Inline { condition: typed.then_some(on), directive, items: Vec::new() }
                        }
                        Wrapper::Spread { directive, twice } => Item::Spread { on, directive, twice, items: Vec::new() },
                    });
                    grouped.len() - 1
                });
                match &mut grouped[place] {
                    Item::Inline { items, .. } | Item::Spread { items, .. } => items.push(item),
                    _ => unreachable!("a group's place holds its fragment"),
                }
            }
            grouped
        })
        .boxed()
}

/// `fields` where a field named like an earlier one without an alias gets
/// an alias: only twins share a response key, so every selection merges.
fn distinct_keys(mut fields: Vec<Field>) -> Vec<Field> {
    let mut unaliased = std::collections::HashSet::new();
    for field in &mut fields {
        if !field.aliased && !unaliased.insert(field.name) {
            field.aliased = true;
        }
    }
    fields
}

fn joined<T>((mut first, second): (Vec<T>, Vec<T>)) -> Vec<T> {
    first.extend(second);
    first
}

/// JSON strings of these values.
pub fn strings<'a>(values: impl Iterator<Item = &'a str>) -> Vec<Value> {
    values.map(Value::from).collect()
}

#[test]
fn the_generated_documents_use_every_construct_of_the_grammar() {
    let known = Known {
        user_ids: UNKNOWN_IDS.iter().map(|id| id.to_string()).collect(),
        usernames: vec!["ada".into()],
        post_ids: UNKNOWN_IDS.iter().map(|id| id.to_string()).collect(),
        cursors: vec!["cursor".into()],
    };
    let documents = documents(&known, 200);
    let uses = |what: &str| documents.iter().any(|document| document.query.contains(what));
    for construct in [
        "fragment F",
        " on Query {",
        " on User {",
        " on Post {",
        " on PostConnection {",
        " on PostEdge {",
        " on PageInfo {",
        "... on User",
        "... {",
        "@skip(if: true)",
        "@include(if: false)",
        "@skip(if: $",
        "@include(if: $",
        ": Boolean! = ",
        ": Boolean = ",
        ": Int = ",
        ": Int!",
        ": ID!",
        ": ID = ",
        ": String!",
        ": String = ",
        "first: null",
        "query Q",
        "__typename",
    ] {
        assert!(uses(construct), "no generated document has {construct:?}");
    }
    let spread_twice =
        documents.iter().any(|document| (0..50).any(|n| document.query.matches(&format!("...F{n} ")).count() >= 2));
    assert!(spread_twice, "no generated document spreads a fragment twice");
    let nested =
        documents.iter().any(|document| document.query.lines().any(|line| line.starts_with("fragment") && line.contains("...F")));
    assert!(nested, "no generated fragment spreads another");
    let several = documents.iter().filter(|document| document.query.matches("query Q").count() > 1).count();
    assert!(several > 0, "no generated document has several operations");
    let unsent = documents.iter().any(|document| {
        let declared = document.query.matches("$v").count();
        declared > 0 && document.variables.as_object().is_some_and(|sent| sent.is_empty())
    });
    assert!(unsent, "no generated document leaves its variables unsent");
}
