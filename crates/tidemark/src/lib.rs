//! Tidemark: an embeddable Prometheus-compatible time-series database.
//!
//! This crate is the facade a Rust service embeds: it re-exports the
//! storage engine ([`storage`]), the PromQL engine ([`promql`]) and remote
//! write ([`remote`]).
#![deny(missing_docs)]

pub mod api;

pub use tidemark_promql as promql;
pub use tidemark_remote as remote;
pub use tidemark_storage as storage;

pub mod config;
pub mod metrics;
pub mod rules;
pub mod server;

mod instance;
pub use instance::{OpenError, Tidemark, TidemarkOptions};
pub mod web;
