//! The Kafka connection: client settings shared by producers and consumers,
//! topic creation, a readiness probe, a probe that tells whether a log still
//! holds what was read from or written to it, and the embedded broker used
//! when no `KAFKA_BROKERS` is given (local runs and tests).

use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::mocking::MockCluster;
use rdkafka::producer::{BaseProducer, Producer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Message, Offset, TopicPartitionList};
use tokio::sync::oneshot;
use uuid::Uuid;

/// Command-line and environment settings for reaching Kafka.
#[derive(Debug, Clone, clap::Args)]
pub struct KafkaArgs {
    /// Kafka bootstrap servers (host:port,…). Without it an embedded
    /// in-process broker is started: fine for a local run, not for production.
    #[arg(long = "kafka-brokers", env = "KAFKA_BROKERS")]
    pub brokers: Option<String>,
    /// How long a produced event may wait for the broker's acknowledgement
    /// before the relay starts the batch over.
    #[arg(
        long = "kafka-delivery-timeout-ms",
        env = "KAFKA_DELIVERY_TIMEOUT_MS",
        value_name = "MILLISECONDS",
        default_value = "30000",
        value_parser = crate::config::milliseconds
    )]
    pub delivery_timeout: Duration,
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
    /// no position in and never commits on its own. It heartbeats every
    /// second (Kafka's default is three): a member learns of a rebalance at
    /// its next heartbeat, and until every member has rejoined no partition
    /// of the group is consumed, so a replica joining or leaving stalls the
    /// projection for about one heartbeat rather than three.
    pub fn consumer_config(&self, client_id: &str, group_id: &str) -> ClientConfig {
        let mut config = self.client_config(client_id);
        config
            .set("group.id", group_id)
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("enable.partition.eof", "false")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
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

/// What a log says of a position someone recorded in it: the offset of an
/// event they read or wrote, with the event's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogVerdict {
    /// The log holds that event at that offset: the position belongs to it.
    Holds,
    /// The offset is older than what the log retains: nothing to compare,
    /// and nothing contradicts the position either.
    Retained,
    /// The log is not the one the position came from (it was recreated,
    /// or the cluster replaced): the position must not be used.
    Foreign(String),
}

/// Checks recorded positions against the log they claim to come from. A
/// Kafka offset alone says nothing about which log it belongs to: a topic
/// recreated on a new cluster reuses every offset. The event recorded at an
/// offset does: it is compared with what the log holds there now.
pub struct LogProbe {
    consumer: BaseConsumer,
    timeout: Duration,
}

impl LogProbe {
    pub fn new(settings: &KafkaSettings, client_id: &str) -> anyhow::Result<Self> {
        // Partitions are assigned, never subscribed: the group is never joined.
        let group = format!("agora-log-probe-{}", Uuid::now_v7().simple());
        let consumer: BaseConsumer =
            settings.consumer_config(client_id, &group).create().context("cannot create the log probe's consumer")?;
        Ok(LogProbe { consumer, timeout: Duration::from_secs(10) })
    }

    /// The offsets of a partition's first retained and next message.
    /// Blocking: call it from a blocking thread.
    pub fn watermarks(&self, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
        self.consumer
            .fetch_watermarks(topic, partition, self.timeout)
            .with_context(|| format!("cannot read the watermarks of {topic}/{partition}"))
    }

