//! Helpers shared by the inbox-claim tests (`tests/claims*.rs`): claiming, acting on a claim,
//! reading an intent and its events, and the clock arithmetic lease assertions need. Timing
//! helpers poll the server; none of them sleeps to wait for readiness.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::common::{agent, intent_body, send, uuid, Resp, Server};

/// The longest any `eventually` waits: far beyond every lease the tests use.
pub const WAIT: Duration = Duration::from_secs(20);

/// What the helpers need of a server: the test's own [`Server`], or a [`Remote`] handle to it
/// that worker threads can own.
pub trait Api {
    fn post(&self, path: &str, body: &Value) -> Resp;
    fn get(&self, path: &str) -> Resp;
}

impl Api for Server {
    fn post(&self, path: &str, body: &Value) -> Resp {
        Server::post(self, path, body)
    }
    fn get(&self, path: &str) -> Resp {
        Server::get(self, path)
    }
}

/// A handle on a running server that can be cloned into threads (a [`Server`] cannot: it owns
/// the child process).
#[derive(Debug, Clone)]
pub struct Remote {
    base: String,
    api_key: String,
}

impl Remote {
    pub fn of(s: &Server) -> Remote {
        Remote {
            base: s.base.clone(),
            api_key: s.api_key.clone(),
        }
    }
}

impl Api for Remote {
    fn post(&self, path: &str, body: &Value) -> Resp {
        let req = agent()
            .post(&format!("{}{path}", self.base))
            .set("x-api-key", &self.api_key);
        send(req, Some(body.to_string()))
    }
    fn get(&self, path: &str) -> Resp {
        let req = agent()
            .get(&format!("{}{path}", self.base))
            .set("x-api-key", &self.api_key);
        send(req, None)
    }
}

/// A fresh inbox address for one test.
pub fn inbox(name: &str) -> String {
    format!("agent://inbox/{name}-{}", &uuid()[..8])
}

/// A fresh server with one intent waiting in a fresh inbox: (server, inbox address, intent id).
pub fn with_one_intent(name: &str) -> (Server, String, String) {
    let s = Server::start();
    let to = inbox(name);
    let id = s.create_intent(&to);
    (s, to, id)
}

/// The address as it goes in a path: without its `agent://` prefix.
pub fn bare(address: &str) -> &str {
    address.strip_prefix("agent://").unwrap_or(address)
}

pub fn claim_path(address: &str) -> String {
    format!("/v1/agents/{}/inbox/claim", bare(address))
}

/// `POST .../inbox/claim` with `body`, whatever comes back.
pub fn claim_raw(s: &impl Api, address: &str, body: Value) -> Resp {
    s.post(&claim_path(address), &body)
}

/// Claims and returns the claims, asserting success.
pub fn claim(s: &impl Api, address: &str, body: Value) -> Vec<Value> {
    let r = claim_raw(s, address, body);
    assert_eq!(r.status, 200, "claim: {}", r.text);
    assert_eq!(r.json["ok"], true, "{}", r.text);
    r.json["claims"].as_array().expect("claims").clone()
}

/// Claims exactly one intent and returns its claim.
pub fn claim_one(s: &impl Api, address: &str, body: Value) -> Value {
    let mut got = claim(s, address, body);
    assert_eq!(got.len(), 1, "expected one claim: {got:?}");
    got.remove(0)
}

pub fn token(claim: &Value) -> &str {
    claim["lease_token"].as_str().expect("lease_token")
}

pub fn claimed_id(claim: &Value) -> &str {
    claim["intent"]["intent_id"].as_str().expect("intent_id")
}

/// `POST /v1/claims/{token}/{action}`.
pub fn act(s: &impl Api, token: &str, action: &str, body: Value) -> Resp {
    s.post(&format!("/v1/claims/{token}/{action}"), &body)
}

pub fn ack(s: &impl Api, token: &str, body: Value) -> Resp {
    act(s, token, "ack", body)
}

pub fn nack(s: &impl Api, token: &str, body: Value) -> Resp {
    act(s, token, "nack", body)
}

