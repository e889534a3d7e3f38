//! A private PostgreSQL server for one run: `initdb` into a temporary
//! directory and `pg_ctl` on a free loopback port, so that the suite can
//! crash it without touching anyone else's server. Run as the `postgres`
//! user when the suite runs as root (PostgreSQL refuses root).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};

/// A server this run started; stopped (fast) when dropped.
pub struct Postgres {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    log: PathBuf,
    as_postgres: bool,
    running: bool,
}

/// The newest installed PostgreSQL's programs (`/usr/lib/postgresql/N/bin`),
/// or `PG_BIN` when set.
fn bin_dir() -> anyhow::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(dir.into());
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql: install PostgreSQL or set PG_BIN")?
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Some((entry.file_name().to_str()?.parse().ok()?, entry.path().join("bin"))))
        .filter(|(_, bin)| bin.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin).context("no PostgreSQL with pg_ctl under /usr/lib/postgresql")
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status.lines().find(|line| line.starts_with("Uid:")).map(|line| line.split_whitespace().nth(1) == Some("0"))
        })
        .unwrap_or(false)
}

impl Postgres {
    /// Creates a cluster in `dir/pg` and starts it on `port`.
    pub fn start(dir: &Path, port: u16) -> anyhow::Result<Postgres> {
        let bin = bin_dir()?;
        let data = dir.join("pg");
        let log = dir.join("logs").join("postgres.log");
        std::fs::create_dir_all(log.parent().unwrap())?;
        let as_postgres = is_root();
        let server = Postgres { port, data, bin, log, as_postgres, running: false };
        if as_postgres {
            // The postgres user must be able to reach and own its directories.
            run(Command::new("chown").arg("-R").arg("postgres").arg(dir))?;
            run(Command::new("chmod").arg("a+rx").arg(dir))?;
        }
        server.run_pg("initdb", &["-D", &server.data_str(), "-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])?;
        let settings = format!(
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nmax_connections = 300\n\
             fsync = off\nlog_min_messages = warning\n",
            server.data_str()
        );
        std::fs::OpenOptions::new()
            .append(true)
            .open(server.data.join("postgresql.conf"))
            .and_then(|mut file| std::io::Write::write_all(&mut file, settings.as_bytes()))
            .context("cannot configure the private PostgreSQL")?;
        let mut server = server;
        server.pg_start()?;
        Ok(server)
    }

    fn data_str(&self) -> String {
        self.data.display().to_string()
    }

    /// `postgres://postgres@127.0.0.1:PORT` (no database).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}", self.port)
    }

    pub fn database_url(&self, database: &str) -> String {
        format!("{}/{database}", self.url())
    }

    fn run_pg(&self, program: &str, args: &[&str]) -> anyhow::Result<()> {
        let path = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&path);
            command
        } else {
            Command::new(&path)
        };
        command.args(args);
        run(&mut command)
    }

    pub fn pg_start(&mut self) -> anyhow::Result<()> {
        let log = self.log.display().to_string();
        if self.as_postgres && !self.log.exists() {
            std::fs::write(&self.log, "")?;
            run(Command::new("chown").arg("postgres").arg(&self.log))?;
        }
        self.run_pg("pg_ctl", &["start", "-w", "-t", "60", "-D", &self.data_str(), "-l", &log])?;
        self.running = true;
        Ok(())
    }

    /// A crash: every server process ends at once, without a checkpoint;
    /// the next start runs crash recovery.
    pub fn crash(&mut self) -> anyhow::Result<()> {
        self.run_pg("pg_ctl", &["stop", "-w", "-m", "immediate", "-D", &self.data_str()])?;
        self.running = false;
        Ok(())
    }

    pub fn stop(&mut self) -> anyhow::Result<()> {
        if self.running {
            self.run_pg("pg_ctl", &["stop", "-w", "-m", "fast", "-D", &self.data_str()])?;
            self.running = false;
        }
        Ok(())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        if let Err(error) = self.stop() {
            eprintln!("cannot stop the private PostgreSQL in {}: {error:#}", self.data.display());
        }
    }
}

fn run(command: &mut Command) -> anyhow::Result<()> {
    let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
    if !output.status.success() {
        bail!(
            "{command:?} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}
