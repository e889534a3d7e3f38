//! Databases of a test's own, dropped when the test is done with them.

use sqlx::Connection;
use uuid::Uuid;

/// The server the tests' databases live on: `DATABASE_URL`, or a local
/// PostgreSQL as the `postgres` user.
pub fn base_database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A database no other test uses, e.g. `agora_post_test_<uuid>`. Nothing is
/// created here: a service creates it on first connect (as in production).
///
/// Dropped with this value (`drop database … with (force)`) unless the
/// thread is panicking: a failed test leaves its databases for a look, and
/// CI drops leftovers before its next run. Whatever uses the database must
/// be stopped first: declare the guard after the services (and pools) that
/// use it, so they drop before it. Works in any runtime flavour, or none.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
}

impl TestDatabase {
    pub fn new(prefix: &str) -> Self {
        let name = format!("{prefix}_{}", Uuid::now_v7().simple());
        let url = agora_platform::db::with_database(&base_database_url(), &name).expect("a database URL");
        TestDatabase { name, url }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn url(&self) -> &str {
        &self.url
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept its database {}", self.name);
            return;
        }
        let statement = format!(r#"drop database if exists "{}" with (force)"#, self.name);
        // Drop cannot await, and the test's runtime (if any) cannot block on
        // async work: a thread with a runtime of its own does it.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                let mut connection = sqlx::PgConnection::connect(&base_database_url()).await?;
                sqlx::query(&statement).execute(&mut connection).await?;
                connection.close().await?;
                anyhow::Ok(())
            })
        })
        .join();
        match dropped {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cannot drop the test database {}: {error:#}", self.name),
            Err(_) => eprintln!("cannot drop the test database {}: the dropping thread panicked", self.name),
        }
    }
}
