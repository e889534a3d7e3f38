//! Both strategies return the same data for the same committed state, and
//! the read model's two executors (the compiled plan, the default, and
//! async-graphql's resolvers, asked for with `x-query-executor: resolvers`)
//! the same answers, errors included: a forum built through the gateway's
//! mutations, then queried by hand-written documents and by generated
//! ones, each through both executors of the read model and, when it
//! answers without errors, through composition.

mod document;
mod faults;
mod generator;

use std::collections::BTreeMap;

use agora_testkit::{wait_until, DEADLINE};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use self::document::Document;

use crate::helpers::{bearer, composition, spawn_system, spawn_system_with, strategy, Account, TestGateway, TestSystem};

/// The forum both strategies are asked about.
struct Forum {
    system: TestSystem,
    accounts: Vec<Account>,
    known: generator::Known,
}

const NAMES: [&str; 4] = ["ada", "bob", "cyd", "dee"];

/// Four users (dee without posts), nine posts, two renames, and the points
/// the ledger awarded for the posts, all reflected in the read model.
async fn forum() -> Forum {
    // Generated documents may cost, nest, alias and select more than a
    // public client is allowed: the answers are compared here, not the
    // limits (see limits.rs).
    let system = spawn_system_with(|config| {
        config.max_query_complexity = 1_000_000;
        config.max_query_depth = 64;
        config.max_query_aliases = 10_000;
        config.max_query_fields = 100_000;
    })
    .await;
    let gateway = &system.gateway;
    let mut accounts = Vec::new();
    for name in NAMES {
        accounts.push(gateway.register(name).await);
    }
    for (n, author) in [0, 1, 2, 0, 2, 1, 0, 2, 0].into_iter().enumerate() {
        let created = gateway.create_post(&accounts[author], &format!("{} #{n}", NAMES[author])).await;
        assert!(created["errors"].is_null(), "{created}");
    }
    for (account, name) in [(&accounts[0], "Ada Lovelace"), (&accounts[2], "Cy Young")] {
        let renamed = gateway
            .query(
                "mutation($name: String!) { renameUser(displayName: $name) { id } }",
                json!({ "name": name }),
                &[bearer(&account.token)],
            )
            .await;
        assert!(renamed["errors"].is_null(), "{renamed}");
    }

    let expected = json!([
        { "username": "ada", "displayName": "Ada Lovelace", "points": 40, "postCount": 4 },
        { "username": "cyd", "displayName": "Cy Young", "points": 30, "postCount": 3 },
        { "username": "bob", "displayName": "bob", "points": 20, "postCount": 2 },
        { "username": "dee", "displayName": "dee", "points": 0, "postCount": 0 },
    ]);
    for name in ["read-model", "composition"] {
        wait_until(DEADLINE, &format!("the {name} leaderboard shows every post's points"), || async {
            let board =
                gateway.query("{ leaderboard { username displayName points postCount } }", json!({}), &[strategy(name)]).await;
            board["data"]["leaderboard"] == expected
        })
        .await;
    }

    let all = gateway.query("{ posts(first: 100) { edges { cursor node { id } } } }", json!({}), &[]).await;
    let edges = all["data"]["posts"]["edges"].as_array().unwrap_or_else(|| panic!("no posts in {all}"));
    assert_eq!(edges.len(), 9, "{all}");
    let known = generator::Known {
        user_ids: accounts.iter().map(|account| account.id.to_string()).collect(),
        usernames: NAMES.iter().map(|name| name.to_string()).collect(),
        post_ids: edges.iter().map(|edge| edge["node"]["id"].as_str().unwrap().to_owned()).collect(),
        cursors: edges.iter().map(|edge| edge["cursor"].as_str().unwrap().to_owned()).collect(),
    };
    Forum { system, accounts, known }
}

impl Forum {
    async fn assert_same(&self, query: &str, variables: Value) {
        let document = Document { query: query.to_owned(), variables, operation_name: None };
        assert_same(&self.system.gateway, &self.accounts[0].token, &document).await;
    }
}

/// The request header that makes the read model answer with async-graphql's
/// resolvers instead of the compiled plan.
fn resolvers() -> (&'static str, String) {
    ("x-query-executor", "resolvers".to_owned())
}

/// A fresh answer, never the response cache's (which names no executor).
fn no_cache() -> (&'static str, String) {
    ("cache-control", "no-cache".to_owned())
}

/// What each executor said it was (`extensions.executor`) for one document.
struct Executors {
    default: Value,
    forced: Value,
}

