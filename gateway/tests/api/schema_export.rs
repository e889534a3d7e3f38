//! The served schema is exported to `schema/gateway.graphql`; this keeps the
//! file current and checks it against the public contract.

use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

#[test]
fn the_exported_schema_is_current() {
    let path = workspace_root().join("schema/gateway.graphql");
    let served = agora_gateway::api::sdl();
    if std::env::var_os("AGORA_BLESS").is_some() {
        std::fs::write(&path, &served).unwrap();
    }
    let exported = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        exported == served,
        "schema/gateway.graphql is stale: run AGORA_BLESS=1 cargo test -p agora-gateway --test api schema_export"
    );
}

#[test]
fn the_exported_schema_keeps_the_public_contract() {
    let root = workspace_root();
    let shared = root.parent().unwrap().join("shared");
    let output = Command::new("python3")
        .arg(shared.join("tools/contract-check"))
        .arg(shared.join("api.graphql"))
        .arg(root.join("schema/gateway.graphql"))
        .output()
        .expect("python3 runs ../shared/tools/contract-check");
    let report = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the served schema breaks ../shared/api.graphql:\n{report}");
    assert!(report.contains(" 0 problems"), "{report}");
}
