//! The system under test, as separate processes on loopback: a private
//! PostgreSQL, the broker process, auth-service, post-service and gateway
//! replicas (each `agora-chaos-node`), or, for the full-restart scenario,
//! `agora-local` on the same databases. Each keeps its port across restarts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use agora_ops::reconcile::Sources;
use anyhow::{bail, Context};

use crate::postgres::Postgres;
use crate::procs::{free_port, Proc, Spec};

pub const AUTH_DB: &str = "agora_auth";
pub const POST_DB: &str = "agora_post";
pub const READ_DB: &str = "agora_read";

/// Where the programs are.
#[derive(Debug, Clone)]
pub struct Programs {
    /// `agora-chaos-node`.
    pub node: PathBuf,
    /// `agora-local`, for the full-restart scenario.
    pub local: Option<PathBuf>,
}

pub struct System {
    pub postgres: Postgres,
    pub dir: PathBuf,
    programs: Programs,
    /// Running processes by name.
    procs: BTreeMap<String, Proc>,
    /// How to start each again after it was stopped or killed.
    specs: BTreeMap<String, Spec>,
    /// Kafka bootstrap servers of the broker in use.
    pub brokers: String,
    key_file: PathBuf,
    pub http: reqwest::Client,
    /// Set once the system runs as `agora-local`.
    pub local: bool,
}

const READY: Duration = Duration::from_secs(120);

fn log_filter() -> String {
    std::env::var("CHAOS_SERVICE_LOG")
        .unwrap_or_else(|_| "warn,agora_platform=info,agora_gateway=info,agora_auth_service=info".into())
}

impl System {
    pub async fn start(dir: &Path, programs: Programs) -> anyhow::Result<System> {
        let postgres = Postgres::start(dir, free_port()?)?;
        let http = reqwest::Client::builder().no_proxy().build()?;
        let mut system = System {
            postgres,
            dir: dir.to_owned(),
            programs,
            procs: BTreeMap::new(),
            specs: BTreeMap::new(),
            brokers: String::new(),
            key_file: dir.join("auth-signing-key.pem"),
            http,
            local: false,
        };
        system.start_broker().await?;
        let (auth, post) = (free_port()?, free_port()?);
        let mut env = system.service_env(auth, AUTH_DB);
        env.push(("AUTH_SIGNING_KEY_FILE".into(), system.key_file.display().to_string()));
        env.push(("AUTH_TOKEN_TTL_SECONDS".into(), "86400".into()));
        system.launch(system.node_spec("auth-service", "auth", auth, env)).await?;
        let mut env = system.service_env(post, POST_DB);
        env.push(("AUTH_JWKS_URL".into(), format!("http://127.0.0.1:{auth}/.well-known/jwks.json")));
        system.launch(system.node_spec("post-service", "post", post, env)).await?;
        for name in ["gateway-1", "gateway-2"] {
            system.add_gateway(name).await?;
        }
        Ok(system)
    }

    fn logs(&self) -> PathBuf {
        self.dir.join("logs")
    }

    fn node_spec(&self, name: &str, role: &str, port: u16, env: Vec<(String, String)>) -> Spec {
        Spec { name: name.into(), program: self.programs.node.clone(), args: vec![role.into()], env, port }
    }

    fn service_env(&self, port: u16, database: &str) -> Vec<(String, String)> {
        vec![
            ("HOST".into(), "127.0.0.1".into()),
            ("PORT".into(), port.to_string()),
            ("DATABASE_URL".into(), self.postgres.database_url(database)),
            ("KAFKA_BROKERS".into(), self.brokers.clone()),
            // Several processes of one kind run side by side: any free port.
            ("METRICS_PORT".into(), "0".into()),
            ("RUST_LOG".into(), log_filter()),
        ]
    }

    async fn start_broker(&mut self) -> anyhow::Result<()> {
        let spec = self.node_spec("broker", "broker", 0, Vec::new());
        let proc = Proc::spawn(spec.clone(), &self.logs())?;
        self.brokers = wait_for_bootstrap(&proc.log, 0, &["bootstrap="]).await?;
        self.specs.insert(spec.name.clone(), spec);
        self.procs.insert("broker".into(), proc);
        Ok(())
    }

    /// Starts a gateway replica sharing the read model and projector group.
    pub async fn add_gateway(&mut self, name: &str) -> anyhow::Result<()> {
        let port = free_port()?;
        let (auth, post) = (self.port("auth-service"), self.port("post-service"));
        let mut env = self.service_env(port, READ_DB);
        env.push(("AUTH_URL".into(), format!("http://127.0.0.1:{auth}/graphql")));
        env.push(("POST_URL".into(), format!("http://127.0.0.1:{post}/graphql")));
        env.push(("AUTH_JWKS_URL".into(), format!("http://127.0.0.1:{auth}/.well-known/jwks.json")));
        self.launch(self.node_spec(name, "gateway", port, env)).await
    }

    async fn launch(&mut self, spec: Spec) -> anyhow::Result<()> {
        let mut proc = Proc::spawn(spec.clone(), &self.logs())?;
        proc.wait_ready(&self.http, READY).await?;
        self.specs.insert(spec.name.clone(), spec);
        self.procs.insert(proc.spec.name.clone(), proc);
        Ok(())
    }

    pub fn port(&self, name: &str) -> u16 {
        self.specs.get(name).map_or(0, |spec| spec.port)
    }

