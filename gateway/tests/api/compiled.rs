//! The compiled executor of the read model: it answers the queries it
//! covers in one SQL statement, from the first request on, with the bytes
//! the resolvers give; it leaves to the resolvers what it does not cover
//! and what they refuse (with their errors); it keeps read-your-writes, on
//! another replica too, and the response cache's exactness.

use agora_testkit::{wait_until, DEADLINE};
use serde_json::{json, Value};

use crate::helpers::{bearer, spawn_gateway, spawn_lone_gateway, spawn_system, wait_until_sharing, Account, TestGateway};

const RESOLVERS: (&str, &str) = ("x-query-executor", "resolvers");
const FRESH: (&str, &str) = ("cache-control", "no-cache");

/// The benchmark's two queries: a page of posts with their authors, and
/// posts → author → posts → author.
const POSTS_WITH_AUTHORS: &str =
    "{ posts(first: 20) { edges { cursor node { id title body createdAt author { id username displayName points postCount } } } pageInfo { hasNextPage endCursor } } }";
const DEEP: &str = "{ posts(first: 10) { nodes { title author { username posts(first: 3) { nodes { title author { displayName points } } pageInfo { hasNextPage } } } } } }";

/// The answer's body and its `data` and `errors` as the gateway wrote them.
async fn raw(gateway: &TestGateway, query: &str, variables: Value, headers: &[(&str, &str)]) -> (Value, String) {
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        data: Option<&'a serde_json::value::RawValue>,
        #[serde(borrow)]
        errors: Option<&'a serde_json::value::RawValue>,
    }
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/graphql", gateway.port()))
        .header("accept", "application/json")
        .json(&json!({ "query": query, "variables": variables }));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let body = request.send().await.expect("the gateway answers").text().await.expect("a body");
    let parts: Raw = serde_json::from_str(&body).unwrap_or_else(|error| panic!("not a JSON answer ({error}): {body}"));
    let text = |part: Option<&serde_json::value::RawValue>| part.map_or("-".to_owned(), |part| part.get().to_owned());
    let written = format!("data: {}\nerrors: {}", text(parts.data), text(parts.errors));
    (serde_json::from_str(&body).expect("a JSON answer"), written)
}

