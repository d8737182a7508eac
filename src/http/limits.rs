//! Limits on what one key may hold or ask for: a request rate per agent key (token bucket, with
//! `X-RateLimit-*` headers and 429 `Retry-After`), and open streams per agent key. Admin keys
//! are the operator's and are not rate-limited (the global caps still hold for them).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hyper::header::{HeaderMap, HeaderValue};

use crate::Error;

/// A token bucket per key: `rate` requests a second on average, bursts up to `burst`.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<String, Bucket>>,
}

struct Bucket {
    tokens: f64,
    at: Instant,
}

/// What the limiter said about one request, for the response headers.
#[derive(Debug, Clone, Copy)]
pub struct Quota {
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the bucket is full again.
    pub reset: u64,
}

impl RateLimiter {
    /// `rate` 0 turns the limiter off.
    pub fn new(rate: u64) -> RateLimiter {
        RateLimiter {
            rate: rate as f64,
            burst: (rate * 2).max(1) as f64,
            buckets: Mutex::new(HashMap::new()),
        }
    }

    pub fn enabled(&self) -> bool {
        self.rate > 0.0
    }

    /// Takes one token for `key_id`, or says how long to wait (429).
    pub fn take(&self, key_id: &str) -> Result<Quota, Error> {
        let now = Instant::now();
        let mut map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if map.len() > 100_000 {
            // Revoked and idle keys' buckets: full ones carry no state worth keeping.
            let (rate, burst) = (self.rate, self.burst);
            map.retain(|_, b| b.tokens + now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = map.entry(key_id.to_string()).or_insert(Bucket {
            tokens: self.burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * self.rate).min(self.burst);
        b.at = now;
        let reset = ((self.burst - b.tokens) / self.rate).ceil() as u64;
        if b.tokens < 1.0 {
            let wait = ((1.0 - b.tokens) / self.rate).ceil().max(1.0) as u64;
            return Err(Error::RateLimited {
                limit: self.rate as u64,
                retry_after: wait,
            });
        }
        b.tokens -= 1.0;
        Ok(Quota {
            limit: self.rate as u64,
            remaining: b.tokens.floor() as u64,
            reset,
        })
    }
}

/// Adds the `X-RateLimit-*` headers of a quota.
pub fn quota_headers(h: &mut HeaderMap, q: Quota) {
    for (name, v) in [
        ("x-ratelimit-limit", q.limit),
        ("x-ratelimit-remaining", q.remaining),
        ("x-ratelimit-reset", q.reset),
    ] {
        h.insert(name, HeaderValue::from(v));
    }
}

/// Open streams per key, under a cap.
#[derive(Default)]
pub struct PerKey {
    held: Mutex<HashMap<String, usize>>,
}

/// A key's place under its cap; released when dropped.
pub struct KeySlot {
    owner: Arc<PerKey>,
    key_id: String,
}

impl PerKey {
    /// Takes a place for `key_id` if it holds fewer than `max`; otherwise 429.
    pub fn acquire(
        self: &Arc<Self>,
        key_id: &str,
        max: usize,
        what: &str,
    ) -> Result<KeySlot, Error> {
        let mut held = self
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = held.entry(key_id.to_string()).or_insert(0);
        if *n >= max {
            return Err(Error::TooMany {
                reason: format!(
                    "this key already holds {max} open {what}, its limit; close one first"
                ),
            });
        }
        *n += 1;
        Ok(KeySlot {
            owner: self.clone(),
            key_id: key_id.to_string(),
        })
    }
}

impl Drop for KeySlot {
    fn drop(&mut self) {
        let mut held = self
            .owner
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = held.get_mut(&self.key_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.key_id);
            }
        }
    }
}

/// How deep a JSON body may nest (objects and arrays).
pub const MAX_JSON_DEPTH: usize = 32;

/// The nesting depth of a JSON value (a scalar is 0).
pub fn depth(v: &serde_json::Value) -> usize {
    match v {
        serde_json::Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        serde_json::Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Longest request target (path and query) accepted.
pub const MAX_URI_BYTES: usize = 8 * 1024;

/// The largest JSON body of a route that carries no intent payload.
pub const SMALL_BODY_BYTES: usize = 64 * 1024;

/// How long to wait for a full request head (slowloris).
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Largest request head (request line and headers); more is 431.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// The size of a request head as sent: request line and header lines with their CRLFs.
pub fn head_bytes(method: &hyper::Method, target: usize, headers: &HeaderMap) -> usize {
    let line = method.as_str().len() + 1 + target + " HTTP/1.1\r\n".len();
    headers
        .iter()
        .map(|(k, v)| k.as_str().len() + 2 + v.len() + 2)
        .sum::<usize>()
        + line
        + 2
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_refuses_with_a_wait() {
        let l = RateLimiter::new(5);
        for _ in 0..10 {
            l.take("k").expect("within the burst");
        }
        match l.take("k") {
            Err(Error::RateLimited { limit, retry_after }) => {
                assert_eq!(limit, 5);
                assert!(retry_after >= 1);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // Another key has its own bucket.
        assert!(l.take("other").is_ok());
    }

    #[test]
    fn per_key_slots_are_released_on_drop() {
        let p = Arc::new(PerKey::default());
        let a = p.acquire("k", 2, "streams").unwrap();
        let _b = p.acquire("k", 2, "streams").unwrap();
        assert!(p.acquire("k", 2, "streams").is_err());
        drop(a);
        assert!(p.acquire("k", 2, "streams").is_ok());
    }

    #[test]
    fn depth_counts_nesting() {
        assert_eq!(depth(&serde_json::json!(1)), 0);
        assert_eq!(depth(&serde_json::json!({"a": [1, {"b": []}]})), 4);
    }
}
