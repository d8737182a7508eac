//! The domain: lifecycle rules, intent operations, request checking, keys and idempotency.
//! It stands between `http` (which only parses and renders) and `store` (which only stores):
//! it never imports hyper, and never writes SQL itself.

pub(crate) mod access;
pub mod agents;
pub(crate) mod auth;
pub mod claims;
pub(crate) mod cleanup;
pub(crate) mod controls;
pub(crate) mod deliveries;
pub mod effects;
pub(crate) mod feed;
pub mod history;
pub(crate) mod idempotency;
pub mod inbox;
pub(crate) mod inbox_view;
pub mod intents;
pub mod keys;
pub(crate) mod lifecycle;
pub(crate) mod operator;
pub(crate) mod outbox;
pub(crate) mod push_targets;
pub mod requests;
pub mod resume;
pub mod retention;
pub(crate) mod retry;
pub mod scenario_fields;
pub(crate) mod scenarios;
pub(crate) mod schedule;
pub(crate) mod service_accounts;
pub mod subscriptions;
pub(crate) mod thread_hooks;
pub(crate) mod timers;
pub mod validate;
pub mod workflow;
pub mod workflow_steps;
