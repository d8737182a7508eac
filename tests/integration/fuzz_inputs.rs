//! Fuzzing of everything that reads untrusted input before it reaches the store: the router, the
//! query-string decoder, the JSON body readers of every write endpoint and the field validators.
//! Each target gets a seed corpus of real inputs, then random mutations of them (bit flips,
//! byte insertions and deletions, splices, special characters, truncation) and randomly generated
//! JSON documents built from the field names the readers know, for a bounded time
//! (`AXME_FUZZ_SECS` per target, default 4). A target must never panic, and must answer every
//! input with a value or a precise `Error` (a rejected field is named). A failure prints the seed
//! and the input, so it replays.
//!
//! The same targets run under libFuzzer with `cargo fuzz` (see `fuzz/`), for longer searches
//! guided by coverage; this test keeps a bounded, dependency-free run in every CI build.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::{Duration, Instant};

use axme::fuzzing;
use axme::http::request::Query;
use axme::http::router;
use axme::service::{agents, claims, requests, resume, subscriptions, validate};
use axme::Error;
use serde_json::{json, Map, Value};

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

const SPECIAL: &[&str] = &[
    "%",
    "%2F",
    "%00",
    "%zz",
    "%C3%A9",
    "//",
    "/",
    "..",
    "*",
    "**",
    "?",
    "&",
    "=",
    "#",
    "\u{0}",
    "\u{FEFF}",
    "é",
    "😀",
    "agent://",
    "\\",
    "\"",
    "'",
    " ",
    "\t",
    "\n",
    "-1",
    "1e309",
    "99999999999999999999",
    "null",
    "{",
    "[",
    "]",
    "}",
];

fn mutate(rng: &mut Rng, input: &[u8], corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        match rng.below(7) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] ^= 1 << rng.below(8);
            }
            1 => {
                let i = rng.below(out.len() + 1);
                out.insert(i, rng.next() as u8);
            }
            2 if !out.is_empty() => {
                let i = rng.below(out.len());
                let n = 1 + rng.below(8.min(out.len() - i));
                out.drain(i..i + n);
            }
            3 => {
                let i = rng.below(out.len() + 1);
                let s = rng.pick(SPECIAL).as_bytes().to_vec();
                out.splice(i..i, s);
            }
            4 => {
                let other = rng.pick(corpus);
                let cut = rng.below(other.len() + 1);
                let at = rng.below(out.len() + 1);
                out.truncate(at);
                out.extend_from_slice(&other[cut..]);
            }
            5 => out.truncate(rng.below(out.len() + 1)),
            _ => {
                let dup = out.clone();
                out.extend_from_slice(&dup[..rng.below(dup.len() + 1)]);
            }
        }
    }
    out
}

const FIELDS: &[&str] = &[
    "intent_type",
    "correlation_id",
    "to_agent",
    "from_agent",
    "reply_to",
    "payload",
    "deadline_at",
    "remind_after_seconds",
    "remind_interval_seconds",
    "max_reminders",
    "escalate_to",
    "max_delivery_attempts",
    "human_task",
    "title",
    "description",
    "task_type",
    "allowed_outcomes",
    "required_comment",
    "assignees",
    "evidence_required",
    "form_schema",
    "status",
    "result",
    "error",
    "reason",
    "actor",
    "task_result",
    "outcome",
    "comment",
    "data",
    "waiting_reason",
    "details",
    "approve_current_step",
    "max",
    "lease_seconds",
    "wait_seconds",
    "delay_seconds",
    "address",
    "delivery_mode",
    "display_name",
    "webhook_url",
    "webhook_secret",
    "callback_url",
    "event_types",
    "secret",
    "active",
    "intent_id",
    "code",
    "message",
];

const STRINGS: &[&str] = &[
    "",
    "x",
    "agent://team/worker",
    "team/worker",
    "http://127.0.0.1:9/hook",
    "https://example.com/h",
    "file:///etc/passwd",
    "intent.ask.v1",
    "billing.invoice.v2",
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "WAITING",
    "IN_PROGRESS",
    "ACKNOWLEDGED",
    "WAITING_FOR_HUMAN",
    "http",
    "inbox",
    "internal",
    "push",
    "stream",
    "poll",
    "2030-01-01T00:00:00Z",
    "2030-13-45T99:99:99Z",
    "not a date",
    "0b8e9b4e-4c2f-4a35-9a0e-4f5d1f6a1c11",
    "0B8E9B4E-4C2F-4A35-9A0E-4F5D1F6A1C11",
    "whsec_AAAA",
    "intent.*",
    "inbox.thread_created",
    "approval",
    "é😀\u{0}",
];

