//! Backfill: users and posts written into the services' tables by SQL,
//! with no events, reach the read model (with their points) once each
//! service's backfill has emitted their events through its outbox; a second
//! backfill emits nothing.

use agora_testkit::{wait_until, DEADLINE};
use chrono::{Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::helpers::spawn_system;

async fn outbox_rows(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("select count(*) from outbox").fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_imported_by_sql_reach_the_read_model_with_their_points_after_backfill_and_a_second_run_emits_nothing() {
    let system = spawn_system().await;
    let (auth_db, post_db) = (&system.services.auth_db, &system.services.post_db);
    // Given a user registered the normal way, and three imported by SQL (one
    // of them renamed by SQL too, at version 2), with posts for two of them.
    let regular = system.gateway.register("regular").await;
    let imported: Vec<(Uuid, String, String, i64, usize)> = vec![
        (Uuid::now_v7(), "imported_a".into(), "Imported A".into(), 1, 3),
        (Uuid::now_v7(), "imported_b".into(), "Renamed B".into(), 2, 1),
        (Uuid::now_v7(), "imported_c".into(), "Imported C".into(), 1, 0),
    ];
    let long_ago = Utc::now() - Duration::days(400);
    for (id, username, display_name, version, posts) in &imported {
        sqlx::query(
            "insert into app_user (id, username, display_name, password_hash, version, created_at, updated_at)
             values ($1, $2, $3, 'imported', $4, $5, $5)",
        )
        .bind(id)
        .bind(username)
        .bind(display_name)
        .bind(version)
        .bind(long_ago)
        .execute(auth_db)
        .await
        .unwrap();
        for n in 0..*posts {
            sqlx::query(
                "insert into post (id, author_id, title, body, version, created_at) values ($1, $2, $3, 'imported', 1, $4)",
            )
            .bind(Uuid::now_v7())
            .bind(id)
            .bind(format!("old post {n} of {username}"))
            .bind(long_ago + Duration::minutes(n as i64))
            .execute(post_db)
            .await
            .unwrap();
        }
    }
    let user = "query($id: ID!) { user(id: $id) { username displayName points postCount } }";
    let unseen = system.gateway.query(user, json!({ "id": imported[0].0 }), &[]).await;
    assert_eq!(unseen["data"]["user"], json!(null), "the read model cannot know an imported user yet: {unseen}");

    // When both services backfill.
    let auth = agora_auth_service::backfill::run(auth_db, 2).await.unwrap();
    let post = agora_post_service::backfill::run(post_db, 2).await.unwrap();

    // Then exactly the imported rows got events, and the read model shows
    // them with the points the ledger awarded for their posts.
    assert_eq!(auth.emitted, vec![("users", 3), ("points accounts", 0)]);
    assert_eq!(post.emitted, vec![("posts", 4)]);
    for (id, username, display_name, _, posts) in &imported {
        let expected = json!({ "username": username, "displayName": display_name, "points": 10 * posts, "postCount": posts });
        wait_until(DEADLINE, &format!("{username} in the read model"), || async {
            system.gateway.query(user, json!({ "id": id }), &[("cache-control", "no-cache".into())]).await["data"]["user"]
                == expected
        })
        .await;
        let total: Option<i32> = sqlx::query_scalar("select total from points_account where user_id = $1")
            .bind(id)
            .fetch_optional(auth_db)
            .await
            .unwrap();
        assert_eq!(total.unwrap_or(0), 10 * *posts as i32, "auth-service's own ledger for {username}");
    }
    let regular_view = system.gateway.query(user, json!({ "id": regular.id }), &[]).await;
    assert_eq!(regular_view["data"]["user"]["username"], "regular", "{regular_view}");

    // And a second run emits nothing: the outboxes do not grow.
    let before = (outbox_rows(auth_db).await, outbox_rows(post_db).await);
    let auth_again = agora_auth_service::backfill::run(auth_db, 2).await.unwrap();
    let post_again = agora_post_service::backfill::run(post_db, 2).await.unwrap();
    assert_eq!((auth_again.total(), post_again.total()), (0, 0), "{auth_again}; {post_again}");
    assert_eq!((outbox_rows(auth_db).await, outbox_rows(post_db).await), before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_imported_points_account_reaches_the_read_model_with_its_total() {
    let system = spawn_system().await;
    let account = system.gateway.register("veteran").await;
    // Points granted by SQL, outside the ledger: no award event exists.
    sqlx::query("insert into points_account (user_id, total, version, updated_at) values ($1, 70, 1, now())")
        .bind(account.id)
        .execute(&system.services.auth_db)
        .await
        .unwrap();

    let report = agora_auth_service::backfill::run(&system.services.auth_db, 100).await.unwrap();

    assert_eq!(report.emitted, vec![("users", 0), ("points accounts", 1)]);
    let user = "query($id: ID!) { user(id: $id) { points } }";
    wait_until(DEADLINE, "the imported total in the read model", || async {
        system.gateway.query(user, json!({ "id": account.id }), &[("cache-control", "no-cache".into())]).await["data"]["user"]
            ["points"]
            == 70
    })
    .await;
}
