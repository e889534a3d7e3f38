//! `agora-local` as a user runs it: the real binary, in a fresh working
//! folder, with nothing answering on `AGORA_POSTGRES_URL` and free ports
//! for every listener. It starts a private PostgreSQL in
//! `.agora/postgres`, answers GraphQL, seeds through the public API (a
//! second `--seed` on the same data adds nothing), and stops its PostgreSQL
//! on SIGTERM and SIGINT; a server left running by a killed run is used by
//! the next and stopped with it. Without server binaries it exits saying
//! what to install.

use std::io::{BufRead, BufReader};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agora_testkit::{graphql, graphql_with_headers, wait_until, DEADLINE};
use serde_json::{json, Value};

/// Starting includes initdb and a first build of every database.
const STARTUP: Duration = Duration::from_secs(180);

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap().local_addr().unwrap().port()
}

/// A fresh working folder for one run of the test.
fn working_folder(name: &str) -> PathBuf {
    let folder = std::env::temp_dir().join(format!("agora-local-{name}-{}-{}", std::process::id(), free_port()));
    std::fs::create_dir_all(&folder).unwrap();
    folder
}

struct Ports {
    closed_postgres: u16,
    gateway: u16,
    auth: u16,
    post: u16,
    gateway_metrics: u16,
    auth_metrics: u16,
    post_metrics: u16,
}

impl Ports {
    fn free() -> Self {
        Ports {
            closed_postgres: free_port(),
            gateway: free_port(),
            auth: free_port(),
            post: free_port(),
            gateway_metrics: free_port(),
            auth_metrics: free_port(),
            post_metrics: free_port(),
        }
    }
}

/// One run of the binary, its output collected as it comes.
struct Run {
    child: Child,
    output: Arc<Mutex<String>>,
}

fn command(folder: &Path, ports: &Ports) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agora-local"));
    command
        .current_dir(folder)
        .env_remove("KAFKA_BROKERS")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("AGORA_POSTGRES_URL", format!("postgres://postgres@127.0.0.1:{}", ports.closed_postgres))
        .env("AGORA_GATEWAY_PORT", ports.gateway.to_string())
        .env("AGORA_AUTH_PORT", ports.auth.to_string())
        .env("AGORA_POST_PORT", ports.post.to_string())
        .env("AGORA_GATEWAY_METRICS_PORT", ports.gateway_metrics.to_string())
        .env("AGORA_AUTH_METRICS_PORT", ports.auth_metrics.to_string())
        .env("AGORA_POST_METRICS_PORT", ports.post_metrics.to_string())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