/// Runs `document` through the read model with its default executor and
/// with the resolvers, and asserts that both answer the same: the same
/// status, the same bytes of `data` (so in the same order, not only equal
/// values) and the same errors, each the same bytes. The answer is the
/// default executor's.
async fn assert_same_executors(gateway: &TestGateway, token: &str, document: &Document) -> (Answer, Executors) {
    let default = raw_query(gateway, document, &[strategy("read-model"), no_cache(), bearer(token)]).await;
    let forced = raw_query(gateway, document, &[strategy("read-model"), resolvers(), no_cache(), bearer(token)]).await;
    assert_eq!(
        (default.status, &default.data, &default.errors),
        (forced.status, &forced.data, &forced.errors),
        "the executors differ on {document}:\ndefault:   {}\nresolvers: {}",
        default.body,
        forced.body,
    );
    let executors = Executors { default: default.extensions["executor"].clone(), forced: forced.extensions["executor"].clone() };
    (default, executors)
}

/// Runs `document` through both executors of the read model and through
/// composition with `token` (for `me`), and asserts that all answer the
/// same data without errors: the same bytes, so in the same order (the
/// selection set's, as the GraphQL spec orders a response), not only equal
/// values.
async fn assert_same(gateway: &TestGateway, token: &str, document: &Document) -> Executors {
    let (read, executors) = assert_same_executors(gateway, token, document).await;
    let composed = raw_query(gateway, document, &[composition(), bearer(token)]).await;
    assert!(read.errors.is_none(), "the read model failed {document}: {}", read.body);
    assert!(composed.errors.is_none(), "composition failed {document}: {}", composed.body);
    assert_eq!(
        read.data, composed.data,
        "the strategies differ on {document}:\nread model:  {:?}\ncomposition: {:?}",
        read.data, composed.data
    );
    assert_eq!(composed.extensions["strategy"], "composition");
    assert_eq!(read.extensions["upstreamRequests"], 0);
    executors
}

/// An answer as the gateway wrote it.
struct Answer {
    status: u16,
    /// `data` as serialized, if there.
    data: Option<String>,
    /// Each error as serialized, sorted: async-graphql resolves fields
    /// concurrently and lists errors as they happen, so two runs of one
    /// executor may list the same errors in another order.
    errors: Option<Vec<String>>,
    extensions: Value,
    body: String,
}

async fn raw_query(gateway: &TestGateway, document: &Document, headers: &[(&str, String)]) -> Answer {
    let mut request = json!({ "query": document.query, "variables": document.variables });
    if let Some(name) = &document.operation_name {
        request["operationName"] = json!(name);
    }
    let mut request = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{}/graphql", gateway.port()))
        // The media type whose status tells a request error (400) from a field error (200).
        .header("accept", "application/graphql-response+json")
        .json(&request);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.expect("the gateway answers");
    let status = response.status().as_u16();
    let body = response.text().await.expect("a body");
    // By key, so that `"data": null` stays apart from no `data` at all.
    let raw: BTreeMap<&str, &RawValue> =
        serde_json::from_str(&body).unwrap_or_else(|error| panic!("not a JSON answer ({error}): {body}"));
    let data = raw.get("data").map(|data| data.get().to_owned());
    let errors = raw.get("errors").map(|errors| {
        let errors: Vec<&RawValue> = serde_json::from_str(errors.get()).expect("a list of errors");
        let mut errors: Vec<String> = errors.into_iter().map(|error| error.get().to_owned()).collect();
        errors.sort();
        errors
    });
    let extensions = raw.get("extensions").map(|value| serde_json::from_str(value.get()).expect("JSON")).unwrap_or_default();
    Answer { status, data, errors, extensions, body }
}

