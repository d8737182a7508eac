//! The observer poll binding held open (`GET /v1/intents/{id}/events?since=&wait_seconds=`), and
//! the caps that keep streams and long polls from exhausting the server (`--max-streams`,
//! `--max-waiters`: 503 with `Retry-After` past them, the place given back when one ends).

use crate::common;
use crate::sse_client;

use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sse_client::{ids_and_types, open, resolve, settle, End};

fn stream_path(id: &str, query: &str) -> String {
    format!("/v1/intents/{id}/events/stream{query}")
}

#[test]
fn long_poll_returns_as_soon_as_an_event_is_committed() {
    let s = Server::start();
    let id = s.create_intent("agent://team/lp");
    let started = Instant::now();
    let writer = {
        let (base, id) = (s.base.clone(), id.clone());
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            resolve(&base, &id, "COMPLETED");
        })
    };
    let r = s.get(&format!("/v1/intents/{id}/events?since=2&wait_seconds=5"));
    let took = started.elapsed();
    writer.join().expect("writer");
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.json["events"].as_array().expect("events");
    assert_eq!(events.len(), 1, "{}", r.text);
    assert_eq!(
        (&events[0]["seq"], &events[0]["event_type"]),
        (&json!(3), &json!("intent.completed"))
    );
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_secs(3),
        "woken by the commit, not the wait: {took:?}"
    );

    // With something already there, no wait at all.
    let r = s.get(&format!("/v1/intents/{id}/events?since=1&wait_seconds=5"));
    let seqs: Vec<&Value> = r.json["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| &e["seq"])
        .collect();
    assert_eq!(seqs, [&json!(2), &json!(3)]);
}

#[test]
fn long_poll_with_nothing_new_answers_empty_after_the_wait() {
    let s = Server::start();
    let id = s.create_intent("agent://team/lp-empty");
    let started = Instant::now();
    let r = s.get(&format!("/v1/intents/{id}/events?since=2&wait_seconds=1"));
    let took = started.elapsed();
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"ok": true, "events": []}));
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    let r = s.get(&format!("/v1/intents/{id}/events?since=2&wait_seconds=61"));
    assert_eq!((r.status, r.field()), (422, "wait_seconds"), "{}", r.text);
    let r = s.get(&format!("/v1/intents/{}/events?wait_seconds=1", uuid()));
    assert_eq!(
        (r.status, r.code()),
        (404, "intent_not_found"),
        "{}",
        r.text
    );
}

#[test]
fn max_streams_caps_open_streams_with_503_and_retry_after() {
    let s = Server::start_args(&["--max-streams", "1"]);
    let id = s.create_intent("agent://team/capped");
    let mut held = open(&s, &stream_path(&id, ""), &[]);
    held.expect_retry();
    let others = [
        stream_path(&id, ""),
        "/v1/events/stream".to_string(),
        "/v1/agents/team/capped/intents/stream".to_string(),
    ];
    for path in &others {
        let refused = open(&s, path, &[]);
        assert_eq!(refused.status, 503, "{path}: {}", refused.body);
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert_eq!(refused.json()["error"]["code"], "unavailable");
    }
    // Polls are not streams.
    assert_eq!(s.get(&format!("/v1/intents/{id}/events")).status, 200);
    resolve(&s.base, &id, "COMPLETED");
    let done = [
        (1, "intent.created".to_string()),
        (2, "intent.submitted".to_string()),
        (3, "intent.completed".to_string()),
    ];
    assert_eq!(ids_and_types(&held.rest()), done);
    assert_eq!(held.end, Some(End::Clean));
    // The place is free again once the stream ended.
    let mut next = open(&s, &stream_path(&id, ""), &[]);
    assert_eq!(next.status, 200, "{}", next.body);
    next.expect_retry();
    assert_eq!(next.events(3).len(), 3);
}

#[test]
fn max_waiters_caps_long_polls_with_503_and_retry_after() {
    let s = Server::start_args(&["--max-waiters", "1"]);
    let id = s.create_intent("agent://team/waiters");
    let path = format!("/v1/intents/{id}/events?since=2&wait_seconds=5");
    let (tx, rx) = std::sync::mpsc::channel();
    let poll = |tx: std::sync::mpsc::Sender<Resp>| {
        let url = s.url(&path);
        thread::spawn(move || {
            let r = send(agent().get(&url).set("x-api-key", ADMIN_KEY), None);
            let _ = tx.send(r);
        })
    };
    let a = poll(tx.clone());
    settle();
    let b = poll(tx);
    // Whichever came second is refused at once; the commit then ends the other's wait.
    let refused = rx.recv_timeout(Duration::from_secs(4)).expect("a refusal");
    assert_eq!(refused.status, 503, "{}", refused.text);
    assert_eq!(refused.header("retry-after"), Some("1"));
    assert_eq!(refused.code(), "unavailable");
    // A poll that finds something at once does not wait, so it takes no place.
    let r = s.get(&format!("/v1/intents/{id}/events?since=0&wait_seconds=5"));
    assert_eq!(r.status, 200, "{}", r.text);
    resolve(&s.base, &id, "COMPLETED");
    let waited = rx.recv_timeout(Duration::from_secs(4)).expect("the waiter");
    assert_eq!(waited.status, 200, "{}", waited.text);
    assert_eq!(waited.json["events"][0]["seq"], 3, "{}", waited.text);
    a.join().expect("a");
    b.join().expect("b");
    let again = s.get(&format!("/v1/intents/{id}/events?since=3&wait_seconds=1"));
    assert_eq!(
        again.status, 200,
        "the place was given back: {}",
        again.text
    );
}
