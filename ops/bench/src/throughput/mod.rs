//! Queries per second: the gateway's read-model strategy (each executor,
//! with and without its response cache, logged in, as a persisted GET) and
//! its composition strategy, three federation gateways on a supergraph
//! composed offline from the same two subgraphs, and the SQL ceiling, each
//! checked for errors and for the same data before it is timed; then the
//! mixed workload (reads while commands change the data).

mod ceiling;
mod gateway;
mod measure;
mod mixed;
mod peers;

use std::sync::Arc;

use serde::{Deserialize, Serialize};

pub use self::ceiling::CEILING_SQL;
pub use self::measure::{Query, Series, Settings};
pub use self::mixed::MixedPoint;
use self::peers::{peer_list, run_peer, Peer, Supergraphs};
use crate::dataset::BenchUser;
use crate::system::System;

#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Outcome {
    pub series: Vec<Series>,
    /// Reads while commands run, by write rate and reader.
    #[serde(default)]
    pub mixed: Vec<MixedPoint>,
    pub notes: Vec<String>,
}

/// Every row, in the order above; `users` are the data set's (their tokens
/// log the readers in and sign the commands).
pub async fn run(system: &mut System, settings: &Settings, users: &Arc<Vec<BenchUser>>) -> anyhow::Result<Outcome> {
    let mut outcome = Outcome::default();
    let token = &users.first().ok_or_else(|| anyhow::anyhow!("the data set has no users"))?.token;
    let reference = gateway::reference(system).await?;
    outcome.series = gateway::strategies(system, settings, &reference, &mut outcome.notes).await?;
    outcome.series.push(gateway::logged_in(system, settings, token, &reference).await?);
    match gateway::persisted_get(system, settings, &reference).await {
        Ok(series) => outcome.series.push(series),
        Err(error) => outcome.notes.push(format!("The persisted-query GET was not measured: {error:#}")),
    }

    // The federation gateways, on a supergraph of the same two subgraphs.
    let peers = peer_list(settings, &mut outcome.notes);
    let mut supergraphs = None;
    if !peers.is_empty() {
        match Supergraphs::compose(system, settings).await {
            Ok(composed) => {
                for peer in peers {
                    let headers = match peer {
                        Peer::HiveRouterLoggedIn => vec![("authorization".to_owned(), format!("Bearer {token}"))],
                        _ => vec![],
                    };
                    match run_peer(system, settings, &composed, peer, headers, &reference).await {
                        Ok(mut series) => outcome.series.append(&mut series),
                        Err(error) => {
                            let note = format!("{} was not measured: {error:#}", peer.label());
                            eprintln!("  {note}");
                            outcome.notes.push(note);
                        }
                    }
                }
                supergraphs = Some(composed);
            }
            Err(error) => {
                let note = format!("no supergraph, so no federation gateway was measured: {error:#}");
                eprintln!("  {note}");
                outcome.notes.push(note);
            }
        }
    }

    outcome.series.push(ceiling::run(system, settings, &mut outcome.notes).await?);

    // Last: the commands change the data every row above compared.
    if !settings.mixed_write_rates.is_empty() {
        println!("  mixed workload: reads at c={} while commands run…", settings.headline);
        match mixed::run(system, settings, users, supergraphs.as_ref(), &mut outcome.notes).await {
            Ok(points) => outcome.mixed = points,
            Err(error) => {
                let note = format!("The mixed workload was not measured: {error:#}");
                eprintln!("  {note}");
                outcome.notes.push(note);
            }
        }
    }
    Ok(outcome)
}