const FULL_USER: &str = "fragment FullUser on User { __typename id username displayName points postCount createdAt }";
const FULL_PAGE: &str = "fragment FullPage on PostConnection {
    edges { cursor node { id title body createdAt author { ...FullUser } } }
    nodes { id }
    pageInfo { hasPreviousPage hasNextPage startCursor endCursor }
}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hand_written_queries_get_the_same_data_from_both_strategies() {
    let forum = forum().await;
    let known = &forum.known;
    let (ada, dee) = (&known.user_ids[0], &known.user_ids[3]);
    let unknown = "0190a000-0000-7000-8000-000000000000";
    let cases: Vec<(String, Value)> = vec![
        // Posts with their authors, every field.
        (format!("{{ posts {{ ...FullPage }} }} {FULL_PAGE} {FULL_USER}"), json!({})),
        // Pages that follow a cursor taken from a first page, and the page past the end.
        (format!("query($after: String) {{ posts(first: 3, after: $after) {{ ...FullPage }} }} {FULL_PAGE} {FULL_USER}"), json!({ "after": known.cursors[2] })),
        (format!("query($after: String) {{ posts(first: 4, after: $after) {{ ...FullPage }} }} {FULL_PAGE} {FULL_USER}"), json!({ "after": known.cursors[5] })),
        (format!("query($after: String) {{ posts(first: 2, after: $after) {{ ...FullPage }} }} {FULL_PAGE} {FULL_USER}"), json!({ "after": known.cursors[8] })),
        (format!("{{ posts(first: 0) {{ ...FullPage }} all: posts(first: 100) {{ ...FullPage }} }} {FULL_PAGE} {FULL_USER}"), json!({})),
        // Filtered by author: one with posts, one without, one unknown, one not an id.
        (
            format!(
                "query($ada: ID, $dee: ID, $unknown: ID) {{
                    ada: posts(first: 2, authorId: $ada) {{ ...FullPage }}
                    adaLater: posts(first: 2, authorId: $ada, after: \"{}\") {{ ...FullPage }}
                    dee: posts(authorId: $dee) {{ ...FullPage }}
                    unknown: posts(authorId: $unknown) {{ ...FullPage }}
                    garbage: posts(authorId: \"not-an-id\") {{ ...FullPage }}
                }} {FULL_PAGE} {FULL_USER}",
                known.cursors[0]
            ),
            json!({ "ada": ada, "dee": dee, "unknown": unknown }),
        ),
        // Four levels deep, with inline fragments and aliases.
        (
            "{ posts(first: 5) { edges { cursor node { ... on Post { title writer: author { username posts(first: 2) {
                pageInfo { hasNextPage endCursor } nodes { title author { displayName postCount } } } } } } } } }"
                .to_owned(),
            json!({}),
        ),
        // A user's later pages, after a cursor of their own and of someone else's post.
        (
            format!(
                "query($id: ID!, $mine: String, $theirs: String) {{ user(id: $id) {{
                    first: posts(first: 2) {{ ...FullPage }} later: posts(first: 2, after: $mine) {{ ...FullPage }}
                    afterTheirs: posts(first: 10, after: $theirs) {{ ...FullPage }} none: posts(first: 0) {{ ...FullPage }} all: posts(first: 100) {{ ...FullPage }}
                }} }} {FULL_PAGE} {FULL_USER}"
            ),
            json!({ "id": ada, "mine": known.cursors[0], "theirs": known.cursors[1] }),
        ),
        // me with a token, users by id and by username, known or not.
        (
            format!(
                "query($ada: ID!, $dee: ID!, $unknown: ID!) {{
                    me {{ ...FullUser posts(first: 1) {{ nodes {{ title }} }} }}
                    ada: user(id: $ada) {{ ...FullUser }} dee: user(id: $dee) {{ ...FullUser posts {{ ...FullPage }} }}
                    unknown: user(id: $unknown) {{ id }} garbage: user(id: \"nope\") {{ id }}
                    bob: userByUsername(username: \"bob\") {{ ...FullUser }} nobody: userByUsername(username: \"nobody\") {{ id }}
                }} {FULL_PAGE} {FULL_USER}"
            ),
            json!({ "ada": ada, "dee": dee, "unknown": unknown }),
        ),
        // The leaderboard, whole, cut short, empty.
        (format!("{{ leaderboard {{ ...FullUser }} top: leaderboard(first: 2) {{ username points }} none: leaderboard(first: 0) {{ id }} }} {FULL_USER}"), json!({})),
        // Posts by id, known or not.
        (
            format!(
                "query($first: ID!, $last: ID!) {{ first: post(id: $first) {{ id title body createdAt author {{ ...FullUser }} }}
                    last: post(id: $last) {{ title author {{ posts(first: 1) {{ nodes {{ title }} }} }} }}
                    unknown: post(id: \"{unknown}\") {{ id }} garbage: post(id: \"nope\") {{ id }} }} {FULL_USER}"
            ),
            json!({ "first": known.post_ids[0], "last": known.post_ids[8] }),
        ),
    ];
    for (query, variables) in cases {
        forum.assert_same(&query, variables).await;
    }

    // The generated documents' grammar, one construct at a time.
    let several = "query Users($id: ID!) { user(id: $id) { username } }
        query Posts($first: Int = 2, $titles: Boolean! = true) { posts(first: $first) { nodes { id title @include(if: $titles) } } }";
    let documents = [
        // One response key twice, the selections merged.
        ("{ a: posts(first: 2) { nodes { id } } a: posts(first: 2) { nodes { title } } }", json!({}), None),
        // One field twice under two aliases, with their own arguments.
        ("{ a: posts(first: 1) { nodes { id } } b: posts(first: 3) { nodes { id } } }", json!({}), None),
        // Defaults in the operation, taken or overridden.
        ("query($first: Int = 2, $skip: Boolean = true) { posts(first: $first) { nodes { id title @skip(if: $skip) } } }", json!({}), None),
        ("query($first: Int = 2, $skip: Boolean = true) { posts(first: $first) { nodes { id title @skip(if: $skip) } } }", json!({ "first": 4, "skip": false }), None),
        // Fragments spread twice and nested, an inline fragment without a type condition.
        (
            "{ __typename ...Root ...Root } fragment Root on Query { posts(first: 2) { ...Page } } fragment Page on PostConnection { __typename ... { pageInfo { __typename hasNextPage } } edges { __typename cursor } }",
            json!({}),
            None,
        ),
        // operationName picks one of several operations.
        (several, json!({ "id": ada }), Some("Users")),
        (several, json!({ "titles": false }), Some("Posts")),
    ];
    for (query, variables, operation_name) in documents {
        let document = Document { query: query.to_owned(), variables, operation_name: operation_name.map(str::to_owned) };
        assert_same(&forum.system.gateway, &forum.accounts[0].token, &document).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn composition_answers_fields_in_the_order_the_selection_asks() {
    let forum = forum().await;
    forum
        .assert_same(
            "{ posts(first: 2) { pageInfo { hasNextPage } edges { node { title author { postCount createdAt username } } } } }",
            json!({}),
        )
        .await;
    forum.assert_same("{ leaderboard(first: 2) { postCount createdAt points username } }", json!({})).await;
}

/// Enough to cover the grammar, few enough to run in well under a minute.
const GENERATED_DOCUMENTS: usize = 200;
const GENERATED_ERROR_DOCUMENTS: usize = 80;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_documents_get_the_same_answers_from_both_executors_and_strategies() {
    let forum = forum().await;
    let gateway = &forum.system.gateway;
    let mut said = Vec::new();
    for document in generator::documents(&forum.known, GENERATED_DOCUMENTS) {
        said.push(assert_same(gateway, &forum.accounts[0].token, &document).await);
    }
    // Last, so that the answers are compared even where no executor names itself.
    let forced = said.iter().filter(|executors| executors.forced != "resolvers").count();
    assert_eq!(
        forced,
        0,
        "{forced} of {} answers forced to the resolvers did not say so: {:?}",
        said.len(),
        named(&said, |executors| &executors.forced)
    );
    let compiled = said.iter().filter(|executors| executors.default == "compiled").count();
    // Every generated document is in the grammar the compiler covers.
    assert!(
        compiled == said.len(),
        "only {compiled} of {} generated documents were answered by the compiled executor; the executors named: {:?}",
        said.len(),
        named(&said, |executors| &executors.default)
    );
}

/// How many answers named each executor (`null`: none).
fn named(said: &[Executors], executor: impl Fn(&Executors) -> &Value) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for executors in said {
        *counts.entry(executor(executors).to_string()).or_default() += 1;
    }
    counts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_error_documents_get_the_same_errors_from_both_executors() {
    let forum = forum().await;
    for document in generator::error_documents(&forum.known, GENERATED_ERROR_DOCUMENTS) {
        let (answer, _) = assert_same_executors(&forum.system.gateway, &forum.accounts[0].token, &document).await;
        assert!(answer.errors.is_some(), "no errors for {document}: {}", answer.body);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_the_largest_size_tells_alike_whether_more_follow() {
    let system = spawn_system().await;
    let gateway = &system.gateway;
    let ada = gateway.register("ada").await;
    // Straight to post-service: 101 posts, one more than the largest page.
    for n in 0..101 {
        let created = agora_testkit::graphql(
            system.services.post.port,
            "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }",
            json!({ "input": { "title": format!("post {n}"), "body": "b" } }),
            Some(&ada.token),
        )
        .await;
        assert!(created["errors"].is_null(), "{created}");
    }
    wait_until(DEADLINE, "the read model has all 101 posts", || async {
        let user = gateway.query("query($id: ID!) { user(id: $id) { postCount } }", json!({ "id": ada.id }), &[]).await;
        user["data"]["user"]["postCount"] == 101
    })
    .await;
    let page =
        "fragment Page on PostConnection { nodes { title } pageInfo { hasPreviousPage hasNextPage startCursor endCursor } }";
    let query = format!("{{ posts(first: 100) {{ ...Page }} me {{ posts(first: 100) {{ ...Page }} }} }} {page}");
    let document = Document { query: query.clone(), variables: json!({}), operation_name: None };
    assert_same(gateway, &ada.token, &document).await;
    let first = gateway.query(&query, json!({}), &[composition(), bearer(&ada.token)]).await;
    assert_eq!(first["data"]["posts"]["pageInfo"]["hasNextPage"], true, "{first}");
    let after = &first["data"]["posts"]["pageInfo"]["endCursor"];
    let query = format!("query($after: String) {{ posts(first: 100, after: $after) {{ ...Page }} me {{ posts(first: 100, after: $after) {{ ...Page }} }} }} {page}");
    let document = Document { query, variables: json!({ "after": after }), operation_name: None };
    assert_same(gateway, &ada.token, &document).await;
}
