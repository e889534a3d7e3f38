//! The read model: tables built from events by the projector, and the
//! queries that answer the public API from them (no service is called).

pub mod queries;

pub use queries::{PostRecord, UserRecord};