fn gen_value(rng: &mut Rng, depth: usize) -> Value {
    match rng.below(if depth > 6 { 6 } else { 9 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 1),
        2 => json!(rng.next() as i64 % 100_000),
        3 => json!(*rng.pick(&[0.5, -1.0, 1e300, 3.0])),
        4 | 5 => json!(*rng.pick(STRINGS)),
        6 => json!("y".repeat(rng.below(3) * 200)),
        7 => Value::Array(
            (0..rng.below(4))
                .map(|_| gen_value(rng, depth + 1))
                .collect(),
        ),
        _ => gen_object(rng, depth + 1),
    }
}

fn gen_object(rng: &mut Rng, depth: usize) -> Value {
    let mut m = Map::new();
    for _ in 0..rng.below(7) {
        m.insert(rng.pick(FIELDS).to_string(), gen_value(rng, depth + 1));
    }
    Value::Object(m)
}

/// An input was answered with a value, or an error that says what was wrong.
fn check_answer<T>(input: &str, r: Result<T, Error>) {
    if let Err(e) = r {
        match &e {
            Error::Invalid { field, .. } | Error::BadRequest { field, .. } => {
                assert!(
                    !field.is_empty(),
                    "a rejection names no field for {input:?}: {e}"
                )
            }
            Error::Malformed { .. } | Error::TooLarge { .. } | Error::NotFound { .. } => {}
            other => panic!("unexpected kind of error {other:?} for {input:?}"),
        }
        assert!(!e.to_string().is_empty());
    }
}

