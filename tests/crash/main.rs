//! The SIGKILL crash tests: the real binary killed under load, then every acknowledged write
//! checked after a restart. A binary of their own, so their load does not share the machine
//! with the integration tests.

#[allow(dead_code)] // shared with the integration binary; this one uses part of it
#[path = "../common/mod.rs"]
mod common;
#[path = "../crash_support/mod.rs"]
mod crash_support;

/// Creates under SIGKILL: every acknowledged intent is there with gap-free events.
mod creates;
/// Claims, acks, pushes and moves under SIGKILL.
mod mixed;