    /// Every partition of `topics` with its watermarks (first retained and
    /// next offset). Blocking.
    pub fn extents(&self, topics: &[&str]) -> anyhow::Result<Vec<((String, i32), i64, i64)>> {
        let mut extents = Vec::new();
        for &topic in topics {
            let metadata =
                self.consumer.fetch_metadata(Some(topic), self.timeout).with_context(|| format!("no metadata for {topic}"))?;
            for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
                let (low, high) = self.watermarks(topic, partition.id())?;
                extents.push(((topic.to_owned(), partition.id()), low, high));
            }
        }
        Ok(extents)
    }

    /// Whether the log holds the event `event_id` at `offset` (`None`: the
    /// event is unknown, only the log's extent can be compared). Blocking.
    pub fn verify(&self, topic: &str, partition: i32, offset: i64, event_id: Option<Uuid>) -> anyhow::Result<LogVerdict> {
        let (low, high) = self.watermarks(topic, partition)?;
        if offset >= high {
            return Ok(LogVerdict::Foreign(format!(
                "{topic}/{partition} has no offset {offset}: its log ends before it (next offset {high})"
            )));
        }
        let Some(event_id) = event_id else { return Ok(LogVerdict::Retained) };
        if offset < low {
            return Ok(LogVerdict::Retained);
        }
        let found = self.read_at(topic, partition, offset, |message| {
            message.payload().and_then(|payload| agora_schema::Envelope::from_slice(payload).ok()).map(|e| e.event_id)
        })?;
        match found.flatten() {
            Some(found) if found == event_id => Ok(LogVerdict::Holds),
            found => Ok(LogVerdict::Foreign(format!(
                "{topic}/{partition} holds {} at offset {offset}, not the recorded event {event_id}",
                found.map_or_else(|| "another message".to_owned(), |id| format!("event {id}"))
            ))),
        }
    }

    /// When the message at `offset` was put on the log (its timestamp, in
    /// milliseconds since the epoch); `None` when it has no timestamp, or
    /// the log no longer holds that offset. Blocking.
    pub fn timestamp_at(&self, topic: &str, partition: i32, offset: i64) -> anyhow::Result<Option<i64>> {
        let found = self.read_at(topic, partition, offset, |message| message.timestamp().to_millis())?;
        Ok(found.flatten())
    }

    /// Reads the message at `offset` and returns what `read` takes from it
    /// (`None`: the log moved past the offset, `read` was given nothing).
    fn read_at<T>(
        &self,
        topic: &str,
        partition: i32,
        offset: i64,
        read: impl Fn(&rdkafka::message::BorrowedMessage<'_>) -> T,
    ) -> anyhow::Result<Option<T>> {
        let mut assignment = TopicPartitionList::new();
        assignment.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        self.consumer.assign(&assignment).context("cannot assign the probed partition")?;
        let deadline = std::time::Instant::now() + self.timeout;
        let found = loop {
            let remaining = deadline.saturating_duration_since(std::time::Instant::now());
            if remaining.is_zero() {
                anyhow::bail!("{topic}/{partition} did not return offset {offset} in time");
            }
            match self.consumer.poll(remaining) {
                Some(Ok(message)) if message.offset() == offset => break Some(read(&message)),
                // The log moved past the offset (it was compacted away): another message.
                Some(Ok(message)) if message.offset() > offset => break None,
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error).context("cannot read the probed offset"),
                None => {}
            }
        };
        self.consumer.unassign().context("cannot release the probed partition")?;
        Ok(found)
    }
}

/// Where a reader that is not positioned by a stored position starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Beginning,
    End,
}

/// Assigns every partition of `topics` to `consumer` (no group is joined),
/// at the beginning or the current end of each, and returns the assignment.
/// Blocking.
pub fn assign_all<C: Consumer<impl rdkafka::consumer::ConsumerContext>>(
    consumer: &C,
    topics: &[&str],
    start: Start,
) -> anyhow::Result<TopicPartitionList> {
    let timeout = Duration::from_secs(10);
    let mut assignment = TopicPartitionList::new();
    for &topic in topics {
        let metadata = consumer.fetch_metadata(Some(topic), timeout).with_context(|| format!("no metadata for {topic}"))?;
        for partition in metadata.topics().iter().flat_map(|topic| topic.partitions()) {
            let offset = match start {
                Start::Beginning => Offset::Beginning,
                Start::End => Offset::Offset(consumer.fetch_watermarks(topic, partition.id(), timeout)?.1),
            };
            assignment.add_partition_offset(topic, partition.id(), offset)?;
        }
    }
    consumer.assign(&assignment).context("cannot assign the partitions")?;
    Ok(assignment)
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
        Self::start_with_partitions(agora_schema::topics::DEFAULT_PARTITIONS)
    }

    /// A broker whose topics have `partitions` partitions each. The mock
    /// cluster keeps at most 5 MiB or 100,000 messages per partition (fixed
    /// in librdkafka) and drops the oldest beyond that: more partitions hold
    /// more of a topic, which a replay of everything (the benchmark's
    /// rebuild) needs.
    pub fn start_with_partitions(partitions: i32) -> anyhow::Result<Self> {
        let (ready_tx, ready_rx) = mpsc::channel::<anyhow::Result<String>>();
        let (commands_tx, commands_rx) = mpsc::channel::<Command>();
        let thread = thread::Builder::new()
            .name("embedded-kafka".into())
            .spawn(move || {
                let cluster = match Self::create_cluster(partitions) {
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

    fn create_cluster(partitions: i32) -> anyhow::Result<MockCluster<'static, rdkafka::producer::DefaultProducerContext>> {
        let cluster = MockCluster::new(1).context("cannot start the mock Kafka cluster")?;
        for topic in agora_schema::topics::ALL {
            cluster.create_topic(topic, partitions, 1)?;
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
    let delivery_timeout = args.delivery_timeout;
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
