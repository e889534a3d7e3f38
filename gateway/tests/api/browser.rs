//! The demo app and GraphiQL in headless Chromium, against the whole
//! system: `gateway/tests/browser/app.mjs` (playwright-core) drives two
//! pages of the app and the playground; see that script for what it checks.
//! Screenshots go to `<target>/browser-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::helpers::spawn_system;

/// The whole run: two pages, several live events, GraphiQL; each of its
/// waits has its own, shorter timeout.
const BROWSER_RUN: Duration = Duration::from_secs(180);

fn chromium() -> PathBuf {
    let path = std::env::var_os("CHROMIUM_PATH").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    assert!(
        path.exists(),
        "the browser test needs Chromium at {}: install Debian's package (`apt-get install chromium`, as .ci/run does) \
         or set CHROMIUM_PATH",
        path.display()
    );
    path
}

/// `<target>/browser-screenshots`: `CARGO_TARGET_TMPDIR` is `<target>/tmp`.
fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_TARGET_TMPDIR")).parent().expect("the target dir holds tmp/").join("browser-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_app_and_graphiql_work_in_a_browser_without_internet() {
    let chromium = chromium();
    let system = spawn_system().await;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser/app.mjs");
    let mut child = Command::new("node")
        .arg(script)
        .arg(format!("http://127.0.0.1:{}", system.gateway.port()))
        .arg(screenshot_dir())
        .env("CHROMIUM_PATH", chromium)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node runs (npm ci installs playwright-core)");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut output = Vec::new();
    let run = async {
        while let Some(line) = lines.next_line().await.expect("reading the browser test's output") {
            output.push(line);
        }
        child.wait().await.expect("waiting for the browser test")
    };
    let status = tokio::time::timeout(BROWSER_RUN, run)
        .await
        .unwrap_or_else(|_| panic!("the browser test did not finish within {BROWSER_RUN:?}:\n{}", output.join("\n")));
    let last = output.last().cloned().unwrap_or_default();
    assert!(status.success() && last.contains("\"passed\":true"), "the browser test failed ({status}):\n{}", output.join("\n"));
}
