//! Arbitrary bytes as the body of `POST /v1/intents`, through the create-intent reader
//! (`service::requests::create_intent` and the field readers of `service::validate`). It never
//! panics; a rejection names its field; and a body it accepts keeps its promises:
//! - no field outside the schema; `intent_type` matches its pattern;
//! - `correlation_id` is the given UUID, lowercased; every address is the given one, normalized
//!   to `agent://`, within the documented length;
//! - `payload` round-trips to the object sent and respects the payload limit;
//! - `deadline_at` is the instant sent (to the microsecond), spelled once and for all in UTC;
//! - the integer knobs are within their bounds; `human_task` is the task sent without its null
//!   fields;
//! - reading the body again from its own serialization gives the same input.
#![no_main]

use axme::clock;
use axme::service::requests::{self, CreateIntent};
use axme::service::validate::{self, ADDRESS_MAX, ADDRESS_MIN};
use axme::Error;
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

/// Small enough that inputs of a fuzzing run reach it.
const PAYLOAD_LIMIT: usize = 256;

const FIELDS: &[&str] = &[
    "intent_type",
    "correlation_id",
    "from_agent",
    "to_agent",
    "reply_to",
    "payload",
    "deadline_at",
    "remind_after_seconds",
    "remind_interval_seconds",
    "max_reminders",
    "escalate_to",
    "max_delivery_attempts",
    "human_task",
];

fn named(e: &Error) {
    match e {
        Error::Invalid { field, .. } => assert!(!field.is_empty(), "no field named: {e}"),
        Error::Malformed { .. } => {}
        Error::TooLarge { field, limit } => {
            assert_eq!((field.as_str(), *limit), ("payload", PAYLOAD_LIMIT))
        }
        other => panic!("create_intent answered {other:?}"),
    }
}

/// The address a client sent for `name`, as the server must store it.
fn normalized(sent: &Map<String, Value>, name: &str) -> Option<String> {
    let s = sent.get(name)?.as_str()?;
    Some(if s.starts_with("agent://") {
        s.to_string()
    } else {
        format!("agent://{s}")
    })
}

fn check_address(a: &str) {
    assert!(a.starts_with("agent://") && a.len() > 8, "{a:?}");
    assert!((ADDRESS_MIN..=ADDRESS_MAX).contains(&a.len()), "{a:?}");
    assert!(
        !a.chars().any(|c| c.is_whitespace() || c.is_control()),
        "{a:?}"
    );
    assert_eq!(validate::address("again", a).ok().as_deref(), Some(a));
}

fn check(sent: &Map<String, Value>, c: &CreateIntent) {
    for k in sent.keys() {
        assert!(FIELDS.contains(&k.as_str()), "unknown field {k:?} accepted");
    }
    assert!(validate::is_intent_type(&c.intent_type));
    assert!((1..=255).contains(&c.intent_type.chars().count()));
    assert_eq!(Some(c.intent_type.as_str()), sent["intent_type"].as_str());

    let given = sent["correlation_id"].as_str().expect("a string");
    assert_eq!(c.correlation_id, given.to_ascii_lowercase());
    assert_eq!(c.correlation_id.len(), 36);

    for (name, value) in [
        ("to_agent", Some(&c.to_agent)),
        ("escalate_to", c.escalate_to.as_ref()),
    ] {
        assert_eq!(value.cloned(), normalized(sent, name), "{name}");
        if let Some(a) = value {
            check_address(a);
        }
    }
    // A sent from_agent is kept only when it is an agent address (the key decides the rest).
    let from = sent.get("from_agent").and_then(Value::as_str);
    let from_ok = from.is_some_and(|f| validate::address("f", f).is_ok());
    assert_eq!(c.from_agent.is_some(), from_ok, "from_agent {from:?}");
    if let Some(a) = &c.from_agent {
        assert_eq!(Some(a.clone()), normalized(sent, "from_agent"));
        check_address(a);
    }
    // reply_to may use any scheme; a bare name is an agent's.
    if let Some(r) = &c.reply_to {
        let given = sent["reply_to"].as_str().expect("a string");
        match given.split_once("://") {
            Some((scheme, _)) if scheme != "agent" => assert_eq!(r, given),
            _ => {
                assert_eq!(Some(r.clone()), normalized(sent, "reply_to"));
                check_address(r);
            }
        }
        assert!(
            !r.chars().any(|c| c.is_whitespace() || c.is_control()),
            "{r:?}"
        );
        assert!((ADDRESS_MIN..=ADDRESS_MAX).contains(&r.len()), "{r:?}");
    }

    assert!(c.payload.len() <= PAYLOAD_LIMIT);
    let payload: Value = serde_json::from_str(&c.payload).expect("payload is JSON");
    assert_eq!(&payload, &sent["payload"], "payload round trip");

    match (
        &c.deadline_at,
        sent.get("deadline_at").and_then(Value::as_str),
    ) {
        (Some(d), Some(given)) => {
            let stored = clock::parse(d).expect("a stored deadline parses");
            let asked = clock::parse(given).expect("an accepted deadline parses");
            assert!(d.ends_with('Z') && d.len() == 27, "{d:?}");
            assert_eq!(&clock::format(stored), d, "one spelling");
            let drift = asked.unix_timestamp_nanos() - stored.unix_timestamp_nanos();
            assert!((0..1000).contains(&drift), "{given:?} stored as {d:?}");
        }
        (None, None) => {}
        (stored, given) => panic!("deadline_at {given:?} stored as {stored:?}"),
    }

    for (name, value, max) in [
        (
            "remind_after_seconds",
            c.remind_after_seconds,
            i32::MAX as i64,
        ),
        (
            "remind_interval_seconds",
            c.remind_interval_seconds,
            i32::MAX as i64,
        ),
        ("max_reminders", c.max_reminders, i32::MAX as i64),
        ("max_delivery_attempts", c.max_delivery_attempts, 1000),
    ] {
        if let Some(v) = value {
            assert!((1..=max).contains(&v), "{name} {v}");
        }
        assert_eq!(
            value.is_some(),
            sent.get(name).is_some_and(|v| !v.is_null())
        );
    }

    match (
        &c.human_task,
        sent.get("human_task").and_then(Value::as_object),
    ) {
        (Some(stored), Some(given)) => {
            let stored: Value = serde_json::from_str(stored).expect("the task is JSON");
            let stored = stored.as_object().expect("the task is an object");
            let without_nulls: Map<String, Value> = given
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            assert_eq!(stored, &without_nulls);
            let title = stored["title"].as_str().expect("a title");
            assert!(title.chars().count() <= 255);
        }
        (None, None) => {}
        (stored, given) => panic!("human_task {given:?} stored as {stored:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(body) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    match requests::create_intent(&body, PAYLOAD_LIMIT) {
        Ok(c) => {
            check(body.as_object().expect("an object body"), &c);
            let again: Value = serde_json::from_str(&body.to_string()).expect("reparses");
            let c2 = requests::create_intent(&again, PAYLOAD_LIMIT).expect("accepted again");
            assert_eq!(format!("{c:?}"), format!("{c2:?}"));
        }
        Err(e) => named(&e),
    }
});
