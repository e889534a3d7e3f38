//! Operations tooling shared by the `agora-ops` binaries and the chaos
//! suite: reconciliation of the write models, the read model, the outboxes
//! and the topics of a running system, and one service run as a process of
//! its own.

pub mod reconcile;
pub mod service;