    fn proc(&self, name: &str) -> anyhow::Result<&Proc> {
        self.procs.get(name).with_context(|| format!("{name} is not running"))
    }

    /// The gateways clients use (not an extra replica that only joins).
    pub fn client_gateways(&self) -> Vec<(String, u16)> {
        let names: &[&str] = if self.local { &["agora-local"] } else { &["gateway-1", "gateway-2"] };
        names.iter().map(|name| (name.to_string(), self.port(name))).collect()
    }

    pub async fn kill(&mut self, name: &str) -> anyhow::Result<()> {
        let proc = self.procs.remove(name).with_context(|| format!("{name} is not running"))?;
        proc.kill().await;
        Ok(())
    }

    /// SIGTERM (or `signal`), waiting for a clean exit.
    pub async fn stop(&mut self, name: &str, signal: &str) -> anyhow::Result<()> {
        let proc = self.procs.remove(name).with_context(|| format!("{name} is not running"))?;
        proc.stop_with(signal, Duration::from_secs(30)).await;
        Ok(())
    }

    /// Starts a stopped or killed process again, as it was.
    pub async fn restart(&mut self, name: &str) -> anyhow::Result<()> {
        let spec = self.specs.get(name).with_context(|| format!("{name} was never started"))?.clone();
        let log_len = std::fs::metadata(self.logs().join(format!("{name}.log"))).map_or(0, |m| m.len());
        self.launch(spec).await?;
        if name == "agora-local" {
            // Its embedded broker's address, as it logs it (JSON lines).
            self.brokers = wait_for_bootstrap(&self.proc(name)?.log, log_len, &["\"bootstrap_servers\":", "\"kafka\":"]).await?;
        }
        Ok(())
    }

    pub fn signal(&self, name: &str, signal: &str) -> anyhow::Result<()> {
        self.proc(name)?.signal(signal)
    }

    /// Replaces the separate processes with `agora-local` on the same
    /// databases and signing key (its own embedded broker: a new, empty log).
    pub async fn switch_to_local(&mut self) -> anyhow::Result<()> {
        let program =
            self.programs.local.clone().context("agora-local was not found (cargo build -p agora-ops --bin agora-local)")?;
        for name in ["gateway-1", "gateway-2", "gateway-3", "post-service", "auth-service", "broker"] {
            if self.procs.contains_key(name) {
                self.stop(name, "TERM").await?;
            }
        }
        let env = vec![
            ("AGORA_POSTGRES_URL".into(), self.postgres.url()),
            ("AGORA_AUTH_PORT".into(), free_port()?.to_string()),
            ("AGORA_POST_PORT".into(), free_port()?.to_string()),
            ("AUTH_SIGNING_KEY_FILE".into(), self.key_file.display().to_string()),
            ("AUTH_TOKEN_TTL_SECONDS".into(), "86400".into()),
            ("LOG_FORMAT".into(), "json".into()),
            ("METRICS_PORT".into(), "0".into()),
            ("RUST_LOG".into(), format!("{},agora_platform::kafka=info", log_filter())),
        ];
        let port = free_port()?;
        let mut env = env;
        env.push(("AGORA_GATEWAY_PORT".into(), port.to_string()));
        let spec = Spec { name: "agora-local".into(), program, args: Vec::new(), env, port };
        self.specs.insert(spec.name.clone(), spec);
        self.local = true;
        self.restart("agora-local").await
    }

    /// What reconciliation compares.
    pub fn sources(&self) -> Sources {
        Sources {
            auth_database_url: self.postgres.database_url(AUTH_DB),
            post_database_url: self.postgres.database_url(POST_DB),
            read_database_url: self.postgres.database_url(READ_DB),
            kafka_brokers: (!self.brokers.is_empty()).then(|| self.brokers.clone()),
            topic_timeout: Duration::from_secs(30),
        }
    }

    /// Stops everything (gateways first), then PostgreSQL.
    pub async fn shutdown(mut self) {
        let names: Vec<String> = self.procs.keys().cloned().collect();
        let order = |name: &String| match name.as_str() {
            n if n.starts_with("gateway") || n == "agora-local" => 0,
            "broker" => 2,
            _ => 1,
        };
        let mut names = names;
        names.sort_by_key(order);
        for name in names {
            let signal = if name == "agora-local" { "INT" } else { "TERM" };
            let _ = self.stop(&name, signal).await;
        }
        if let Err(error) = self.postgres.stop() {
            eprintln!("cannot stop the private PostgreSQL: {error:#}");
        }
    }
}

/// Waits for one of `markers` followed by `host:port` in the log past `from`.
async fn wait_for_bootstrap(log: &Path, from: u64, markers: &[&str]) -> anyhow::Result<String> {
    let deadline = Instant::now() + READY;
    loop {
        let text = std::fs::read(log).unwrap_or_default();
        let text = String::from_utf8_lossy(&text[(from as usize).min(text.len())..]).into_owned();
        for marker in markers {
            let Some(at) = text.find(marker) else { continue };
            let rest = text[at + marker.len()..].trim_start_matches(['"', ' ', '=']);
            let address: String =
                rest.chars().take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | ',' | '-')).collect();
            if address.contains(':') {
                return Ok(address);
            }
        }
        if Instant::now() > deadline {
            bail!("none of {markers:?} in {} after {READY:?}", log.display());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
