//! The integration tests, one binary (tests that start the real `axme` binary on
//! `127.0.0.1:0` with a fresh database each, and talk HTTP to it; a few embed the server as a
//! library). One module per family below. The SIGKILL crash tests are the `crash` binary and
//! the storage-fault tests `faults`: they run apart, each alone with the machine.

// Helpers shared by the families.
#[path = "../axp_support/mod.rs"]
mod axp_support;
#[path = "../claims_support/mod.rs"]
mod claims_support;
#[path = "../common/mod.rs"]
mod common;
#[path = "../inbox_support/mod.rs"]
mod inbox_support;
#[path = "../receiver/mod.rs"]
mod receiver;
#[path = "../sse_client/mod.rs"]
mod sse_client;
#[path = "../workflow_support/mod.rs"]
mod workflow_support;

// The families, one module each (its `//!` paragraph says what it covers).
mod agents;
mod api_errors;
mod api_http;
mod api_idempotency;
mod api_intents;
mod authz;
mod axme_compat;
mod claims;
mod claims_leases;
mod claims_regressions;
mod claims_restart;
mod claims_wait;
mod claims_workers;
mod cli;
mod cli_invite;
mod cli_scenarios;
mod clock_jumps;
mod deadlines;
mod feed;
mod firehose;
mod fuzz_inputs;
mod inbox;
mod inbox_events;
mod inbox_tasks;
mod internal;
mod keys;
mod lifecycle_http;
mod lifecycle_property;
mod limits;
mod long_poll;
mod mcp;
mod media;
mod metrics;
mod openapi;
mod payload_schemas;
mod people;
mod push_durability;
mod push_handler;
mod push_observers;
mod push_regressions;
mod push_retries;
mod redrive;
mod request_logs;
mod retention;
mod runtime_timers;
mod scenario_humans;
mod scenarios;
mod security;
mod service_accounts;
mod streams;
mod tidy;
mod ui;
mod workflows;
mod workflows_bindings;
