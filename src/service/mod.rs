//! The domain: lifecycle rules, intent operations, request checking, keys and idempotency.
//! It stands between `http` (which only parses and renders) and `store` (which only stores):
//! it never imports hyper, and never writes SQL itself.

pub mod access;
pub mod agents;
pub mod auth;
pub mod claims;
pub mod cleanup;
pub mod deliveries;
pub mod feed;
pub mod idempotency;
pub mod inbox;
pub mod intents;
pub mod keys;
pub mod lifecycle;
pub mod requests;
pub mod retention;
pub mod service_accounts;
pub mod subscriptions;
pub mod timers;
pub mod validate;