fn budget() -> Duration {
    Duration::from_secs_f64(
        std::env::var("AXME_FUZZ_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(4.0),
    )
}

/// Runs `target` on the corpus, then on mutations for the time budget; reports the seed and
/// input of a panic.
fn fuzz(name: &str, seed: u64, corpus: &[&str], target: impl Fn(&[u8])) {
    let corpus: Vec<Vec<u8>> = corpus.iter().map(|s| s.as_bytes().to_vec()).collect();
    let mut rng = Rng(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    let mut input = corpus[0].clone();
    loop {
        let attempt = catch_unwind(AssertUnwindSafe(|| target(&input)));
        if attempt.is_err() {
            panic!(
                "{name}: input {:?} (seed {seed:#x}, run {runs}) panicked",
                String::from_utf8_lossy(&input)
            );
        }
        runs += 1;
        if (runs as usize) < corpus.len() {
            input = corpus[runs as usize].clone();
            continue;
        }
        if started.elapsed() > budget() {
            break;
        }
        let base = rng.pick(&corpus).clone();
        input = mutate(&mut rng, &base, &corpus);
    }
    eprintln!("{name}: {runs} inputs");
    assert!(runs > corpus.len() as u64, "{name} ran no mutations");
}

#[test]
fn the_router_answers_every_method_and_path() {
    let corpus = [
        "GET /v1/intents/0b8e9b4e-4c2f-4a35-9a0e-4f5d1f6a1c11/events/stream",
        "POST /v1/agents/team/billing/worker/inbox/claim",
        "GET /v1/agents/agent%3A%2F%2Fteam%2Fworker/intents",
        "DELETE /v1/webhooks/subscriptions/abc",
        "POST /v1/inbox/x/messages/delete",
        "PATCH /v1/intents",
        "GET /health",
        "GET /v1//intents/",
    ];
    fuzz("router", 0xa11ce, &corpus, |input| {
        let text = String::from_utf8_lossy(input);
        let (method, path) = text.split_once(' ').unwrap_or(("GET", &text));
        match router::route(method, path) {
            router::Matched::Found(_, params) => {
                for p in params {
                    assert!(
                        !p.is_empty() || path.contains("//"),
                        "an empty parameter from {path:?}"
                    );
                }
            }
            router::Matched::MethodNotAllowed(allow) => assert!(!allow.is_empty()),
            router::Matched::NotFound => {}
        }
    });
}

#[test]
fn the_query_decoder_answers_every_query_string() {
    let corpus = [
        "since=5&limit=10&wait_seconds=3",
        "owner_agent=agent%3A%2F%2Fa%2Fb&cursor=c_12",
        "a=%zz&b",
        "to_agent=team%2Fw&status=SUBMITTED&correlation_id=0b8e9b4e-4c2f-4a35-9a0e-4f5d1f6a1c11",
        "=&&==",
    ];
    fuzz("query", 0xbee, &corpus, |input| {
        let text = String::from_utf8_lossy(input);
        let r = Query::parse(Some(&text));
        if let Ok(q) = &r {
            for name in ["since", "limit", "wait_seconds", "cursor"] {
                check_answer(&text, q.int(name, 0, 1000));
            }
        }
        check_answer(&text, r);
    });
}

const BODIES: &[&str] = &[
    r#"{"intent_type":"intent.ask.v1","correlation_id":"0b8e9b4e-4c2f-4a35-9a0e-4f5d1f6a1c11","to_agent":"agent://w","payload":{"a":1},"human_task":{"title":"t","allowed_outcomes":["approve"]},"deadline_at":"2030-01-01T00:00:00Z"}"#,
    r#"{"status":"COMPLETED","result":{"ok":true}}"#,
    r#"{"status":"WAITING","waiting_reason":"WAITING_FOR_HUMAN"}"#,
    r#"{"task_result":{"outcome":"approve","comment":"c","data":{"evidence":[1]}}}"#,
    r#"{"max":3,"lease_seconds":30,"wait_seconds":0}"#,
    r#"{"address":"agent://w","delivery_mode":"http","webhook_url":"http://127.0.0.1:1/h"}"#,
    r#"{"callback_url":"https://example.com/h","event_types":["intent.*"],"intent_id":"0b8e9b4e-4c2f-4a35-9a0e-4f5d1f6a1c11"}"#,
    r#"[1,2,{"a":[[[[]]]]}]"#,
];

/// Every body reader of a write endpoint, on one JSON document.
fn read_bodies(text: &str, v: &Value) {
    check_answer(text, requests::create_intent(v, 1024));
    check_answer(text, requests::resolve(v));
    check_answer(text, resume::request(v));
    check_answer(text, requests::ack(v));
    check_answer(text, requests::progress(v));
    check_answer(text, claims::claim_request(v));
    check_answer(text, claims::ack_request(v));
    check_answer(text, claims::nack_request(v));
    check_answer(text, claims::extend_request(v));
    check_answer(text, agents::register_request(v));
    check_answer(text, subscriptions::upsert_request(v));
    check_answer(text, subscriptions::publish_request(v));
    check_answer(text, fuzzing::reply_body(v));
    check_answer(text, fuzzing::read_body(v));
    check_answer(text, fuzzing::delegate_body(v));
    check_answer(text, fuzzing::comment_body(v, 2000));
    check_answer(text, fuzzing::delete_messages_body(v));
    check_answer(text, fuzzing::decision_body(v));
    if let Some(s) = v.as_str() {
        check_answer(text, validate::address("address", s));
        check_answer(text, validate::uuid("id", s));
    }
}

#[test]
fn the_body_readers_answer_every_byte_string() {
    fuzz("bodies", 0xc0ffee, BODIES, |input| {
        let text = String::from_utf8_lossy(input);
        if let Ok(v) = serde_json::from_slice::<Value>(input) {
            read_bodies(&text, &v);
        }
    });
}

#[test]
fn the_body_readers_answer_every_generated_document() {
    let mut rng = Rng(0xd0c5);
    let started = Instant::now();
    let mut runs = 0;
    while runs < 200 || started.elapsed() < budget() {
        let mut doc = gen_object(&mut rng, 0);
        // Often start from a valid document and break one field, to get past the first check.
        if rng.below(2) == 0 {
            let text: &str = BODIES[rng.below(BODIES.len())];
            let base: Value = serde_json::from_str(text).expect("corpus");
            if let (Value::Object(mut b), Value::Object(extra)) = (base, doc.clone()) {
                for (k, v) in extra.into_iter().take(1) {
                    b.insert(k, v);
                }
                doc = Value::Object(b);
            }
        }
        let text = doc.to_string();
        if catch_unwind(AssertUnwindSafe(|| read_bodies(&text, &doc))).is_err() {
            panic!("generated document {text} (run {runs}) panicked");
        }
        runs += 1;
    }
    eprintln!("generated documents: {runs}");
}
