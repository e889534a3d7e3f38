//! The chaos suite: Agora as separate processes on loopback (a private
//! PostgreSQL, the broker, auth-service, post-service, gateway replicas),
//! a steady mixed load from careful clients, subscribers, and one fault per
//! scenario; after each, a wait for quiet, reconciliation and a verdict.
//! See ops/chaos/README.md.

pub mod client;
pub mod feed;
pub mod load;
pub mod postgres;
pub mod procs;
pub mod report;
pub mod runner;
pub mod scenarios;
pub mod system;
pub mod verify;
