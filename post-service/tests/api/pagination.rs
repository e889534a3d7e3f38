//! `posts`: newest first, a Relay cursor connection whose cursors stay valid
//! while new posts arrive.

use serde_json::{json, Value};

use crate::helpers::{error_code, spawn_system, PostServiceCalls, TestSystem};

const POSTS: &str = "query($first: Int, $after: String, $authorId: ID) {
    posts(first: $first, after: $after, authorId: $authorId) {
        edges { cursor node { id title author { id } } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
}";

/// One page: the posts' titles, whether there is a next page, and the end cursor.
/// (Pass `first` always: async-graphql reads an omitted `$first` as null
/// instead of falling back to the argument's default.)
struct Page {
    titles: Vec<String>,
    has_next_page: bool,
    end_cursor: Option<String>,
    raw: Value,
}

async fn page(system: &TestSystem, variables: Value) -> Page {
    let response = system.post_graphql(POSTS, variables, None).await;
    assert!(response["errors"].is_null(), "{response}");
    let connection = response["data"]["posts"].clone();
    let titles =
        connection["edges"].as_array().unwrap().iter().map(|edge| edge["node"]["title"].as_str().unwrap().to_owned()).collect();
    Page {
        titles,
        has_next_page: connection["pageInfo"]["hasNextPage"].as_bool().unwrap(),
        end_cursor: connection["pageInfo"]["endCursor"].as_str().map(str::to_owned),
        raw: connection,
    }
}

/// Five posts, created in this order: ada 1, bob 1, ada 2, bob 2, ada 3.
async fn five_posts_by_two_authors(system: &TestSystem) -> (String, String) {
    let (ada, ada_id) = system.register("ada").await;
    let (bob, bob_id) = system.register("bob").await;
    for (token, title) in [(&ada, "ada 1"), (&bob, "bob 1"), (&ada, "ada 2"), (&bob, "bob 2"), (&ada, "ada 3")] {
        system.create_post(token, title).await;
    }
    (ada_id.to_string(), bob_id.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_pages_newest_first_and_the_end_cursor_continues_without_overlap_or_gap() {
    let system = spawn_system().await;
    five_posts_by_two_authors(&system).await;

    let first = page(&system, json!({ "first": 2 })).await;
    assert_eq!(first.titles, ["ada 3", "bob 2"]);
    assert!(first.has_next_page);
    assert_eq!(first.raw["pageInfo"]["hasPreviousPage"], false);
    assert_eq!(first.raw["pageInfo"]["startCursor"], first.raw["edges"][0]["cursor"]);
    assert_eq!(first.raw["pageInfo"]["endCursor"], first.raw["edges"][1]["cursor"]);

    let second = page(&system, json!({ "first": 2, "after": first.end_cursor })).await;
    assert_eq!(second.titles, ["ada 2", "bob 1"]);
    assert!(second.has_next_page);
    assert_eq!(second.raw["pageInfo"]["hasPreviousPage"], true);

    let third = page(&system, json!({ "first": 2, "after": second.end_cursor })).await;
    assert_eq!(third.titles, ["ada 1"]);
    assert!(!third.has_next_page);

    let all = system.post_graphql("{ posts { nodes { title } pageInfo { hasNextPage } } }", json!({}), None).await;
    let titles: Vec<&str> =
        all["data"]["posts"]["nodes"].as_array().unwrap().iter().map(|node| node["title"].as_str().unwrap()).collect();
    assert_eq!(titles, ["ada 3", "bob 2", "ada 2", "bob 1", "ada 1"], "the default page of 20 holds them all: {all}");
    assert_eq!(all["data"]["posts"]["pageInfo"]["hasNextPage"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_by_author_id_holds_only_that_authors_posts() {
    let system = spawn_system().await;
    let (ada_id, bob_id) = five_posts_by_two_authors(&system).await;

    let ada = page(&system, json!({ "authorId": ada_id, "first": 2 })).await;
    assert_eq!(ada.titles, ["ada 3", "ada 2"]);
    assert!(ada.has_next_page);
    let rest = page(&system, json!({ "authorId": ada_id, "first": 2, "after": ada.end_cursor })).await;
    assert_eq!(rest.titles, ["ada 1"]);
    assert!(!rest.has_next_page);
    assert!(rest.raw["edges"].as_array().unwrap().iter().all(|edge| edge["node"]["author"]["id"] == ada_id.as_str()));

    let bob = page(&system, json!({ "authorId": bob_id, "first": 20 })).await;
    assert_eq!(bob.titles, ["bob 2", "bob 1"]);

    for nobody in [uuid::Uuid::now_v7().to_string(), "not-a-uuid".to_owned()] {
        let empty = page(&system, json!({ "authorId": nobody, "first": 20 })).await;
        assert!(empty.titles.is_empty(), "{nobody}");
        assert!(!empty.has_next_page);
        assert!(empty.end_cursor.is_none());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_keeps_its_place_when_a_newer_post_arrives() {
    let system = spawn_system().await;
    five_posts_by_two_authors(&system).await;
    let first = page(&system, json!({ "first": 2 })).await;
    let second_before = page(&system, json!({ "first": 2, "after": first.end_cursor })).await;

    let (carol, _) = system.register("carol").await;
    system.create_post(&carol, "carol 1").await;

    let second_after = page(&system, json!({ "first": 2, "after": first.end_cursor })).await;
    assert_eq!(second_after.raw, second_before.raw, "page 2 by the old cursor is unchanged");
    let newest = page(&system, json!({ "first": 2 })).await;
    assert_eq!(newest.titles, ["carol 1", "ada 3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_rejects_a_cursor_it_did_not_issue_and_a_page_size_out_of_range() {
    let system = spawn_system().await;
    let garbage_cursors = ["garbage", "!!!", "cG9zdDo", ""];
    for after in garbage_cursors {
        let response = system.post_graphql(POSTS, json!({ "first": 2, "after": after }), None).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "after {after:?}: {response}");
    }
    for first in [101, -1] {
        let response = system.post_graphql(POSTS, json!({ "first": first }), None).await;
        assert_eq!(error_code(&response), Some("BAD_USER_INPUT"), "first {first}: {response}");
    }
    for first in [0, 100] {
        let response = system.post_graphql(POSTS, json!({ "first": first }), None).await;
        assert!(response["errors"].is_null(), "first {first}: {response}");
    }
}