impl Run {
    fn start(folder: &Path, ports: &Ports, args: &[&str]) -> Run {
        let mut child = command(folder, ports).args(args).spawn().expect("agora-local starts");
        let output = Arc::new(Mutex::new(String::new()));
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for stream in [Box::new(stdout) as Box<dyn std::io::Read + Send>, Box::new(stderr)] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    eprintln!("agora-local | {line}");
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        Run { child, output }
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    async fn wait_for_output(&mut self, what: &str, timeout: Duration) {
        let output = self.output.clone();
        let mut exited = None;
        wait_until(timeout, &format!("agora-local prints {what:?}"), || {
            let found = output.lock().unwrap().contains(what);
            exited = exited.or_else(|| self.child.try_wait().unwrap());
            assert!(found || exited.is_none(), "agora-local ended ({exited:?}) before printing {what:?}");
            async move { found }
        })
        .await;
    }

    fn signal(&self, signal: i32) {
        // SAFETY: kill has no memory preconditions; the pid is our child's.
        let sent = unsafe { libc::kill(self.child.id() as i32, signal) };
        assert_eq!(sent, 0, "signalling agora-local");
    }

    async fn wait_for_exit(&mut self) -> std::process::ExitStatus {
        let mut status = None;
        wait_until(DEADLINE, "agora-local exits", || {
            status = status.or_else(|| self.child.try_wait().unwrap());
            let done = status.is_some();
            async move { done }
        })
        .await;
        status.unwrap()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

/// The private server's port, from its `postmaster.pid` (fourth line).
fn private_postgres_port(folder: &Path) -> Option<u16> {
    let pid_file = std::fs::read_to_string(folder.join(".agora/postgres/postmaster.pid")).ok()?;
    pid_file.lines().nth(3)?.trim().parse().ok()
}

fn listening(port: u16) -> bool {
    TcpStream::connect_timeout(&(Ipv4Addr::LOCALHOST, port).into(), Duration::from_secs(1)).is_ok()
}

/// Users, their points and post counts, and every post title, from the
/// read model.
async fn read_model_state(port: u16) -> Value {
    let response = graphql(
        port,
        "{ leaderboard(first: 100) { username points postCount } posts(first: 100) { nodes { title } } }",
        json!({}),
        None,
    )
    .await;
    response["data"].clone()
}

/// The read model's state once `condition` holds of it.
async fn read_model_until(port: u16, what: &str, condition: impl Fn(&Value) -> bool) -> Value {
    let seen = Mutex::new(Value::Null);
    wait_until(DEADLINE, what, || async {
        let state = read_model_state(port).await;
        let holds = condition(&state);
        *seen.lock().unwrap() = state;
        holds
    })
    .await;
    seen.into_inner().unwrap()
}

/// The number of posts, asked of post-service itself (composition).
async fn posts_in_post_service(port: u16) -> usize {
    let response = graphql_with_headers(
        port,
        "{ posts(first: 100) { nodes { id } } }",
        json!({}),
        &[("x-query-strategy", "composition".into())],
    )
    .await;
    response["data"]["posts"]["nodes"].as_array().unwrap_or_else(|| panic!("no posts in {response}")).len()
}

/// The read model shows every seeded user with 10 points per post.
fn settled(state: &Value) -> bool {
    let Some(users) = state["leaderboard"].as_array() else { return false };
    let posts = state["posts"]["nodes"].as_array().map_or(0, Vec::len) as i64;
    let counted: i64 = users.iter().map(|user| user["postCount"].as_i64().unwrap_or(0)).sum();
    users.len() == 3
        && counted == posts
        && users.iter().all(|user| user["points"].as_i64() == user["postCount"].as_i64().map(|count| count * 10))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn starts_its_own_postgres_seeds_once_and_stops_it_on_sigterm_and_sigint() {
    let folder = working_folder("run");
    let ports = Ports::free();

    // Nothing on AGORA_POSTGRES_URL: a private server, then GraphQL, then the seed.
    let mut first = Run::start(&folder, &ports, &["--seed"]);
    first.wait_for_output("Agora is ready", STARTUP).await;
    let output = first.output();
    assert!(output.contains("started a private PostgreSQL"), "{output}");
    for url in [
        format!("http://127.0.0.1:{}/app", ports.gateway),
        format!("http://127.0.0.1:{}/graphql", ports.gateway),
        format!("http://127.0.0.1:{}/metrics", ports.gateway_metrics),
        format!("http://127.0.0.1:{}/metrics", ports.auth_metrics),
        format!("http://127.0.0.1:{}/metrics", ports.post_metrics),
    ] {
        assert!(output.contains(&url), "the ready message names {url}: {output}");
    }
    let postgres = private_postgres_port(&folder).expect("the private server's postmaster.pid names its port");
    assert_ne!(postgres, ports.closed_postgres);
    assert!(listening(postgres));
    // Its superuser has a password only the caller can read; the ready
    // message does not print it.
    let password_file = folder.join(".agora/postgres.password");
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&password_file).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let password = std::fs::read_to_string(&password_file).unwrap();
    assert!(!output.contains(password.trim()), "{output}");
    let without = sqlx::PgPool::connect(&format!("postgres://postgres@127.0.0.1:{postgres}/postgres")).await;
    assert!(without.is_err(), "the private server let the superuser in without a password");
    let with = sqlx::PgPool::connect(&format!("postgres://postgres:{}@127.0.0.1:{postgres}/postgres", password.trim())).await;
    with.expect("the password lets the superuser in").close().await;
    let metrics = agora_testkit::get(ports.gateway_metrics, "/metrics").await.text().await.unwrap();
    assert!(metrics.contains("agora_projector_lag_events"), "{metrics}");

    let seeded = read_model_until(ports.gateway, "the read model shows the seed with its points", settled).await;
    let posts = seeded["posts"]["nodes"].as_array().unwrap().len();
    assert!(posts > 0, "{seeded}");
    assert_eq!(posts_in_post_service(ports.gateway).await, posts);

    // SIGTERM stops the services and the private server.
    first.signal(libc::SIGTERM);
    let status = first.wait_for_exit().await;
    assert!(status.success(), "{status}: {}", first.output());
    assert!(first.output().contains("stopped the private PostgreSQL"), "{}", first.output());
    assert!(!folder.join(".agora/postgres/postmaster.pid").exists(), "postmaster.pid is gone");
    assert!(!listening(postgres), "nothing listens on {postgres} any more");

    // A second run reuses the data folder; its seed adds nothing.
    let mut second = Run::start(&folder, &ports, &["--seed"]);
    second.wait_for_output("Agora is ready", STARTUP).await;
    let output = second.output();
    assert!(!output.contains("initializing a private PostgreSQL data folder"), "the folder is reused: {output}");
    let seeded_line = output.lines().find(|line| line.contains("seeded")).unwrap_or_else(|| panic!("{output}"));
    assert!(seeded_line.contains("users_registered=0") && seeded_line.contains("posts_created=0"), "{seeded_line}");
    assert_eq!(posts_in_post_service(ports.gateway).await, posts, "no post was added twice");
    read_model_until(ports.gateway, "the read model shows the same seed", |state| *state == seeded).await;
    let postgres = private_postgres_port(&folder).expect("the private server runs again");

    // SIGINT (Ctrl-C) stops it all the same.
    second.signal(libc::SIGINT);
    let status = second.wait_for_exit().await;
    assert!(status.success(), "{status}: {}", second.output());
    assert!(!folder.join(".agora/postgres/postmaster.pid").exists(), "postmaster.pid is gone");
    assert!(!listening(postgres), "nothing listens on {postgres} any more");
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_server_binaries_it_exits_saying_what_to_install() {
    let folder = working_folder("no-binaries");
    let empty = folder.join("empty-bin");
    std::fs::create_dir_all(&empty).unwrap();
    let output = command(&folder, &Ports::free())
        .env("PATH", &empty)
        .env("AGORA_POSTGRES_BINDIR", &empty)
        .output()
        .expect("agora-local runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "{stderr}");
    assert!(stderr.contains("apt-get install postgresql"), "{stderr}");
    assert!(stderr.contains("AGORA_POSTGRES_BINDIR"), "{stderr}");
    assert!(!folder.join(".agora/postgres").exists(), "no data folder is made without a server to run it");
    std::fs::remove_dir_all(&folder).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_left_running_by_a_killed_run_is_used_and_stopped_by_the_next() {
    let folder = working_folder("killed");
    let ports = Ports::free();
    let mut killed = Run::start(&folder, &ports, &[]);
    killed.wait_for_output("Agora is ready", STARTUP).await;
    let postgres = private_postgres_port(&folder).expect("the private server runs");
    killed.signal(libc::SIGKILL);
    let status = killed.wait_for_exit().await;
    assert!(!status.success());
    assert!(listening(postgres), "pg_ctl detached the server: it outlives a killed run");

    let mut next = Run::start(&folder, &ports, &[]);
    next.wait_for_output("Agora is ready", STARTUP).await;
    assert!(next.output().contains("still running: using it"), "{}", next.output());
    assert_eq!(private_postgres_port(&folder), Some(postgres));
    let answer = graphql(ports.gateway, "{ posts(first: 1) { nodes { id } } }", json!({}), None).await;
    assert!(answer["data"]["posts"].is_object(), "{answer}");
    next.signal(libc::SIGTERM);
    assert!(next.wait_for_exit().await.success(), "{}", next.output());
    assert!(!folder.join(".agora/postgres/postmaster.pid").exists(), "postmaster.pid is gone");
    assert!(!listening(postgres), "nothing listens on {postgres} any more");
    std::fs::remove_dir_all(&folder).unwrap();
}
