//! The Kafka connection: client settings shared by producers and consumers,
//! topic creation, a readiness probe, and the embedded broker used when no
//! `KAFKA_BROKERS` is given (local runs and tests).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::oneshot;

/// Command-line and environment settings for reaching Kafka.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,…). Without it an embedded
    /// in-process broker is started: fine for a local run, not for production.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// How long a produced event may wait for the broker's acknowledgement
    /// before the relay starts the batch over.
    #[arg(long = "kafka-delivery-timeout-ms", env = "KAFKA_DELIVERY_TIMEOUT_MS", default_value_t = 30_000)]
    pub delivery_timeout_ms: u64,
}

/// A reachable set of brokers, resolved from [`KafkaArgs`].
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    pub brokers: String,
    pub delivery_timeout: Duration,
}

impl KafkaSettings {
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaSettings { brokers: brokers.into(), delivery_timeout: Duration::from_secs(30) }
    }

    /// Settings every client shares.
    pub fn client_config(&self, client_id: &str) -> ClientConfig {
        let mut config = ClientConfig::new();
        config.set("bootstrap.servers", &self.brokers).set("client.id", client_id).set("log_level", "4");
        config
    }

    /// An idempotent, ordered producer: `acks=all`, and a gap in a partition's
    /// sequence is a fatal error instead of a silent reorder.
    pub fn producer_config(&self, client_id: &str) -> ClientConfig {
        let mut config = self.client_config(client_id);
        config
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("enable.gapless.guarantee", "true")
            .set("linger.ms", "1")
            .set("message.timeout.ms", self.delivery_timeout.as_millis().to_string());
        config
    }

    /// A consumer in `group_id` that starts at the beginning of a topic it has
    /// no position in and never commits on its own.
    pub fn consumer_config(&self, client_id: &str, group_id: &str) -> ClientConfig {
        let mut config = self.client_config(client_id);
        config
            .set("group.id", group_id)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("fetch.wait.max.ms", "10");
        config
    }

    /// Creates Agora's topics when they do not exist yet.
    pub async fn ensure_topics(&self) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            self.client_config("agora-admin").create().context("cannot create a Kafka admin client")?;
        let topics: Vec<NewTopic> = agora_schema::topics::ALL
            .iter()
            .map(|name| NewTopic::new(name, agora_schema::topics::DEFAULT_PARTITIONS, TopicReplication::Fixed(-1)))
            .collect();
        let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
        for result in admin.create_topics(&topics, &options).await.context("cannot create topics")? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((topic, code)) => return Err(anyhow!("cannot create topic {topic}: {code}")),
            }
        }
        Ok(())
    }
}

/// Answers whether the brokers can be reached, for `/readyz`.
#[derive(Clone)]
pub struct KafkaProbe {
    client: std::sync::Arc<BaseProducer>,
}

impl KafkaProbe {
    pub fn new(settings: &KafkaSettings, client_id: &str) -> anyhow::Result<Self> {
        let client: BaseProducer = settings.client_config(client_id).create().context("cannot create a Kafka client")?;
        Ok(KafkaProbe { client: std::sync::Arc::new(client) })
    }

    pub async fn reachable(&self, timeout: Duration) -> bool {
        let client = self.client.clone();
        tokio::task::spawn_blocking(move || {
            client
                .client()
                .fetch_metadata(Some(agora_schema::topics::USER), timeout)
                .is_ok_and(|metadata| metadata.brokers().iter().any(|_| true))
        })
        .await
        .unwrap_or(false)
    }
}

enum Command {
    BrokerDown(oneshot::Sender<anyhow::Result<()>>),
    BrokerUp(oneshot::Sender<anyhow::Result<()>>),
}

/// A Kafka-protocol broker running in this process (librdkafka's mock
/// cluster) on a loopback port, with Agora's topics created. It keeps
/// everything in memory and lives until dropped. The cluster is not `Send`,
/// so it runs on a thread of its own and is driven through a channel.
pub struct EmbeddedKafka {
    bootstrap_servers: String,
    commands: Option<mpsc::Sender<Command>>,
    thread: Option<thread::JoinHandle<()>>,
}

impl EmbeddedKafka {
    const BROKER_ID: i32 = 1;

    pub fn start() -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<String>>();
        let (commands_tx, commands_rx) = mpsc::channel::<Command>();
        let thread = thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match Self::create_cluster() {
                    Ok(cluster) => cluster,
                    Err(error) => {
                        let _ = ready_tx.send(Err(error));
                        return;
                    }
                };
                let _ = ready_tx.send(Ok(cluster.bootstrap_servers()));
                // Runs until every sender is gone (the handle was dropped).
                for command in commands_rx {
                    match command {
                        Command::BrokerDown(reply) => {
                            let _ = reply.send(cluster.broker_down(Self::BROKER_ID).map_err(Into::into));
                        }
                        Command::BrokerUp(reply) => {
                            let _ = reply.send(cluster.broker_up(Self::BROKER_ID).map_err(Into::into));
                        }
                    }
                }
            })
            .context("cannot start the embedded Kafka thread")?;
        let bootstrap_servers = ready_rx.recv().context("the embedded Kafka thread died")??;
        tracing::info!(%bootstrap_servers, "embedded Kafka broker started");
        Ok(EmbeddedKafka { bootstrap_servers, commands: Some(commands_tx), thread: Some(thread) })
    }

    fn create_cluster() -> anyhow::Result<MockCluster<'static, rdkafka::producer::DefaultProducerContext>> {
        let cluster = MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
        for topic in agora_schema::topics::ALL {
            cluster.create_topic(topic, agora_schema::topics::DEFAULT_PARTITIONS, 1)?;
        }
        Ok(cluster)
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }

    pub fn settings(&self) -> KafkaSettings {
        KafkaSettings::new(self.bootstrap_servers.clone())
    }

    /// Makes the broker unreachable (fault injection for tests).
    pub async fn broker_down(&self) -> anyhow::Result<()> {
        self.command(Command::BrokerDown).await
    }

    /// Brings the broker back after [`EmbeddedKafka::broker_down`].
    pub async fn broker_up(&self) -> anyhow::Result<()> {
        self.command(Command::BrokerUp).await
    }

    async fn command(&self, make: impl FnOnce(oneshot::Sender<anyhow::Result<()>>) -> Command) -> anyhow::Result<()> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.commands.as_ref().expect("running").send(make(reply_tx)).context("the embedded Kafka thread died")?;
        reply_rx.await.context("the embedded Kafka thread died")?
    }
}

impl Drop for EmbeddedKafka {
    fn drop(&mut self) {
        self.commands.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The brokers to use: `KAFKA_BROKERS` when set (topics are created there if
/// missing), otherwise a freshly started embedded broker, returned so the
/// caller keeps it alive.
pub async fn resolve(args: &KafkaArgs) -> anyhow::Result<(KafkaSettings, Option<EmbeddedKafka>)> {
    let delivery_timeout = Duration::from_millis(args.delivery_timeout_ms);
    match &args.brokers {
        Some(brokers) => {
            let settings = KafkaSettings { brokers: brokers.clone(), delivery_timeout };
            settings.ensure_topics().await?;
            Ok((settings, None))
        }
        None => {
            tracing::warn!("KAFKA_BROKERS is not set: starting an embedded in-memory broker (not for production)");
            let embedded = EmbeddedKafka::start()?;
            let settings = KafkaSettings { brokers: embedded.bootstrap_servers().to_owned(), delivery_timeout };
            Ok((settings, Some(embedded)))
        }
    }
}
