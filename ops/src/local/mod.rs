//! What `agora-local` needs besides the services: a private PostgreSQL when
//! none answers ([`postgres`]), and demo data through the public API
//! ([`seed`]).

pub mod postgres;
pub mod seed;
