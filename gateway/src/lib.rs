//! The gateway: Agora's public GraphQL API. Queries are answered from a CQRS
//! read model that the projector builds from Kafka events (or, on request,
//! by calling the services and merging in code); mutations are commands
//! sent to the owning service; read-your-writes is kept with consistency
//! tokens; subscriptions are fed from Kafka.
//!
//! The modules are stages, listed here in the order they depend on each
//! other: each uses only those above it.
//!
//! | stage | what |
//! |---|---|
//! | [`records`] | users, posts and round-trip counts; the read model's topics and channel (no I/O) |
//! | [`upstream`] | the services' subgraphs over HTTP |
//! | [`projector`] | Kafka -> read model |
//! | [`commands`] | command -> service, then wait for the read model (read-your-writes) |
//! | [`sources`] | read model -> query: the read model's SQL, or composition over the services |
//! | [`live`] | Kafka -> broadcast, once the read model shows each event |
//! | [`api`] | the GraphQL schema: queries, mutations, subscriptions, types |
//! | [`plan`] | compiled read-model queries: document -> template -> one SQL statement -> response bytes |
//! | [`pipeline`] | limits -> strategy -> response cache -> consistency token -> execute -> extensions |
//! | [`transport`] | HTTP and WebSocket at `/graphql`, GraphiQL; the one application state |
//! | [`config`] | flags and the environment |
//! | [`startup`] | assembles the stages and runs them |
//! | [`operations`] | what operators run besides: `rebuild`, `generations` |

pub mod records;

pub mod upstream;

pub mod commands;
pub mod projector;
pub mod sources;

pub mod live;

pub mod api;

pub mod plan;

pub mod pipeline;

pub mod transport;

pub mod config;
pub mod startup;

pub mod operations;

pub use config::Config;
pub use startup::Application;
