//! Trusted documents over real HTTP: automatic persisted queries as Apollo
//! clients send them (POST and GET, the GET answer revalidated by `ETag`),
//! and the allow-list mode in which only listed documents run, reloaded
//! when its folder changes.

use agora_testkit::{http_client, publish_event, wait_until, DEADLINE};
use reqwest::StatusCode;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::events::{post, registered};
use crate::helpers::{spawn_lone_gateway, spawn_lone_gateway_with, TestGateway};

const POSTS: &str = "query Posts($first: Int) { posts(first: $first) { edges { node { title } } } }";

fn sha256(document: &str) -> String {
    ring::digest::digest(&ring::digest::SHA256, document.as_bytes()).as_ref().iter().map(|byte| format!("{byte:02x}")).collect()
}

fn persisted(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

async fn post_json(gateway: &TestGateway, body: Value) -> (StatusCode, Value) {
    let response = http_client()
        .post(format!("http://127.0.0.1:{}/graphql", gateway.port()))
        .header("accept", "application/json")
        .json(&body)
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

async fn get(gateway: &TestGateway, hash: &str, if_none_match: Option<&str>) -> reqwest::Response {
    let mut request = http_client()
        .get(format!("http://127.0.0.1:{}/graphql", gateway.port()))
        .header("accept", "application/json")
        .query(&[("extensions", persisted(hash).to_string()), ("variables", json!({ "first": 5 }).to_string())]);
    if let Some(tag) = if_none_match {
        request = request.header("if-none-match", tag);
    }
    request.send().await.unwrap()
}

fn code(response: &Value) -> &str {
    response["errors"][0]["extensions"]["code"].as_str().unwrap_or_else(|| panic!("no error code: {response}"))
}

async fn with_posts(titles: &[&str]) -> crate::helpers::LoneGateway {
    let system = spawn_lone_gateway().await;
    seed(&system, titles).await;
    system
}

async fn seed(system: &crate::helpers::LoneGateway, titles: &[&str]) {
    let kafka = system.kafka.settings();
    let ada = Uuid::now_v7();
    publish_event(&kafka, &registered(ada, &format!("ada_{}", &ada.simple().to_string()[20..]))).await;
    for title in titles {
        publish_event(&kafka, &post(ada, title)).await;
    }
    let expected = titles.len() as i64;
    // A post shows once its author is registered too (another topic; a post
    // that comes first makes a row for its author, without a username).
    wait_until(DEADLINE, "the author and the posts projected", || async {
        sqlx::query_scalar::<_, i64>(
            "select count(*) from read_post join read_user on read_user.id = read_post.author_id
             where author_id = $1 and read_user.username is not null",
        )
        .bind(ada)
        .fetch_one(&system.gateway.read_db)
        .await
        .unwrap()
            == expected
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_persisted_query_is_registered_once_then_run_by_its_hash_over_post_and_a_revalidated_get() {
    let system = with_posts(&["one"]).await;
    let gateway = &system.gateway;
    let hash = sha256(POSTS);

    // Unknown at first: the client is told to send the query.
    let (_, unknown) = post_json(gateway, json!({ "extensions": persisted(&hash), "variables": { "first": 5 } })).await;
    assert_eq!(
        (unknown["errors"][0]["message"].as_str(), code(&unknown)),
        (Some("PersistedQueryNotFound"), "PERSISTED_QUERY_NOT_FOUND")
    );
    // A hash that is not the query's registers nothing.
    let (_, wrong) = post_json(gateway, json!({ "query": POSTS, "extensions": persisted(&sha256("{ __typename }")) })).await;
    assert_eq!(code(&wrong), "BAD_USER_INPUT", "{wrong}");
    // Sent with its hash, it runs and is registered.
    let (status, registered) =
        post_json(gateway, json!({ "query": POSTS, "variables": { "first": 5 }, "extensions": persisted(&hash) })).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(registered["data"]["posts"]["edges"][0]["node"]["title"], "one", "{registered}");
    let (_, by_hash) = post_json(gateway, json!({ "extensions": persisted(&hash), "variables": { "first": 5 } })).await;
    assert_eq!(by_hash["data"], registered["data"]);

    // Over GET, the URL names the document; the answer can be revalidated.
    let first = get(gateway, &hash, None).await;
    assert_eq!(first.status(), StatusCode::OK);
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    assert_eq!(first.headers()["cache-control"], "no-cache");
    assert!(first.headers()["vary"].to_str().unwrap().contains("authorization"));
    let body: Value = first.json().await.unwrap();
    assert_eq!(body["data"], registered["data"]);
    let again = get(gateway, &hash, Some(&etag)).await;
    assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
    assert!(again.bytes().await.unwrap().is_empty());

    // A new post changes the answer: the old copy is no longer good.
    seed(&system, &["two"]).await;
    let changed = get(gateway, &hash, Some(&etag)).await;
    assert_eq!(changed.status(), StatusCode::OK);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);

    // A persisted mutation is not run over GET.
    let mutation = "mutation { renameUser(displayName: \"x\") { id } }";
    post_json(gateway, json!({ "query": mutation, "extensions": persisted(&sha256(mutation)) })).await;
    let over_get = get(gateway, &sha256(mutation), None).await;
    assert_eq!(over_get.status(), StatusCode::METHOD_NOT_ALLOWED);

    // A malformed persistedQuery is the client's mistake, said so.
    let (_, malformed) =
        post_json(gateway, json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": hash } } })).await;
    assert_eq!(code(&malformed), "BAD_USER_INPUT");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_allow_list_only_its_documents_run_and_a_changed_list_is_reloaded() {
    let folder = std::env::temp_dir().join(format!("agora-trusted-{}", Uuid::now_v7()));
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("posts.graphql"), POSTS).unwrap();
    let listed = folder.clone();
    let system = spawn_lone_gateway_with(move |config| config.trusted_documents = Some(listed)).await;
    seed(&system, &["one"]).await;
    let gateway = &system.gateway;

    let (_, by_hash) = post_json(gateway, json!({ "extensions": persisted(&sha256(POSTS)), "variables": { "first": 1 } })).await;
    assert_eq!(by_hash["data"]["posts"]["edges"][0]["node"]["title"], "one", "{by_hash}");
    let (_, in_full) = post_json(gateway, json!({ "query": POSTS })).await;
    assert!(in_full["data"]["posts"].is_object(), "{in_full}");

    let other = "{ posts(first: 1) { edges { node { id } } } }";
    let (_, refused) = post_json(gateway, json!({ "query": other })).await;
    assert_eq!(code(&refused), "QUERY_NOT_IN_SAFELIST");
    let (_, registering) = post_json(gateway, json!({ "query": other, "extensions": persisted(&sha256(other)) })).await;
    assert_eq!(code(&registering), "QUERY_NOT_IN_SAFELIST");
    let (_, unknown) = post_json(gateway, json!({ "extensions": persisted(&sha256(other)) })).await;
    assert_eq!(code(&unknown), "PERSISTED_QUERY_NOT_IN_LIST");

    // The operator adds the document: it runs once the list is reloaded.
    std::fs::write(folder.join("ids.graphql"), other).unwrap();
    wait_until(DEADLINE, "the new document runs", || async {
        post_json(gateway, json!({ "query": other })).await.1["data"]["posts"].is_object()
    })
    .await;
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apollo_clients_persisted_query_link_registers_once_then_reads_by_hash_over_get() {
    let system = with_posts(&["one"]).await;
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/js/apq.mjs");
    let output = tokio::process::Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}/graphql", system.gateway.port()))
        .arg(POSTS)
        .arg(json!({ "first": 5 }).to_string())
        .arg("3")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE, output).await.expect("the client finished in time").expect("node runs");
    let lines: Vec<Value> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}")))
        .collect();
    assert!(output.status.success() && lines.last() == Some(&json!({ "done": true })), "{lines:#?}");
    let results: Vec<&Value> = lines.iter().filter(|line| line.get("data").is_some()).collect();
    assert_eq!(results.len(), 3);
    for result in &results {
        assert_eq!(result["data"]["posts"]["edges"][0]["node"]["title"], "one", "{result}");
    }
    let requests: Vec<&Value> = lines.iter().filter(|line| line.get("method").is_some()).collect();
    // The hash first, unknown; then the query once, which registers it; then
    // the hash alone, over GET, for every later run.
    assert_eq!((&requests[0]["method"], &requests[0]["hasQuery"]), (&json!("GET"), &json!(false)), "{requests:#?}");
    assert_eq!(requests.iter().filter(|request| request["hasQuery"] == true).count(), 1, "{requests:#?}");
    assert_eq!(requests.len(), 4, "{requests:#?}");
    for later in &requests[2..] {
        assert_eq!((&later["method"], &later["hasQuery"], &later["status"]), (&json!("GET"), &json!(false), &json!(200)));
    }
}
