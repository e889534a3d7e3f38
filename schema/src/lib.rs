//! The contracts between Agora's parts: what travels on Kafka (topics, the
//! event envelope and every event type), what a service tells the gateway
//! about its writes (receipts, `extensions.writes`), what two parts must
//! agree on to answer the same query the same way (post cursors and the
//! paging rules), and the rules of the text inputs every part checks.
//!
//! Nothing here does I/O; every part depends on this crate, so it stays small.

pub mod cursor;
pub mod events;
pub mod json_schema;
pub mod paging;
pub mod receipts;
pub mod rules;
pub mod topics;

pub use cursor::{InvalidCursor, PostCursor};
pub use events::{Envelope, Event, EventDecodeError, PointsAwarded, PostCreated, UserRegistered, UserRenamed};
