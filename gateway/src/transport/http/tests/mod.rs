//! The transport driven over real sockets: the router on 127.0.0.1:0 in
//! front of a tiny schema, as the gateway will serve it.

mod app;
mod audit;
mod playground;
mod support;
mod transport;
