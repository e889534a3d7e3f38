//! post-service as a Federation v2 subgraph: what a federation gateway asks
//! of it (`_entities`, `_service { sdl }`).

use serde_json::{json, Value};
use uuid::Uuid;

use crate::helpers::{spawn_system, PostServiceCalls};

const USER_ENTITIES: &str = "query($representations: [_Any!]!) {
    _entities(representations: $representations) {
        __typename
        ... on User { id postCount posts(first: 2) { nodes { title } pageInfo { hasNextPage } } }
        ... on Post { id title author { id } }
    }
}";

fn titles(entity: &Value) -> Vec<&str> {
    entity["posts"]["nodes"].as_array().unwrap().iter().map(|node| node["title"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_resolve_each_users_post_count_and_newest_posts() {
    let system = spawn_system().await;
    let (ada, ada_id) = system.register("ada").await;
    let (bob, bob_id) = system.register("bob").await;
    for (token, title) in [(&ada, "ada 1"), (&bob, "bob 1"), (&ada, "ada 2"), (&ada, "ada 3")] {
        system.create_post(token, title).await;
    }
    let nobody = Uuid::now_v7();

    let representations = json!([
        { "__typename": "User", "id": ada_id },
        { "__typename": "User", "id": nobody },
        { "__typename": "User", "id": bob_id },
    ]);
    let response = system.post_graphql(USER_ENTITIES, json!({ "representations": representations }), None).await;

    assert!(response["errors"].is_null(), "{response}");
    let entities = response["data"]["_entities"].as_array().unwrap();
    assert_eq!(entities.len(), 3, "one entity per representation, in order: {response}");

    assert_eq!(entities[0]["id"], ada_id.to_string());
    assert_eq!(entities[0]["postCount"], 3);
    assert_eq!(titles(&entities[0]), ["ada 3", "ada 2"]);
    assert_eq!(entities[0]["posts"]["pageInfo"]["hasNextPage"], true);

    assert_eq!(entities[1]["id"], nobody.to_string());
    assert_eq!(entities[1]["postCount"], 0, "a user without posts counts zero");
    assert!(titles(&entities[1]).is_empty());
    assert_eq!(entities[1]["posts"]["pageInfo"]["hasNextPage"], false);

    assert_eq!(entities[2]["id"], bob_id.to_string());
    assert_eq!(entities[2]["postCount"], 1);
    assert_eq!(titles(&entities[2]), ["bob 1"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entities_resolve_posts_by_id_and_null_for_an_unknown_one() {
    let system = spawn_system().await;
    let (ada, ada_id) = system.register("ada").await;
    let post_id = system.create_post(&ada, "Notes").await;

    let representations = json!([
        { "__typename": "Post", "id": post_id },
        { "__typename": "Post", "id": Uuid::now_v7() },
    ]);
    let response = system.post_graphql(USER_ENTITIES, json!({ "representations": representations }), None).await;

    assert!(response["errors"].is_null(), "{response}");
    let entities = &response["data"]["_entities"];
    assert_eq!(entities[0], json!({ "__typename": "Post", "id": post_id, "title": "Notes", "author": { "id": ada_id } }));
    assert!(entities[1].is_null(), "{response}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_sdl_declares_post_and_user_entities_and_post_count() {
    let system = spawn_system().await;

    let response = system.post_graphql("{ _service { sdl } }", json!({}), None).await;

    let sdl = response["data"]["_service"]["sdl"].as_str().unwrap_or_else(|| panic!("no SDL: {response}"));
    let declaration = |type_name: &str| {
        sdl.lines()
            .find(|line| line.starts_with(&format!("type {type_name} ")))
            .unwrap_or_else(|| panic!("no type {type_name} in\n{sdl}"))
            .to_owned()
    };
    assert!(declaration("Post").contains("@key(fields: \"id\")"), "{sdl}");
    assert!(declaration("User").contains("@key(fields: \"id\")"), "{sdl}");
    assert!(sdl.contains("postCount: Int!"), "{sdl}");
    assert!(sdl.contains("createPost("), "{sdl}");
}
