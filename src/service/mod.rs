//! The domain: lifecycle rules, intent operations, request checking, keys and idempotency.
//! It stands between `http` (which only parses and renders) and `store` (which only stores):
//! it never imports hyper, and never writes SQL itself.

pub mod access;
pub mod agents;
pub mod auth;
pub mod claims;
pub mod cleanup;
pub mod controls;
pub mod deliveries;
pub mod effects;
pub mod feed;
pub mod history;
pub mod idempotency;
pub mod inbox;
pub mod inbox_view;
pub mod intents;
pub mod keys;
pub mod lifecycle;
pub mod operator;
pub mod outbox;
pub mod push_targets;
pub mod requests;
pub mod resume;
pub mod retention;
pub mod retry;
pub mod scenario_fields;
pub mod scenarios;
pub mod schedule;
pub mod service_accounts;
pub mod subscriptions;
pub mod thread_hooks;
pub mod timers;
pub mod validate;
pub mod workflow;
pub mod workflow_steps;