pub fn extend(s: &impl Api, token: &str, lease_seconds: i64) -> Resp {
    act(
        s,
        token,
        "extend",
        json!({ "lease_seconds": lease_seconds }),
    )
}

/// A POST without any body.
pub fn post_empty(s: &Server, path: &str) -> Resp {
    send(s.req("POST", path), None)
}

pub fn assert_ok(r: &Resp) {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ok"], true, "{}", r.text);
}

/// Asserts a 409 `lease_lost`.
pub fn assert_lease_lost(r: &Resp) {
    assert_eq!(r.status, 409, "{}", r.text);
    assert_eq!(r.code(), "lease_lost", "{}", r.text);
}

/// Asserts a 422 naming `field`.
pub fn assert_invalid(r: &Resp, field: &str) {
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.field(), field, "{}", r.text);
}

/// Registers an inbox agent with extra fields (`lease_seconds`, `max_delivery_attempts`).
pub fn register_inbox(s: &impl Api, address: &str, extra: Value) {
    let mut body = json!({"address": address, "delivery_mode": "inbox"});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = s.post("/v1/agents", &body);
    assert_eq!(r.status, 200, "register {address}: {}", r.text);
}

/// Creates `n` intents to `address`, in order, and returns their ids.
pub fn create_n(s: &impl Api, address: &str, n: usize) -> Vec<String> {
    (0..n).map(|_| create_with(s, address, json!({}))).collect()
}

/// Creates an intent with extra fields (e.g. `max_delivery_attempts`).
pub fn create_with(s: &impl Api, address: &str, extra: Value) -> String {
    let mut body = intent_body(address);
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "create: {}", r.text);
    r.json["intent_id"].as_str().expect("intent_id").to_string()
}

pub fn intent(s: &impl Api, id: &str) -> Value {
    let r = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent"].clone()
}

pub fn events(s: &impl Api, id: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["events"].as_array().expect("events").clone()
}

pub fn event_types(s: &impl Api, id: &str) -> Vec<String> {
    events(s, id)
        .iter()
        .map(|e| e["event_type"].as_str().expect("event_type").to_string())
        .collect()
}

/// The events of one type, in order.
pub fn events_of(s: &impl Api, id: &str, event_type: &str) -> Vec<Value> {
    events(s, id)
        .into_iter()
        .filter(|e| e["event_type"] == event_type)
        .collect()
}

/// Polls `f` every 20 ms until it returns `Some`, or fails with `what` after [`WAIT`].
pub fn eventually<T>(what: &str, f: impl FnMut() -> Option<T>) -> T {
    crate::common::poll_until(WAIT, what, f)
}

pub fn wait_status(s: &impl Api, id: &str, status: &str) -> Value {
    eventually(&format!("intent {id} to be {status}"), || {
        let i = intent(s, id);
        (i["status"] == status).then_some(i)
    })
}

/// Claims (without waiting) until something comes back; returns the claim and when it came.
pub fn claim_when_ready(s: &impl Api, address: &str, body: Value) -> (Value, Instant) {
    eventually(&format!("a claim of {address}"), || {
        let mut got = claim(s, address, body.clone());
        assert!(got.len() <= 1, "{got:?}");
        got.pop().map(|c| (c, Instant::now()))
    })
}

/// Parses an RFC 3339 timestamp of the server.
pub fn parse_time(s: &Value) -> OffsetDateTime {
    let text = s.as_str().unwrap_or_else(|| panic!("a timestamp: {s}"));
    OffsetDateTime::parse(text, &Rfc3339).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Seconds from now (this machine's clock, the server's too) to the timestamp `s`.
pub fn secs_from_now(s: &Value) -> f64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64();
    parse_time(s).unix_timestamp_nanos() as f64 / 1e9 - now
}

/// Asserts that a claim's lease ends about `seconds` from now (it was just taken).
pub fn assert_lease_about(claim: &Value, seconds: f64) {
    let left = secs_from_now(&claim["lease_expires_at"]);
    assert!(
        left > seconds - 3.0 && left <= seconds + 0.05,
        "lease ends in {left:.3}s, expected about {seconds}s: {claim}"
    );
}
