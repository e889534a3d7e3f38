//! The SQL ceiling: the read model's `posts` statement alone through
//! `pgbench -M prepared`, at the same concurrencies, no HTTP, no GraphQL.

use super::measure::{print_point, Query, Series, Settings};
use crate::load;
use crate::system::{self, System};

/// gateway/src/sources/read_model/queries.rs `posts` with no author, no cursor and
/// a limit of 21 (a page of 20 and one more to tell whether there is a next
/// page), as the gateway sends it for `posts(first: 20)`.
pub const CEILING_SQL: &str = "select p.id, p.author_id, p.title, p.body, p.created_at,
        u.username as author_username, u.display_name as author_display_name, u.points as author_points,
        u.post_count as author_post_count, u.created_at as author_created_at
     from read_post p join read_user u on u.id = p.author_id and u.username is not null
     where (null::uuid is null or p.author_id = null::uuid)
       and (null::timestamptz is null or (p.created_at, p.id) < (null::timestamptz, null::uuid))
     order by p.created_at desc, p.id desc limit 21;
";

/// The ceiling at every level; `notes` says where PostgreSQL's connection
/// limit held pgbench to fewer clients.
pub async fn run(system: &System, settings: &Settings, notes: &mut Vec<String>) -> anyhow::Result<Series> {
    let script = system.work_dir.join("posts-with-authors.sql");
    std::fs::write(&script, CEILING_SQL)?;
    let database = system::database_url(&system.postgres, system::READ_DB)?;
    let log_dir = system.work_dir.join("pgbench");
    let mut points = Vec::new();
    for (i, &concurrency) in settings.levels.iter().enumerate() {
        let warmup = if i == 0 { settings.warmup } else { (settings.warmup / 2.0).max(1.0) };
        // PostgreSQL's connection limit is shared with the services' pools.
        let free = free_connections(&system.postgres).await.unwrap_or(concurrency as i64);
        let clients = concurrency.min((free - 10).max(1) as usize);
        if clients < concurrency {
            notes.push(format!(
                "SQL ceiling at c={concurrency}: pgbench ran {clients} clients (PostgreSQL's max_connections leaves no more beside the services' pools; the gateway's own pool has 20)."
            ));
        }
        load::pgbench(&database, &script, &log_dir, clients, warmup).await?;
        let mut point = load::pgbench(&database, &script, &log_dir, clients, settings.seconds).await?;
        point.concurrency = concurrency;
        print_point("SQL ceiling", Query::PostsWithAuthors.key(), &point);
        points.push(point);
    }
    Ok(Series {
        key: "sql-ceiling".into(),
        label: "SQL ceiling (pgbench)".into(),
        query: Query::PostsWithAuthors,
        upstream_requests_per_request: Some(0.0),
        sql_statements_per_request: Some(1.0),
        same_data_as_read_model: None,
        executor: None,
        points,
    })
}

async fn free_connections(postgres: &str) -> anyhow::Result<i64> {
    let pool = system::pool(postgres, "postgres", 1).await?;
    let free: i64 =
        sqlx::query_scalar("select current_setting('max_connections')::bigint - (select count(*) from pg_stat_activity)")
            .fetch_one(&pool)
            .await?;
    pool.close().await;
    Ok(free)
}
