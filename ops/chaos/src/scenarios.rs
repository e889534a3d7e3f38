//! The faults, one per scenario, applied to a running [`System`] while the
//! load runs.

use std::time::Duration;

use agora_ops::reconcile::read_topic;
use anyhow::Context;
use rand::seq::SliceRandom;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::ClientConfig;

use crate::load::Load;
use crate::system::System;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scenario {
    /// No fault: the baseline.
    Steady,
    /// kill -9 of one process, restarted after a pause.
    Kill(&'static str),
    /// The broker frozen (SIGSTOP) for a while, then SIGCONT.
    BrokerFrozen,
    /// PostgreSQL stopped with `-m immediate`, started again (crash recovery).
    PostgresCrash,
    /// A third gateway joins the projector's group mid-load, then leaves.
    Rebalance,
    /// Already-published events published again, shuffled across topics.
    DuplicateReorder,
    /// agora-local stopped with SIGINT and started again on the same databases.
    FullRestart,
}

/// How long each fault lasts.
#[derive(Debug, Clone, Copy)]
pub struct Timings {
    /// Between a kill or crash and the restart.
    pub pause: Duration,
    pub broker_frozen: Duration,
    /// How long the third gateway stays.
    pub rebalance_stay: Duration,
    /// How many of each topic's latest events are published again.
    pub republish: usize,
}

impl Scenario {
    pub fn name(&self) -> String {
        match self {
            Scenario::Steady => "steady load, no fault".into(),
            Scenario::Kill(name) => format!("kill -9 {name}, restart"),
            Scenario::BrokerFrozen => "broker frozen (SIGSTOP … SIGCONT)".into(),
            Scenario::PostgresCrash => "PostgreSQL crash (stop -m immediate), recovery".into(),
            Scenario::Rebalance => "rebalance: gateway-3 joins, leaves".into(),
            Scenario::DuplicateReorder => "duplicated + reordered delivery".into(),
            Scenario::FullRestart => "full restart of agora-local (SIGINT, start)".into(),
        }
    }

    /// Parses `steady`, `kill-auth`, `kill-post`, `kill-gateway-1`,
    /// `kill-gateway-2`, `broker`, `postgres`, `rebalance`, `duplicates`, `restart`.
    pub fn parse(text: &str) -> anyhow::Result<Scenario> {
        Ok(match text {
            "steady" => Scenario::Steady,
            "kill-auth" => Scenario::Kill("auth-service"),
            "kill-post" => Scenario::Kill("post-service"),
            "kill-gateway-1" => Scenario::Kill("gateway-1"),
            "kill-gateway-2" => Scenario::Kill("gateway-2"),
            "broker" => Scenario::BrokerFrozen,
            "postgres" => Scenario::PostgresCrash,
            "rebalance" => Scenario::Rebalance,
            "duplicates" => Scenario::DuplicateReorder,
            "restart" => Scenario::FullRestart,
            other => anyhow::bail!("unknown scenario {other:?}"),
        })
    }

    /// Every scenario, in the order the full run takes them.
    pub fn all() -> Vec<Scenario> {
        vec![
            Scenario::Steady,
            Scenario::Kill("auth-service"),
            Scenario::Kill("post-service"),
            Scenario::Kill("gateway-1"),
            Scenario::Kill("gateway-2"),
            Scenario::BrokerFrozen,
            Scenario::PostgresCrash,
            Scenario::Rebalance,
            Scenario::DuplicateReorder,
            Scenario::FullRestart,
        ]
    }

    /// What to do before the load starts (the full restart first moves the
    /// system onto agora-local).
    pub async fn prepare(&self, system: &mut System) -> anyhow::Result<()> {
        if *self == Scenario::FullRestart && !system.local {
            system.switch_to_local().await?;
        }
        Ok(())
    }

    /// Applies the fault; a crash is timed to land on commands in flight.
    pub async fn inject(&self, system: &mut System, timings: &Timings, load: &Load) -> anyhow::Result<()> {
        let in_flight = Duration::from_secs(5);
        match self {
            Scenario::Steady => tokio::time::sleep(timings.pause).await,
            Scenario::Kill(name) => {
                load.wait_in_flight(2, in_flight).await;
                system.kill(name).await?;
                tokio::time::sleep(timings.pause).await;
                system.restart(name).await?;
            }
            Scenario::BrokerFrozen => {
                system.signal("broker", "STOP")?;
                tokio::time::sleep(timings.broker_frozen).await;
                system.signal("broker", "CONT")?;
            }
            Scenario::PostgresCrash => {
                load.wait_in_flight(2, in_flight).await;
                system.postgres.crash()?;
                tokio::time::sleep(timings.pause).await;
                system.postgres.pg_start()?;
            }
            Scenario::Rebalance => {
                system.add_gateway("gateway-3").await?;
                tokio::time::sleep(timings.rebalance_stay).await;
                system.stop("gateway-3", "TERM").await?;
            }
            Scenario::DuplicateReorder => republish(&system.brokers, timings.republish).await?,
            Scenario::FullRestart => {
                system.stop("agora-local", "INT").await?;
                tokio::time::sleep(timings.pause).await;
                system.restart("agora-local").await?;
            }
        }
        Ok(())
    }
}

/// Publishes the latest `per_topic` events of each event topic again, all
/// shuffled together, each on its own topic with its aggregate's key: older
/// versions arrive after newer ones, a post before its author, and so on.
async fn republish(brokers: &str, per_topic: usize) -> anyhow::Result<()> {
    let mut events = Vec::new();
    for topic in [agora_schema::topics::USER, agora_schema::topics::POST, agora_schema::topics::POINTS] {
        let read = read_topic(brokers, topic, Duration::from_secs(30)).await?;
        let skip = read.messages.len().saturating_sub(per_topic);
        events.extend(read.messages.into_iter().skip(skip));
    }
    events.shuffle(&mut rand::thread_rng());
    let producer: FutureProducer =
        ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "5").create().context("a Kafka producer")?;
    for event in &events {
        let key = event.envelope.aggregate_id.to_string();
        let payload = event.envelope.to_bytes();
        let header = rdkafka::message::Header { key: "event_type", value: Some(event.envelope.event_type.as_str()) };
        let record = FutureRecord::to(&event.topic)
            .key(&key)
            .payload(&payload)
            .headers(rdkafka::message::OwnedHeaders::new().insert(header));
        producer.send(record, Duration::from_secs(30)).await.map_err(|(error, _)| error).context("republishing")?;
    }
    Ok(())
}
