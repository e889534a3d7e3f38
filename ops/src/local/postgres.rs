//! A private PostgreSQL for `agora-local`, when nothing answers on the
//! configured server: a data folder of its own (`.agora/postgres`, kept, so
//! the data survives restarts), initialized once for the user `postgres`
//! with a random password (SCRAM; kept next to the folder in
//! `postgres.password`, readable by its owner only: another local user
//! cannot log in as the superuser), started on a free loopback port with
//! `pg_ctl`, and stopped (`pg_ctl stop -m fast`) when the run ends. A folder
//! made by an earlier version (trust auth, no password file) still works.
//!
//! Hand-rolled rather than a crate: the crates that run a PostgreSQL for a
//! program (postgresql_embedded, pg-embed) download server binaries at run
//! time into a cache of their own; this uses the system's binaries, found
//! where packagers put them, and a plain data folder any PostgreSQL tool
//! can open. What is left is three commands (`initdb`, `pg_ctl start`,
//! `pg_ctl stop`).
//!
//! `initdb` and `postgres` refuse to run as root: as root they run as the
//! system user `postgres`, which then owns the data folder.

use std::io::Read;
use std::net::{Ipv4Addr, TcpListener, TcpStream, ToSocketAddrs};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use anyhow::{bail, Context};

/// The programs a server needs, all in one folder.
const PROGRAMS: [&str; 3] = ["initdb", "pg_ctl", "postgres"];

/// What to do when none are found.
const INSTALL_HINT: &str = "install the PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; \
     Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql`), \
     or set AGORA_POSTGRES_BINDIR to the folder holding initdb, pg_ctl and postgres, \
     or point AGORA_POSTGRES_URL at a running PostgreSQL";

/// Whether a server accepts connections at `url`'s host and port (a URL
/// naming no host, a Unix socket, counts as answering: it is left to the
/// connection to say what is wrong).
pub fn answers(url: &str) -> bool {
    let Ok(parsed) = reqwest::Url::parse(url) else { return true };
    let Some(host) = parsed.host_str().filter(|host| !host.is_empty()) else { return true };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = parsed.port().unwrap_or(5432);
    let Ok(addresses) = (host, port).to_socket_addrs() else { return false };
    addresses.into_iter().any(|address| TcpStream::connect_timeout(&address, Duration::from_secs(2)).is_ok())
}

/// Where the server binaries are: `override_bindir` alone when given, else
/// `pg_config --bindir`, else the first folder of `PATH` holding them all,
/// else the highest version under `/usr/lib/postgresql/*/bin`.
pub fn find_bindir(override_bindir: Option<&Path>) -> anyhow::Result<PathBuf> {
    let mut looked = Vec::new();
    if let Some(bindir) = override_bindir {
        if holds_programs(bindir) {
            return Ok(bindir.to_owned());
        }
        bail!(
            "no PostgreSQL server binaries ({}) in {} (AGORA_POSTGRES_BINDIR): {INSTALL_HINT}",
            PROGRAMS.join(", "),
            bindir.display()
        );
    }
    let mut candidates = Vec::new();
    match Command::new("pg_config").arg("--bindir").output() {
        Ok(output) if output.status.success() => {
            candidates.push(PathBuf::from(String::from_utf8_lossy(&output.stdout).trim()));
        }
        _ => looked.push("pg_config --bindir (no pg_config)".to_owned()),
    }
    candidates.extend(std::env::var_os("PATH").map(|path| std::env::split_paths(&path).collect::<Vec<_>>()).unwrap_or_default());
    candidates.extend(versioned_bindirs(Path::new("/usr/lib/postgresql")));
    for candidate in candidates {
        if holds_programs(&candidate) {
            return Ok(candidate);
        }
        looked.push(candidate.display().to_string());
    }
    looked.push("/usr/lib/postgresql/*/bin".to_owned());
    bail!("no PostgreSQL server binaries ({}) found (looked in {}): {INSTALL_HINT}", PROGRAMS.join(", "), looked.join(", "))
}

/// `<root>/<version>/bin`, the highest version first.
fn versioned_bindirs(root: &Path) -> Vec<PathBuf> {
    let mut found: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let version: Option<Vec<u32>> = name.split('.').map(|part| part.parse().ok()).collect();
            Some((version?, entry.path().join("bin")))
        })
        .collect();
    found.sort_by(|a, b| b.0.cmp(&a.0));
    found.into_iter().map(|(_, bindir)| bindir).collect()
}

fn holds_programs(folder: &Path) -> bool {
    PROGRAMS.iter().all(|program| {
        std::fs::metadata(folder.join(program)).is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    })
}

/// The system user a server runs as when this process is root.
#[derive(Debug, Clone, Copy)]
struct RunAs {
    uid: u32,
    gid: u32,
}

