//! The short chaos run, as `cargo test --workspace` runs it: the system as
//! separate processes (a private PostgreSQL, the broker, the services, two
//! gateways), a low steady load, and two scenarios (no fault; kill -9 of
//! post-service). Each must lose nothing, apply nothing twice, push every
//! post to the subscribers exactly once and reconcile without difference.

use agora_chaos::runner::{self, Options};
use agora_chaos::system::Programs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_short_chaos_run_loses_nothing_and_reconciles() {
    let programs = Programs { node: env!("CARGO_BIN_EXE_agora-chaos-node").into(), local: None };
    let dir = std::env::temp_dir().join(format!("agora-chaos-test-{}", uuid::Uuid::now_v7().simple()));
    let options = Options::short(programs, dir.clone());
    let rows = runner::run(&options).await.expect("the system starts");
    let table = agora_chaos::report::markdown(&rows, &options, "Chaos suite: short run (test)");
    eprintln!("{table}");
    assert_eq!(rows.len(), options.scenarios.len(), "every scenario ran");
    let failed: Vec<&str> = rows.iter().filter(|row| !row.passed()).map(|row| row.scenario.as_str()).collect();
    assert!(failed.is_empty(), "failed: {failed:?}; logs in {}\n{table}", dir.display());
    let _ = std::fs::remove_dir_all(&dir);
}
