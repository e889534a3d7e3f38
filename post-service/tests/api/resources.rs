//! What a test system owns and gives back when it ends: services running
//! in tasks, signing key files and databases of its own.

use std::future::Future;
use std::path::PathBuf;

use sqlx::Connection;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::helpers::DEADLINE;

/// A service running in a task of the test's runtime; told to stop on drop.
pub struct RunningService {
    pub port: u16,
    shutdown: CancellationToken,
    handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl RunningService {
    pub fn spawn<F>(port: u16, run: impl FnOnce(CancellationToken) -> F) -> Self
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(run(shutdown.clone()));
        RunningService { port, shutdown, handle: Some(handle) }
    }

    /// Stops the service and waits until it has ended (and let go of its port).
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            handle.await.expect("the service panicked").expect("the service failed");
        }
    }

    /// Stops the service, waiting at most [`DEADLINE`], whatever became of it.
    pub async fn stop_quietly(&mut self) {
        self.shutdown.cancel();
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(DEADLINE, handle).await;
        }
    }
}

impl Drop for RunningService {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An Ed25519 signing key in a PEM file of its own, removed on drop.
pub struct KeyFile {
    pub path: PathBuf,
    pub pem: String,
}

impl KeyFile {
    pub fn generate() -> Self {
        let pem = agora_auth_service::keys::generate_pem().expect("generating a signing key");
        let path = std::env::temp_dir().join(format!("agora-post-test-key-{}.pem", Uuid::now_v7().simple()));
        std::fs::write(&path, &pem).expect("writing the signing key");
        KeyFile { path, pem }
    }
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

pub fn base_database_url() -> String {
    std::env::var("DATABASE_URL").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The name and URL of a database of its own, e.g. `agora_post_test_<uuid>`.
pub fn fresh_database(prefix: &str) -> (String, String) {
    let name = format!("{prefix}_{}", Uuid::now_v7().simple());
    let url = agora_platform::db::with_database(&base_database_url(), &name).expect("a database URL");
    (name, url)
}

pub async fn drop_databases(names: &[String]) {
    let Ok(mut connection) = sqlx::PgConnection::connect(&base_database_url()).await else { return };
    for name in names {
        let _ = sqlx::query(&format!(r#"drop database if exists "{name}" with (force)"#)).execute(&mut connection).await;
    }
}