impl RunAs {
    /// `None` when not root; the `postgres` user's ids when root.
    fn needed() -> anyhow::Result<Option<Self>> {
        // SAFETY: geteuid has no preconditions and cannot fail.
        if unsafe { libc::geteuid() } != 0 {
            return Ok(None);
        }
        let output = Command::new("getent").args(["passwd", "postgres"]).output();
        let entry = match output {
            Ok(output) if output.status.success() => String::from_utf8_lossy(&output.stdout).into_owned(),
            _ => bail!(
                "running as root, and PostgreSQL refuses to run as root; it would run as the user `postgres`, which does \
                 not exist: create it (`useradd --system --create-home postgres`; the Debian package does), or run \
                 agora-local as another user"
            ),
        };
        let fields: Vec<&str> = entry.trim().split(':').collect();
        let id = |index: usize| fields.get(index).and_then(|field| field.parse().ok());
        match (id(2), id(3)) {
            (Some(uid), Some(gid)) => Ok(Some(RunAs { uid, gid })),
            _ => bail!("cannot read the user `postgres` from `getent passwd postgres`: {entry:?}"),
        }
    }
}

/// Fails, saying which, when a folder above `data` cannot be entered by
/// other users (a home folder of mode 0700): the server's user could not
/// reach its data.
fn reachable_by_others(data: &Path) -> anyhow::Result<()> {
    for ancestor in data.ancestors().skip(1) {
        let mode =
            std::fs::metadata(ancestor).with_context(|| format!("cannot read {}", ancestor.display()))?.permissions().mode();
        if mode & 0o001 == 0 {
            bail!(
                "the user postgres cannot reach {}: {} is not open to other users (mode {:o}); set AGORA_POSTGRES_FOLDER \
                 to a folder it can reach (say under /tmp or /var/lib/postgresql), or start a PostgreSQL and point \
                 AGORA_POSTGRES_URL at it",
                data.display(),
                ancestor.display(),
                mode & 0o777
            );
        }
    }
    Ok(())
}

/// A PostgreSQL this run started (or found running in its folder, left by
/// a run that was killed), stopped by [`PrivatePostgres::stop`] or when
/// dropped.
pub struct PrivatePostgres {
    bindir: PathBuf,
    data: PathBuf,
    port: u16,
    run_as: Option<RunAs>,
    stopped: bool,
}

