//! The processes the suite starts and the signals it sends them (only ever
//! to its own children, by process id). Like ops/bench/src/procs.rs, plus
//! the faults: SIGKILL, SIGSTOP/SIGCONT and SIGINT.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// How to start one process; kept to start it again after a fault.
#[derive(Debug, Clone)]
pub struct Spec {
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// Where its /healthz answers (0: it serves no HTTP).
    pub port: u16,
}

/// A running child; killed when dropped.
pub struct Proc {
    pub spec: Spec,
    pub pid: u32,
    pub log: PathBuf,
    child: Child,
}

impl Proc {
    /// Starts `spec`, appending its output to `log_dir/<name>.log`.
    pub fn spawn(spec: Spec, log_dir: &Path) -> anyhow::Result<Proc> {
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("{}.log", spec.name));
        let out = std::fs::OpenOptions::new().create(true).append(true).open(&log)?;
        let child = Command::new(&spec.program)
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("cannot start {} ({})", spec.name, spec.program.display()))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Proc { spec, pid, log, child })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.spec.port)
    }

    /// Waits until /healthz answers 200, failing early if the process exits.
    pub async fn wait_ready(&mut self, client: &reqwest::Client, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = self.url("/healthz");
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before it was ready; see {}", self.spec.name, self.log.display());
            }
            if let Ok(response) = client.get(&url).timeout(Duration::from_secs(2)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > timeout {
                bail!("{} was not ready after {timeout:?}; see {}", self.spec.name, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    pub fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let status = std::process::Command::new("kill").arg(format!("-{signal}")).arg(self.pid.to_string()).status()?;
        if !status.success() {
            bail!("kill -{signal} {} ({}) failed", self.pid, self.spec.name);
        }
        Ok(())
    }

    /// kill -9, and waits until it is gone.
    pub async fn kill(mut self) -> Spec {
        let _ = self.child.kill().await;
        self.spec
    }

    /// Sends `signal` (TERM, INT) and waits for the exit; SIGKILL after `grace`.
    pub async fn stop_with(mut self, signal: &str, grace: Duration) -> Spec {
        let _ = self.signal(signal);
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            eprintln!("{} did not stop within {grace:?} of SIG{signal}: killed", self.spec.name);
            let _ = self.child.kill().await;
        }
        self.spec
    }

    pub async fn stop(self) -> Spec {
        self.stop_with("TERM", Duration::from_secs(20)).await
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}
