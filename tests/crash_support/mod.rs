//! What the two SIGKILL crash tests (tests/crash.rs, tests/crash_mixed.rs) share: the seeded
//! PRNG whose seed `AXME_CRASH_SEED` replays a run's schedule, a keep-alive HTTP agent, and a
//! short excerpt of a JSON value for failure messages.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::Value;

/// splitmix64: small and deterministic, enough to spread kill times, sizes and choices.
pub struct Rng(pub u64);

impl Rng {
    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (z ^ (z >> 31)) % n
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

/// `AXME_CRASH_SEED` (decimal or 0x-hex), or one taken from the clock.
pub fn base_seed() -> u64 {
    let Ok(s) = std::env::var("AXME_CRASH_SEED") else {
        let now = SystemTime::now().duration_since(UNIX_EPOCH);
        return now.map_or(1, |d| d.as_nanos() as u64);
    };
    let s = s.trim();
    match s.strip_prefix("0x") {
        Some(hex) => u64::from_str_radix(hex, 16),
        None => s.parse(),
    }
    .expect("AXME_CRASH_SEED must be a u64 (decimal or 0x-hex)")
}

/// A keep-alive agent with a timeout long enough for a loaded machine.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(15))
        .build()
}

/// The first 200 characters of `v` as JSON, and its length if it is longer.
pub fn excerpt(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(200) {
        Some((cut, _)) => format!("{}... ({} bytes)", &s[..cut], s.len()),
        None => s,
    }
}

/// The part of an intent's history every crash test checks: events numbered 1..=n without a gap
/// or a duplicate, all of intent `id`, the first two `intent.created` (CREATED) and
/// `intent.submitted` (SUBMITTED).
pub fn gap_free_from_creation(id: &str, events: &[Value]) -> Result<(), String> {
    if events.len() < 2 {
        return Err(format!(
            "{} event(s): {}",
            events.len(),
            excerpt(&Value::from(events.to_vec()))
        ));
    }
    for (k, e) in events.iter().enumerate() {
        if e["seq"] != k + 1 || e["intent_id"] != id {
            return Err(format!(
                "event {k} is {}, expected seq {}",
                excerpt(e),
                k + 1
            ));
        }
    }
    let first = [
        ("intent.created", "CREATED"),
        ("intent.submitted", "SUBMITTED"),
    ];
    for (e, (ty, st)) in events.iter().zip(first) {
        if e["event_type"] != ty || e["status"] != st {
            return Err(format!(
                "event {} is {} {}, expected {ty} {st}",
                e["seq"], e["event_type"], e["status"]
            ));
        }
    }
    Ok(())
}

/// Fails the test with the first 30 of `problems`, naming the seed that replays the run.
pub fn fail_if_any(problems: Vec<String>, seed: u64, label: &str) {
    if !problems.is_empty() {
        let shown: Vec<&str> = problems.iter().take(30).map(String::as_str).collect();
        panic!(
            "{label}: {} problem(s), AXME_CRASH_SEED={seed:#x}:\n  {}",
            problems.len(),
            shown.join("\n  ")
        );
    }
}