impl PrivatePostgres {
    /// Initializes `folder` if it holds no server yet, and starts one on it.
    /// Blocking.
    pub fn start(folder: &Path, bindir: PathBuf) -> anyhow::Result<Self> {
        let run_as = RunAs::needed()?;
        let data = std::path::absolute(folder).context("the data folder has no absolute path")?;
        if let Some(parent) = data.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
        }
        if !data.exists() {
            // The server wants its folder private to its user.
            std::fs::DirBuilder::new().mode(0o700).create(&data).with_context(|| format!("cannot create {}", data.display()))?;
        }
        if run_as.is_some() {
            reachable_by_others(&data)?;
        }
        let mut server = PrivatePostgres { bindir, data, port: 0, run_as, stopped: true };
        if let Some(run_as) = run_as {
            std::os::unix::fs::chown(&server.data, Some(run_as.uid), Some(run_as.gid))
                .with_context(|| format!("cannot give {} to the user postgres", server.data.display()))?;
        }
        if !server.data.join("PG_VERSION").exists() {
            if std::fs::read_dir(&server.data)?.next().is_some() {
                bail!("{} is not empty and holds no PostgreSQL data folder (no PG_VERSION): move it away", server.data.display());
            }
            tracing::info!(folder = %server.data.display(), "initializing a private PostgreSQL data folder");
            let password = server.password_file();
            write_private(&password, &uuid::Uuid::new_v4().simple().to_string(), run_as)?;
            let (data, pwfile) = (server.data.display().to_string(), format!("--pwfile={}", password.display()));
            let initdb = ["-D", &data, "-U", "postgres", "--auth=scram-sha-256", &pwfile, "--encoding=UTF8", "--locale=C"];
            server.run("initdb", &initdb)?;
        }
        if let Some(port) = server.running_port() {
            tracing::warn!(port, folder = %server.data.display(), "a private PostgreSQL left by an earlier run is still running: using it");
            server.port = port;
            server.stopped = false;
            return Ok(server);
        }
        server.port = free_port()?;
        let data = server.data.display().to_string();
        let log = server.log_file().display().to_string();
        // pg_ctl hands `-o` to a shell: `''` is an empty value (no Unix socket).
        let options = format!("-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories=''", server.port);
        let started = server.run("pg_ctl", &["start", "-D", &data, "-l", &log, "-w", "-t", "60", "-o", &options]);
        if let Err(error) = started {
            return Err(error.context(format!("PostgreSQL did not start; the end of {log}:\n{}", tail(&server.log_file()))));
        }
        server.stopped = false;
        tracing::info!(
            port = server.port,
            folder = %server.data.display(),
            log = %log,
            "started a private PostgreSQL (nothing answered on AGORA_POSTGRES_URL); it stops with agora-local"
        );
        Ok(server)
    }

    /// Its URL, for the services' databases (with its password, when the
    /// folder has one).
    pub fn url(&self) -> String {
        match std::fs::read_to_string(self.password_file()) {
            Ok(password) => format!("postgres://postgres:{}@127.0.0.1:{}", password.trim(), self.port),
            Err(_) => format!("postgres://postgres@127.0.0.1:{}", self.port),
        }
    }

    /// Its URL as printed: the password stays in its file.
    pub fn shown_url(&self) -> String {
        match self.password_file().exists() {
            true => format!("postgres://postgres:…@127.0.0.1:{} (password in {})", self.port, self.password_file().display()),
            false => self.url(),
        }
    }

    /// Where the superuser's password is kept: next to the data folder.
    fn password_file(&self) -> PathBuf {
        self.data.with_extension("password")
    }

    pub fn folder(&self) -> &Path {
        &self.data
    }

    /// Stops the server (fast: open sessions are ended, what they committed
    /// is kept). Blocking.
    pub fn stop(&mut self) {
        if std::mem::replace(&mut self.stopped, true) {
            return;
        }
        let data = self.data.display().to_string();
        match self.run("pg_ctl", &["stop", "-D", &data, "-m", "fast", "-w", "-t", "60"]) {
            Ok(_) => tracing::info!(port = self.port, folder = %data, "stopped the private PostgreSQL"),
            Err(error) => tracing::error!(error = format!("{error:#}"), folder = %data, "cannot stop the private PostgreSQL"),
        }
    }

    /// The port of a server already running on the folder, from its
    /// `postmaster.pid` (its fourth line), if `pg_ctl status` says one runs.
    fn running_port(&self) -> Option<u16> {
        let data = self.data.display().to_string();
        self.command("pg_ctl").args(["status", "-D", &data]).output().ok().filter(|output| output.status.success())?;
        let pid_file = std::fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        pid_file.lines().nth(3)?.trim().parse().ok()
    }

    fn log_file(&self) -> PathBuf {
        self.data.join("agora-local.log")
    }

    fn command(&self, program: &str) -> Command {
        let mut command = Command::new(self.bindir.join(program));
        // The data folder's own directory: reachable by the server's user
        // even where the caller's working directory is not.
        command.current_dir(&self.data);
        if let Some(run_as) = self.run_as {
            command.uid(run_as.uid).gid(run_as.gid);
        }
        command
    }

    fn run(&self, program: &str, args: &[&str]) -> anyhow::Result<Output> {
        let output = self
            .command(program)
            .args(args)
            .output()
            .with_context(|| format!("cannot run {}", self.bindir.join(program).display()))?;
        if !output.status.success() {
            bail!(
                "{program} {} failed ({}): {}{}",
                args.join(" "),
                output.status,
                String::from_utf8_lossy(&output.stdout).trim(),
                String::from_utf8_lossy(&output.stderr).trim()
            );
        }
        Ok(output)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `text` to a new file at `path` only its owner can read: the
/// server's user, which reads it once (initdb), and root.
fn write_private(path: &Path, text: &str, owner: Option<RunAs>) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    if let Some(owner) = owner {
        std::os::unix::fs::chown(path, Some(owner.uid), Some(owner.gid))
            .with_context(|| format!("cannot give {} to the user postgres", path.display()))?;
    }
    Ok(())
}

/// A loopback port nothing listens on now.
fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).context("no free loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// The last lines of a log file, to show why a server did not start.
fn tail(path: &Path) -> String {
    let mut text = String::new();
    let _ = std::fs::File::open(path).and_then(|mut file| file.read_to_string(&mut text));
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_highest_version_first() {
        let root = std::env::temp_dir().join(format!("agora-pg-versions-{}", std::process::id()));
        for version in ["9.6", "15", "13", "not-a-version"] {
            std::fs::create_dir_all(root.join(version).join("bin")).unwrap();
        }
        let found = versioned_bindirs(&root);
        std::fs::remove_dir_all(&root).unwrap();
        assert_eq!(found, vec![root.join("15/bin"), root.join("13/bin"), root.join("9.6/bin")]);
    }

    #[test]
    fn an_empty_override_names_what_to_install() {
        let empty = std::env::temp_dir().join(format!("agora-pg-empty-{}", std::process::id()));
        std::fs::create_dir_all(&empty).unwrap();
        let error = find_bindir(Some(&empty)).unwrap_err().to_string();
        std::fs::remove_dir_all(&empty).unwrap();
        assert!(error.contains("apt-get install postgresql"), "{error}");
    }

    #[test]
    fn a_closed_port_does_not_answer() {
        let port = free_port().unwrap();
        assert!(!answers(&format!("postgres://postgres@127.0.0.1:{port}")));
    }
}
