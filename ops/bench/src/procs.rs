//! Child processes the benchmark starts (services, gateways) and what
//! Linux tells about them: peak and current resident memory, CPU time.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use tokio::process::{Child, Command};

/// A process started by the benchmark; killed when dropped.
pub struct Proc {
    pub name: String,
    pub port: u16,
    pub pid: u32,
    pub log: PathBuf,
    /// The port of its `/metrics` listener, when it has one (the gateway).
    pub metrics_port: Option<u16>,
    child: Child,
}

/// How to start one process.
pub struct Spec<'a> {
    pub name: &'a str,
    pub program: &'a Path,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub port: u16,
    pub cwd: Option<&'a Path>,
}

impl Proc {
    pub fn spawn(spec: Spec<'_>, log_dir: &Path) -> anyhow::Result<Proc> {
        std::fs::create_dir_all(log_dir)?;
        let log = log_dir.join(format!("{}.log", spec.name));
        let out = std::fs::File::create(&log).with_context(|| format!("cannot create {}", log.display()))?;
        let mut command = Command::new(spec.program);
        command
            .args(&spec.args)
            .envs(spec.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .kill_on_drop(true);
        if let Some(cwd) = spec.cwd {
            command.current_dir(cwd);
        }
        let child = command.spawn().with_context(|| format!("cannot start {} ({})", spec.name, spec.program.display()))?;
        let pid = child.id().context("the child has no pid")?;
        Ok(Proc { name: spec.name.to_owned(), port: spec.port, pid, log, metrics_port: None, child })
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until `probe` answers 200 (GET, or POST of `{__typename}` when
    /// `graphql` is set), failing early when the process exits.
    pub async fn wait_ready(
        &mut self,
        client: &reqwest::Client,
        path: &str,
        graphql: bool,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let url = self.url(path);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("{} exited with {status} before it was ready; see {}", self.name, self.log.display());
            }
            let request = if graphql {
                client.post(&url).header("content-type", "application/json").body(r#"{"query":"{ __typename }"}"#)
            } else {
                client.get(&url)
            };
            if let Ok(response) = request.timeout(Duration::from_secs(2)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if started.elapsed() > timeout {
                bail!("{} was not ready after {:?}; see {}", self.name, timeout, self.log.display());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn status_field_kb(&self, field: &str) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid)).ok()?;
        status
            .lines()
            .find(|line| line.starts_with(field))
            .and_then(|line| line.split_whitespace().nth(1))
            .and_then(|kb| kb.parse().ok())
    }

    /// Peak resident memory since start or the last [`Proc::reset_peak`], in MiB.
    pub fn peak_rss_mib(&self) -> Option<f64> {
        self.status_field_kb("VmHWM:").map(|kb| kb as f64 / 1024.0)
    }

    pub fn rss_mib(&self) -> Option<f64> {
        self.status_field_kb("VmRSS:").map(|kb| kb as f64 / 1024.0)
    }

    /// Resets the peak resident size (VmHWM) to the current one.
    pub fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid), "5");
    }

    /// utime + stime, in clock ticks.
    pub fn cpu_ticks(&self) -> Option<u64> {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid)).ok()?;
        // The command name may contain spaces: fields count from after ')'.
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(utime + stime)
    }

    /// SIGTERM, then SIGKILL after `grace`.
    pub async fn stop(mut self, grace: Duration) {
        let _ = std::process::Command::new("kill").arg("-TERM").arg(self.pid.to_string()).status();
        if tokio::time::timeout(grace, self.child.wait()).await.is_err() {
            let _ = self.child.kill().await;
        }
    }
}

/// Clock ticks per second (`getconf CLK_TCK`, 100 on Linux).
pub fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .unwrap_or(100.0)
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?.port())
}

/// The soft limit of open files of this process.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|line| line.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}
