//! axme: a self-hosted, single-binary intent server, wire-compatible with the AXME public API.
//!
//! The crate is the server as a library: [`server::Server`] opens a database and serves the API
//! on a listener until a shutdown future resolves. See `ARCHITECTURE.md` for the module map.

#![forbid(unsafe_code)]

pub mod cli;
pub mod clock;
pub mod config;
mod delivery;
mod error;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod metrics;
pub mod model;
pub mod runtime;
pub mod server;
pub mod service;
pub mod store;
pub mod webhook;

pub use error::Error;
