//! Query documents generated with proptest: random selections of the
//! schema's fields and arguments (subsets of `User` and `Post` fields in
//! random order, nested up to four levels of entities, page sizes 0 to 5,
//! authors and cursors taken from the state), from a fixed seed, so a
//! failure names a query that fails again on the next run.

use proptest::option;
use proptest::prelude::*;
use proptest::sample::{select, subsequence};
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

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
const UNKNOWN_IDS: [&str; 2] = ["0190a000-0000-7000-8000-000000000000", "not-an-id"];
const USER_SCALARS: [&str; 7] = ["__typename", "id", "username", "displayName", "points", "postCount", "createdAt"];
const POST_SCALARS: [&str; 5] = ["__typename", "id", "title", "body", "createdAt"];
const PAGE_INFO: [&str; 4] = ["hasPreviousPage", "hasNextPage", "startCursor", "endCursor"];
/// Levels of entities below a root field: posts → author → posts → author.
const LEVELS: u32 = 3;

/// `count` documents, the same ones on every run.
pub fn queries(known: &Known, count: usize) -> Vec<String> {
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::deterministic_rng(RngAlgorithm::ChaCha));
    let strategy = document(known);
    (0..count).map(|_| strategy.new_tree(&mut runner).expect("a query document").current()).collect()
}

/// One to three root fields, aliased so that the same field may come twice.
fn document(known: &Known) -> impl Strategy<Value = String> {
    proptest::collection::vec(root(known), 1..=3).prop_map(|roots| {
        let fields: Vec<String> = roots.iter().enumerate().map(|(n, root)| format!("r{n}: {root}")).collect();
        format!("{{ {} }}", fields.join(" "))
    })
}

fn root(known: &Known) -> BoxedStrategy<String> {
    let user_ids = quoted(known.user_ids.iter().map(String::as_str).chain(UNKNOWN_IDS));
    let post_ids = quoted(known.post_ids.iter().map(String::as_str).chain(UNKNOWN_IDS));
    let usernames = quoted(known.usernames.iter().map(String::as_str).chain(["nobody"]));
    prop_oneof![
        (page_arguments(known, true), connection(known, LEVELS))
            .prop_map(|(arguments, page)| format!("posts{arguments} {{ {page} }}")),
        (select(post_ids), post(known, LEVELS)).prop_map(|(id, post)| format!("post(id: {id}) {{ {post} }}")),
        (select(user_ids), user(known, LEVELS)).prop_map(|(id, user)| format!("user(id: {id}) {{ {user} }}")),
        (select(usernames), user(known, LEVELS))
            .prop_map(|(name, user)| format!("userByUsername(username: {name}) {{ {user} }}")),
        user(known, LEVELS).prop_map(|user| format!("me {{ {user} }}")),
        (option::of(0..=5u8), user(known, LEVELS)).prop_map(|(first, user)| match first {
            Some(first) => format!("leaderboard(first: {first}) {{ {user} }}"),
            None => format!("leaderboard {{ {user} }}"),
        }),
    ]
    .boxed()
}

/// A user's fields; with `levels` left, maybe a page of their posts.
fn user(known: &Known, levels: u32) -> BoxedStrategy<String> {
    let scalars = scalars(&USER_SCALARS);
    if levels == 0 {
        return scalars.boxed();
    }
    let posts = (page_arguments(known, false), connection(known, levels - 1))
        .prop_map(|(arguments, page)| format!("posts{arguments} {{ {page} }}"));
    (scalars, option::of(posts)).prop_map(|(scalars, posts)| format!("{scalars} {}", posts.unwrap_or_default())).boxed()
}

/// A post's fields; with `levels` left, maybe its author.
fn post(known: &Known, levels: u32) -> BoxedStrategy<String> {
    let scalars = scalars(&POST_SCALARS);
    if levels == 0 {
        return scalars.boxed();
    }
    let author = user(known, levels - 1).prop_map(|user| format!("author {{ {user} }}"));
    (scalars, option::of(author)).prop_map(|(scalars, author)| format!("{scalars} {}", author.unwrap_or_default())).boxed()
}

/// Some of a connection's edges (with or without cursors), nodes and page info.
fn connection(known: &Known, levels: u32) -> BoxedStrategy<String> {
    let edges = (any::<bool>(), post(known, levels))
        .prop_map(|(cursor, post)| format!("edges {{ {} node {{ {post} }} }}", if cursor { "cursor" } else { "" }));
    let nodes = post(known, levels).prop_map(|post| format!("nodes {{ {post} }}"));
    let page_info = scalars(&PAGE_INFO).prop_map(|fields| format!("pageInfo {{ {fields} }}"));
    (option::of(edges), option::of(nodes), option::of(page_info))
        .prop_map(|(edges, nodes, page_info)| {
            let parts: Vec<String> = [edges, nodes, page_info].into_iter().flatten().collect();
            if parts.is_empty() {
                "pageInfo { hasNextPage }".to_owned()
            } else {
                parts.join(" ")
            }
        })
        .boxed()
}

/// `(first: …, after: …, authorId: …)`, each argument maybe left out.
fn page_arguments(known: &Known, by_author: bool) -> BoxedStrategy<String> {
    let cursors = quoted(known.cursors.iter().map(String::as_str));
    let authors = quoted(known.user_ids.iter().map(String::as_str).chain(UNKNOWN_IDS));
    let author = if by_author { option::of(select(authors)).boxed() } else { Just(None).boxed() };
    (option::of(0..=5u8), option::of(select(cursors)), author)
        .prop_map(|(first, after, author)| {
            let arguments: Vec<String> = [
                first.map(|first| format!("first: {first}")),
                after.map(|after| format!("after: {after}")),
                author.map(|id| format!("authorId: {id}")),
            ]
            .into_iter()
            .flatten()
            .collect();
            if arguments.is_empty() {
                String::new()
            } else {
                format!("({})", arguments.join(", "))
            }
        })
        .boxed()
}

/// A non-empty subset of `fields`, in random order.
fn scalars(fields: &'static [&'static str]) -> impl Strategy<Value = String> {
    subsequence(fields, 1..=fields.len()).prop_shuffle().prop_map(|fields| fields.join(" "))
}

/// GraphQL string literals of these values.
fn quoted<'a>(values: impl Iterator<Item = &'a str>) -> Vec<String> {
    values.map(|value| format!("{value:?}")).collect()
}
