//! The whole story through the public API: accounts, posts, a rename and
//! points, read back from the read model.

use agora_testkit::{wait_until, DEADLINE};
use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_system};

const POSTS_WITH_AUTHORS: &str =
    "{ posts(first: 10) { edges { node { title author { username displayName points postCount } } } } }";

fn titles_and_authors(response: &Value) -> Vec<(String, String)> {
    response["data"]["posts"]["edges"]
        .as_array()
        .unwrap_or_else(|| panic!("no posts in {response}"))
        .iter()
        .map(|edge| {
            let node = &edge["node"];
            (node["title"].as_str().unwrap().to_owned(), node["author"]["displayName"].as_str().unwrap().to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_full_story_is_read_back_from_the_read_model() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    let bob = gateway.register("bob").await;

    let first = gateway.create_post(&ada, "Notes on the engine").await;
    assert_eq!(first["data"]["createPost"]["author"]["displayName"], "ada", "{first}");
    gateway.create_post(&bob, "Hello").await;
    gateway.create_post(&ada, "Bernoulli numbers").await;

    let renamed = gateway
        .query(
            "mutation { renameUser(displayName: \"Countess of Lovelace\") { id displayName } }",
            json!({}),
            &[bearer(&ada.token)],
        )
        .await;
    assert_eq!(renamed["data"]["renameUser"]["displayName"], "Countess of Lovelace", "{renamed}");

    // The rename reaches every post of hers; newest first.
    let posts = gateway.query(POSTS_WITH_AUTHORS, json!({}), &[]).await;
    assert_eq!(
        titles_and_authors(&posts),
        [
            ("Bernoulli numbers".to_owned(), "Countess of Lovelace".to_owned()),
            ("Hello".to_owned(), "bob".to_owned()),
            ("Notes on the engine".to_owned(), "Countess of Lovelace".to_owned()),
        ]
    );
    assert_eq!(posts["extensions"]["strategy"], "read-model");
    assert_eq!(posts["extensions"]["upstreamRequests"], 0);

    // Points follow from the ledger's events: 10 per post.
    wait_until(DEADLINE, "ada's points reach 20", || async {
        let board = gateway.query("{ leaderboard { username points postCount } }", json!({}), &[]).await;
        board["data"]["leaderboard"]
            == json!([
                { "username": "ada", "points": 20, "postCount": 2 },
                { "username": "bob", "points": 10, "postCount": 1 },
            ])
    })
    .await;

    let me = gateway
        .query("{ me { username displayName points posts(first: 1) { nodes { title } } } }", json!({}), &[bearer(&ada.token)])
        .await;
    assert_eq!(
        me["data"]["me"],
        json!({ "username": "ada", "displayName": "Countess of Lovelace", "points": 20, "posts": { "nodes": [{ "title": "Bernoulli numbers" }] } })
    );
    let anonymous = gateway.query("{ me { id } }", json!({}), &[]).await;
    assert_eq!(anonymous["data"]["me"], Value::Null);
    let by_name = gateway.query("{ userByUsername(username: \"bob\") { id postCount } }", json!({}), &[]).await;
    assert_eq!(by_name["data"]["userByUsername"], json!({ "id": bob.id.to_string(), "postCount": 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_follow_cursors_and_stay_stable_while_posts_arrive() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    for n in 1..=5 {
        gateway.create_post(&ada, &format!("post {n}")).await;
    }
    let page = "query($after: String) { posts(first: 2, after: $after) { nodes { title } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let first = gateway.query(page, json!({}), &[]).await;
    let cursor = first["data"]["posts"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    assert_eq!(first["data"]["posts"]["nodes"], json!([{ "title": "post 5" }, { "title": "post 4" }]));
    assert_eq!(first["data"]["posts"]["pageInfo"]["hasNextPage"], true);

    gateway.create_post(&ada, "post 6").await;
    let second = gateway.query(page, json!({ "after": cursor }), &[]).await;
    assert_eq!(second["data"]["posts"]["nodes"], json!([{ "title": "post 3" }, { "title": "post 2" }]));
    assert_eq!(second["data"]["posts"]["pageInfo"]["hasPreviousPage"], true);

    let by_author = gateway
        .query(
            "query($id: ID) { posts(first: 100, authorId: $id) { nodes { title } } }",
            json!({ "id": ada.id.to_string() }),
            &[],
        )
        .await;
    assert_eq!(by_author["data"]["posts"]["nodes"].as_array().unwrap().len(), 6);
    let nobody = gateway.query("{ posts(authorId: \"not-a-uuid\") { nodes { title } } }", json!({}), &[]).await;
    assert_eq!(nobody["data"]["posts"]["nodes"], json!([]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_errors_keep_their_codes_through_the_gateway() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    gateway.register("ada").await;
    let register = "mutation($u: String!, $p: String!) { register(input: { username: $u, password: $p }) { token } }";
    let taken = gateway.query(register, json!({ "u": "ada", "p": "long enough" }), &[]).await;
    assert_eq!(agora_testkit::error_code(&taken), Some("CONFLICT"), "{taken}");
    let invalid = gateway.query(register, json!({ "u": "Ada Lovelace", "p": "long enough" }), &[]).await;
    assert_eq!(agora_testkit::error_code(&invalid), Some("BAD_USER_INPUT"), "{invalid}");
    let login = gateway
        .query("mutation { login(input: { username: \"ada\", password: \"wrong password\" }) { token } }", json!({}), &[])
        .await;
    assert_eq!(agora_testkit::error_code(&login), Some("UNAUTHENTICATED"), "{login}");
    let anonymous_post =
        gateway.query("mutation { createPost(input: { title: \"t\", body: \"b\" }) { id } }", json!({}), &[]).await;
    assert_eq!(agora_testkit::error_code(&anonymous_post), Some("UNAUTHENTICATED"), "{anonymous_post}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_that_is_down_is_upstream_unavailable_not_a_hang() {
    let system = crate::helpers::spawn_lone_gateway().await;
    let response = system
        .gateway
        .query("mutation { login(input: { username: \"ada\", password: \"whatever it is\" }) { token } }", json!({}), &[])
        .await;
    assert_eq!(agora_testkit::error_code(&response), Some("UPSTREAM_UNAVAILABLE"), "{response}");
    assert!(response["extensions"]["upstreamRequests"] == 1, "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_with_authors_cost_one_sql_statement_whatever_the_page_size() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    let bob = gateway.register("bob").await;
    for n in 0..3 {
        gateway.create_post(&ada, &format!("ada {n}")).await;
        gateway.create_post(&bob, &format!("bob {n}")).await;
    }
    for first in [1, 3, 6] {
        let query =
            format!("{{ posts(first: {first}) {{ edges {{ node {{ title author {{ displayName points postCount }} }} }} }} }}");
        let response = gateway.query(&query, json!({}), &[]).await;
        assert_eq!(response["data"]["posts"]["edges"].as_array().unwrap().len(), first);
        assert_eq!(response["extensions"]["sqlStatements"], 1, "first: {first}: {response}");
        assert_eq!(response["extensions"]["upstreamRequests"], 0);
    }
    let deep = "{ posts(first: 6) { nodes { author { posts(first: 3) { nodes { title author { displayName } } } } } } }";
    let response = gateway.query(deep, json!({}), &[]).await;
    assert!(response["errors"].is_null(), "{response}");
    assert_eq!(response["extensions"]["sqlStatements"], 1, "one statement for the whole document: {response}");
    // The resolvers need one per level.
    let resolved = gateway.query(deep, json!({}), &[("x-query-executor", "resolvers".into())]).await;
    assert_eq!(resolved["extensions"]["sqlStatements"], 2, "one statement per level: {resolved}");
}
