//! The steady mixed load: workers, each a user of its own (a new one every
//! few commands), sending register, rename and createPost through the
//! careful [`Client`] at a steady pace, and recording every command with
//! what became of it. Every command's effect is unique (a username, a
//! display name, a title carrying the command's key) so that it can be
//! found, or found twice, afterwards.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use serde_json::{json, Value};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use uuid::Uuid;

use crate::client::{Client, Outcome, Reply};

pub const PASSWORD: &str = "chaos suite password";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Register,
    Rename,
    Post,
}

/// One command as the client saw it.
#[derive(Debug, Clone)]
pub struct Command {
    pub key: Uuid,
    pub kind: Kind,
    /// The username (register), the new display name (rename) or the title (post).
    pub value: String,
    /// The user it acts as (rename, post); the user created (register, when answered).
    pub user: Option<Uuid>,
    /// The post created (when answered).
    pub post: Option<Uuid>,
    pub sent: Instant,
    pub done: Instant,
    pub outcome: Outcome,
    /// The codes of the attempts that were retried, in order.
    pub retried: Vec<String>,
    /// Answered before the read model showed it (`consistent: false`).
    pub stale: bool,
}

impl Command {
    pub fn acknowledged(&self) -> bool {
        matches!(self.outcome, Outcome::Acknowledged(_))
    }
}

/// How hard to push.
#[derive(Debug, Clone, Copy)]
pub struct LoadSettings {
    pub workers: usize,
    /// Commands per second per worker.
    pub rate: f64,
    /// A worker registers a new user after this many commands.
    pub commands_per_user: usize,
}

/// A running load; [`Load::stop`] ends it and returns what was sent.
pub struct Load {
    stop: watch::Sender<bool>,
    workers: Vec<JoinHandle<Vec<Command>>>,
    in_flight: Arc<AtomicUsize>,
}

impl Load {
    /// `prefix`: lowercase letters and digits, unique in the run (usernames start with it).
    pub fn start(client: Arc<Client>, settings: LoadSettings, prefix: &str) -> Load {
        let (stop, stopped) = watch::channel(false);
        let in_flight = Arc::new(AtomicUsize::new(0));
        let workers = (0..settings.workers)
            .map(|index| {
                let worker = Worker {
                    client: client.clone(),
                    prefix: format!("{prefix}w{index}"),
                    settings,
                    users: 0,
                    in_flight: in_flight.clone(),
                };
                tokio::spawn(worker.run(stopped.clone()))
            })
            .collect();
        Load { stop, workers, in_flight }
    }

    /// Waits (at most `timeout`) until at least `count` commands are in
    /// flight, so that a fault lands on commands being executed.
    pub async fn wait_in_flight(&self, count: usize, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.in_flight.load(Ordering::SeqCst) < count && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Stops sending new commands, waits for those in flight (each within
    /// the client's deadline) and returns every command.
    pub async fn stop(self) -> Vec<Command> {
        let _ = self.stop.send(true);
        let mut commands = Vec::new();
        for worker in self.workers {
            commands.extend(worker.await.unwrap_or_default());
        }
        commands
    }
}

struct Worker {
    client: Arc<Client>,
    prefix: String,
    settings: LoadSettings,
    users: usize,
    in_flight: Arc<AtomicUsize>,
}

struct Session {
    id: Uuid,
    token: String,
}

impl Worker {
    async fn run(mut self, mut stop: watch::Receiver<bool>) -> Vec<Command> {
        let mut commands = Vec::new();
        let mut session: Option<Session> = None;
        let mut since_register = 0;
        let pause = Duration::from_secs_f64(1.0 / self.settings.rate);
        // Workers start spread over one pause, not all at once.
        let offset = pause.mul_f64(rand::thread_rng().gen::<f64>());
        if tokio::time::timeout(offset, stop.changed()).await.is_ok() {
            return commands;
        }
        let mut ticker = tokio::time::interval(pause);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                _ = ticker.tick() => {}
            }
            let command = match &session {
                Some(current) if since_register < self.settings.commands_per_user => {
                    since_register += 1;
                    if rand::thread_rng().gen_bool(0.65) {
                        self.post(current).await
                    } else {
                        self.rename(current).await
                    }
                }
                _ => {
                    let command = self.register().await;
                    session = match &command.outcome {
                        Outcome::Acknowledged(data) => data["register"]["token"]
                            .as_str()
                            .map(|token| Session { id: command.user.expect("an answered register"), token: token.to_owned() }),
                        Outcome::Failed { .. } => None,
                    };
                    since_register = 0;
                    command
                }
            };
            commands.push(command);
        }
        commands
    }

    async fn send(
        &self,
        kind: Kind,
        value: String,
        user: Option<Uuid>,
        query: &str,
        variables: Value,
        token: Option<&str>,
    ) -> Command {
        let key = Uuid::now_v7();
        let sent = Instant::now();
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let reply = self.client.command(query, variables, token, key).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        let Reply { outcome, retried, stale } = reply;
        Command { key, kind, value, user, post: None, sent, done: Instant::now(), outcome, retried, stale }
    }

    async fn register(&mut self) -> Command {
        self.users += 1;
        let username = format!("{}u{}", self.prefix, self.users);
        let mut command = self
            .send(
                Kind::Register,
                username.clone(),
                None,
                "mutation($input: RegisterInput!) { register(input: $input) { token user { id } } }",
                json!({ "input": { "username": username, "password": PASSWORD } }),
                None,
            )
            .await;
        if let Outcome::Acknowledged(data) = &command.outcome {
            command.user = data["register"]["user"]["id"].as_str().and_then(|id| id.parse().ok());
        }
        command
    }

    async fn rename(&self, session: &Session) -> Command {
        let name = format!("n{}", Uuid::now_v7().simple());
        self.send(
            Kind::Rename,
            name.clone(),
            Some(session.id),
            "mutation($name: String!) { renameUser(displayName: $name) { id displayName } }",
            json!({ "name": name }),
            Some(&session.token),
        )
        .await
    }

    async fn post(&self, session: &Session) -> Command {
        let title = format!("chaos {}", Uuid::now_v7().simple());
        let mut command = self
            .send(
                Kind::Post,
                title.clone(),
                Some(session.id),
                "mutation($input: CreatePostInput!) { createPost(input: $input) { id } }",
                json!({ "input": { "title": title, "body": format!("The body of {title}.") } }),
                Some(&session.token),
            )
            .await;
        if let Outcome::Acknowledged(data) = &command.outcome {
            command.post = data["createPost"]["id"].as_str().and_then(|id| id.parse().ok());
        }
        command
    }
}
