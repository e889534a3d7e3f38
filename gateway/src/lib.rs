//! The gateway: Agora's public GraphQL API. Queries are answered from a CQRS
//! read model that the projector builds from Kafka events (or, on request,
//! by calling the services and merging in code); mutations are commands
//! sent to the owning service; read-your-writes is kept with consistency
//! tokens.

pub mod config;
pub mod consistency;
pub mod consistency_wait;
pub mod executor;
pub mod graphql;
pub mod http;
pub mod live;
pub mod projector;
pub mod read_model;
pub mod response_cache;
pub mod startup;
pub mod upstream;

pub use config::Config;
pub use startup::Application;