/// Three users, six posts, a rename; all in the read model.
async fn forum(gateway: &TestGateway) -> Vec<Account> {
    let mut accounts = Vec::new();
    for name in ["ada", "bob", "cyd"] {
        accounts.push(gateway.register(name).await);
    }
    for (n, author) in [0, 1, 0, 2, 0, 1].into_iter().enumerate() {
        let created = gateway.create_post(&accounts[author], &format!("post \"{n}\" \\ ünïcode")).await;
        assert!(created["errors"].is_null(), "{created}");
    }
    let renamed = gateway
        .query(
            "mutation($name: String!) { renameUser(displayName: $name) { id } }",
            json!({ "name": "Ada \"L\" ✓ \\ </script>" }),
            &[bearer(&accounts[0].token)],
        )
        .await;
    assert!(renamed["errors"].is_null(), "{renamed}");
    wait_until(DEADLINE, "the points of every post", || async {
        let board = gateway.query("{ leaderboard { points } }", json!({}), &[]).await;
        board["data"]["leaderboard"] == json!([{ "points": 30 }, { "points": 20 }, { "points": 10 }])
    })
    .await;
    accounts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_the_deep_query_are_one_statement_each_with_the_resolvers_bytes_from_the_first_request() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let accounts = forum(gateway).await;
    let me = format!("Bearer {}", accounts[0].token);
    let cases = [
        (POSTS_WITH_AUTHORS, json!({}), vec![]),
        (DEEP, json!({}), vec![]),
        // A key skipped where it is first asked comes where it is next asked.
        (
            "query($s: Boolean!) { a: leaderboard(first: 1) @skip(if: $s) { id } b: __typename a: leaderboard(first: 1) { username } }",
            json!({ "s": true }),
            vec![],
        ),
        (
            "query Mine($after: String, $big: Boolean = false) { me { ...U posts(first: 2, after: $after) { nodes { title } } } a: leaderboard(first: 2) { ...U } a: leaderboard(first: 2) { id @skip(if: $big) } __typename } fragment U on User { __typename username createdAt }",
            json!({ "after": null }),
            vec![("authorization", me.as_str())],
        ),
    ];
    for (query, variables, headers) in cases {
        let fresh = |extra: Vec<(&'static str, &'static str)>| {
            let mut all: Vec<(&str, &str)> = headers.clone();
            all.push(FRESH);
            all.extend(extra);
            all
        };
        let (first, first_bytes) = raw(gateway, query, variables.clone(), &fresh(vec![])).await;
        let (again, again_bytes) = raw(gateway, query, variables.clone(), &fresh(vec![])).await;
        let (resolved, resolved_bytes) = raw(gateway, query, variables.clone(), &fresh(vec![RESOLVERS])).await;
        assert!(first["errors"].is_null(), "{first}");
        for (answer, executor) in [(&first, "compiled"), (&again, "compiled"), (&resolved, "resolvers")] {
            assert_eq!(answer["extensions"]["executor"], executor, "{query}: {answer}");
        }
        assert_eq!(first["extensions"]["sqlStatements"], 1, "{query}: {first}");
        assert_eq!(again["extensions"]["sqlStatements"], 1, "{query}: {again}");
        assert_eq!(first_bytes, resolved_bytes, "{query}");
        assert_eq!(again_bytes, resolved_bytes, "{query}");
    }
    // The deep query needs a statement per level from the resolvers.
    let (resolved, _) = raw(gateway, DEEP, json!({}), &[FRESH, RESOLVERS]).await;
    assert_eq!(resolved["extensions"]["sqlStatements"], 2, "{resolved}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_the_plan_does_not_answer_the_resolvers_answer_with_their_errors() {
    let gateway = spawn_lone_gateway().await;
    let gateway = &gateway.gateway;
    let cases = [
        // Values the API refuses, as literals and as variables.
        ("{ posts(first: 500) { nodes { id } } }", json!({})),
        ("query($n: Int) { ok: leaderboard(first: 1) { id } bad: leaderboard(first: $n) { id } }", json!({ "n": 101 })),
        ("query($after: String) { posts(after: $after) { nodes { id } } }", json!({ "after": "not a cursor" })),
        ("query($n: Int!) { leaderboard(first: $n) { id } }", json!({})),
        ("query($n: Int) { leaderboard(first: $n) { id } }", json!({ "n": "ten" })),
        // Variables the schema refuses, even where they are skipped, on every request.
        ("query($s: Boolean!) { __typename leaderboard @skip(if: $s) { id } }", json!({ "s": "yes" })),
        ("query($s: Boolean!) { __typename leaderboard @skip(if: $s) { id } }", json!({ "s": null })),
        (
            "query($n: Int, $s: Boolean!) { __typename posts(first: $n) @skip(if: $s) { nodes { id } } }",
            json!({ "n": "x", "s": true }),
        ),
        // One response key for fields with different arguments, through a
        // fragment (which validation lets through): the resolvers answer each.
        ("{ posts(first: 1) { nodes { id } } ...Big } fragment Big on Query { posts(first: 101) { nodes { id } } }", json!({})),
        ("{ x: me { id } ... on Query { x: leaderboard { id } } }", json!({})),
        // A selection whose fields are all skipped: async-graphql answers null.
        ("{ posts(first: 1) { nodes @skip(if: true) { id } } }", json!({})),
        // What the compiler does not cover.
        ("{ __schema { queryType { name } } }", json!({})),
        ("{ __type(name: \"User\") { name } posts(first: 1) { nodes { id } } }", json!({})),
    ];
    for (query, variables) in cases {
        for _ in 0..2 {
            let (answer, bytes) = raw(gateway, query, variables.clone(), &[FRESH]).await;
            let (resolved, resolved_bytes) = raw(gateway, query, variables.clone(), &[FRESH, RESOLVERS]).await;
            assert_eq!(answer["extensions"]["executor"], "resolvers", "{query}: {answer}");
            assert_eq!(bytes, resolved_bytes, "{query}: {answer} {resolved}");
        }
    }
    // And documents that do not validate never reach either.
    let (invalid, _) = raw(gateway, "{ posts { nodes { nope } } }", json!({}), &[]).await;
    assert_eq!(invalid["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{invalid}");
    let (unknown, _) = raw(gateway, "{ __typename }", json!({}), &[("x-query-executor", "jit")]).await;
    assert_eq!(unknown["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{unknown}");
    let (typename, _) = raw(gateway, "{ __typename }", json!({}), &[FRESH]).await;
    assert_eq!((&typename["data"], &typename["extensions"]["executor"]), (&json!({ "__typename": "Query" }), &json!("compiled")));
    assert_eq!(typename["extensions"]["sqlStatements"], 0, "{typename}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_is_read_at_once_through_the_plan_on_another_replica_with_its_token() {
    let system = spawn_system().await;
    let second = spawn_gateway(&system.services, system.read_model.url(), |_| {}).await;
    let (here, there) = (&system.gateway, &second);
    wait_until_sharing(&[here, there]).await;
    let ada = here.register("ada").await;
    let query = "query($id: ID!) { user(id: $id) { displayName posts(first: 1) { nodes { title } } } }";
    let variables = json!({ "id": ada.id });
    // The plan is compiled and the answer cached on the other replica.
    wait_until(DEADLINE, "ada on the other replica", || async {
        there.query(query, variables.clone(), &[]).await["data"]["user"]["displayName"] == "ada"
    })
    .await;
    let cached = there.query(query, variables.clone(), &[]).await;
    assert_eq!(cached["extensions"]["cache"], "hit", "{cached}");

    let created = here.create_post(&ada, "fresh").await;
    let token = created["extensions"]["consistencyToken"].as_str().unwrap_or_else(|| panic!("no token in {created}")).to_owned();
    let read = there.query(query, variables.clone(), &[("x-consistency-token", token)]).await;
    assert_eq!(read["data"]["user"]["posts"]["nodes"][0]["title"], "fresh", "{read}");
    assert_eq!(read["extensions"]["executor"], "compiled", "{read}");
    // Without the token, the cached answer goes once the other replica heard of the post.
    wait_until(DEADLINE, "the other replica drops the answer that read ada's posts", || async {
        there.query(query, variables.clone(), &[]).await["data"]["user"]["posts"]["nodes"][0]["title"] == "fresh"
    })
    .await;
    let me = there.query("{ me { displayName } }", json!({}), &[bearer(&ada.token)]).await;
    assert_eq!((&me["data"]["me"]["displayName"], &me["extensions"]["executor"]), (&json!("ada"), &json!("compiled")), "{me}");
}
