//! One intent's events as Server-Sent Events (`/v1/intents/{id}/events/stream`), the observer
//! stream binding, over every resume path: `since`, `Last-Event-ID` (which overrides it), a
//! cursor from the future, a connection ended by its lifetime, a reconnect after a server
//! restart, commits racing with the subscription, and a slow consumer cut off. Every stream must
//! deliver each event exactly once, in order, and end right after the terminal event.

use crate::common;
use crate::sse_client;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sse_client::{ids_and_types, open, progress, resolve, settle, Block, End, Sse};

fn stream_path(id: &str, query: &str) -> String {
    format!("/v1/intents/{id}/events/stream{query}")
}

/// The intent's events as `GET /v1/intents/{id}/events` lists them.
fn history(s: &Server, id: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["events"].as_array().expect("events").clone()
}

/// `(seq, event_type)` pairs, for the events an intent has after `from`.
fn expected(all: &[(i64, &str)], from: i64) -> Vec<(i64, String)> {
    all.iter()
        .filter(|(seq, _)| *seq > from)
        .map(|(seq, t)| (*seq, t.to_string()))
        .collect()
}

const FLOW: &[(i64, &str)] = &[
    (1, "intent.created"),
    (2, "intent.submitted"),
    (3, "intent.in_progress"),
    (4, "intent.waiting"),
    (5, "intent.completed"),
];

#[test]
fn observer_stream_replays_history_then_live_events_and_ends_at_the_terminal_event() {
    let s = Server::start();
    let id = s.create_intent("agent://team/observed");
    progress(&s.base, &id, "IN_PROGRESS");
    let mut sse = open(&s, &stream_path(&id, ""), &[]);
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    assert_eq!(sse.header("cache-control"), Some("no-cache"));
    assert_eq!(sse.header("x-accel-buffering"), Some("no"));
    sse.expect_retry();
    let replay = sse.events(3);
    assert_eq!(ids_and_types(&replay), expected(&FLOW[..3], 0));

    settle();
    progress(&s.base, &id, "WAITING");
    let live = sse.events(1);
    settle();
    resolve(&s.base, &id, "COMPLETED");
    let last = sse.events(1);
    assert_eq!(sse.next(), None, "nothing after the terminal event");
    assert_eq!(sse.end, Some(End::Clean));

    let seen: Vec<Block> = [replay, live, last].concat();
    assert_eq!(ids_and_types(&seen), expected(FLOW, 0));
    let data: Vec<Value> = seen.iter().map(Block::json).collect();
    assert_eq!(data, history(&s, &id), "data is each event's JSON");
    assert_eq!(data[3]["waiting_reason"], "WAITING_FOR_TOOL");
    assert_eq!(data[4]["status"], "COMPLETED");
}

#[test]
fn since_and_last_event_id_resume_without_duplicates() {
    let s = Server::start();
    let id = s.create_intent("agent://team/resume");
    progress(&s.base, &id, "IN_PROGRESS");
    progress(&s.base, &id, "WAITING");
    for since in 0..=4 {
        let mut sse = open(
            &s,
            &stream_path(&id, &format!("?since={since}&wait_seconds=1")),
            &[],
        );
        sse.expect_retry();
        let got = sse.rest();
        let (events, tail) = got.split_at(got.len() - 1);
        assert_eq!(
            ids_and_types(events),
            expected(&FLOW[..4], since),
            "since={since}"
        );
        assert_eq!(tail[0].event(), "stream.timeout");
        assert_eq!(sse.end, Some(End::Clean));
    }
    // Last-Event-ID overrides since.
    let path = stream_path(&id, "?since=1&wait_seconds=1");
    let mut sse = open(&s, &path, &[("last-event-id", "3")]);
    sse.expect_retry();
    let got = sse.rest();
    assert_eq!(ids_and_types(&got), expected(&FLOW[..4], 3));
    assert_eq!(got.last().map(Block::event), Some("stream.timeout"));

    resolve(&s.base, &id, "COMPLETED");
    let mut sse = open(&s, &stream_path(&id, "?since=0"), &[("Last-Event-ID", "4")]);
    sse.expect_retry();
    assert_eq!(ids_and_types(&sse.rest()), expected(FLOW, 4));
    assert_eq!(sse.end, Some(End::Clean));

    // Resuming at the terminal event: nothing more, and the stream ends at once.
    let mut sse = open(&s, &stream_path(&id, ""), &[("last-event-id", "5")]);
    sse.expect_retry();
    assert_eq!(sse.rest(), vec![]);
    assert_eq!(sse.end, Some(End::Clean));

    let bad = open(&s, &stream_path(&id, ""), &[("last-event-id", "abc")]);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["error"]["details"]["field"], "Last-Event-ID");
    let bad = open(&s, &stream_path(&id, "?since=-1"), &[]);
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert_eq!(bad.json()["error"]["details"]["field"], "since");
}

#[test]
fn wait_seconds_with_nothing_new_sends_stream_timeout_then_ends() {
    let s = Server::start();
    let id = s.create_intent("agent://team/quiet");
    let started = Instant::now();
    let mut sse = open(&s, &stream_path(&id, "?since=2&wait_seconds=1"), &[]);
    sse.expect_retry();
    let timeout = Block {
        event: Some("stream.timeout".into()),
        data: Some("{}".into()),
        ..Block::default()
    };
    assert_eq!(sse.rest(), vec![timeout]);
    assert_eq!(sse.end, Some(End::Clean));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "ended after {took:?}");
    assert!(took < Duration::from_secs(10), "ended after {took:?}");
}

#[test]
fn keepalive_comments_arrive_while_idle() {
    let s = Server::start_args(&["--stream-keepalive-seconds", "1"]);
    let id = s.create_intent("agent://team/idle");
    let mut sse = open(&s, &stream_path(&id, "?since=2"), &[]);
    sse.expect_retry();
    let keepalive = Block {
        comment: true,
        ..Block::default()
    };
    assert_eq!(sse.next(), Some(keepalive.clone()));
    assert_eq!(sse.next(), Some(keepalive));
    resolve(&s.base, &id, "COMPLETED");
    let rest = sse.rest();
    let events: Vec<&Block> = rest.iter().filter(|b| !b.comment).collect();
    assert_eq!(events.len(), 1, "{rest:?}");
    assert_eq!(
        (events[0].seq(), events[0].event()),
        (3, "intent.completed")
    );
    assert_eq!(sse.end, Some(End::Clean));
}

#[test]
fn a_cursor_ahead_of_the_intent_gets_a_reset_and_the_stream_goes_on() {
    let s = Server::start();
    let id = s.create_intent("agent://team/ahead");
    let mut sse = open(&s, &stream_path(&id, "?since=99"), &[]);
    sse.expect_retry();
    let reset = sse.next().expect("reset");
    assert_eq!((reset.id.as_deref(), reset.event()), (None, "reset"));
    assert_eq!(
        reset.json(),
        json!({"reason": "cursor_ahead", "since": 99, "latest": 2})
    );
    settle();
    resolve(&s.base, &id, "COMPLETED");
    assert_eq!(
        ids_and_types(&sse.rest()),
        vec![(3, "intent.completed".into())]
    );
    assert_eq!(sse.end, Some(End::Clean));

    let mut sse = open(&s, &stream_path(&id, ""), &[("last-event-id", "50")]);
    sse.expect_retry();
    let reset = sse.next().expect("reset");
    assert_eq!(
        reset.json(),
        json!({"reason": "cursor_ahead", "since": 50, "latest": 3})
    );
    assert_eq!(sse.rest(), vec![], "terminal: nothing follows the reset");
    assert_eq!(sse.end, Some(End::Clean));
}

#[test]
fn unknown_intents_and_missing_keys_are_refused_before_any_stream() {
    let s = Server::start();
    let missing = open(&s, &stream_path(&uuid(), ""), &[]);
    assert_eq!(missing.status, 404, "{}", missing.body);
    assert_eq!(missing.header("content-type"), Some("application/json"));
    assert_eq!(missing.json()["error"]["code"], "intent_not_found");

    let id = s.create_intent("agent://team/guarded");
    let anon = Sse::open(&s.base, &stream_path(&id, ""), &[]);
    assert_eq!(anon.status, 401, "{}", anon.body);
    assert_eq!(anon.json()["error"]["code"], "auth_failed");
    let wrong = Sse::open(
        &s.base,
        &stream_path(&id, ""),
        &[("x-api-key", "nope-nope-nope-nope")],
    );
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let bearer = format!("Bearer {ADMIN_KEY}");
    let mut ok = Sse::open(
        &s.base,
        &stream_path(&id, "?wait_seconds=1"),
        &[("authorization", &bearer)],
    );
    assert_eq!(ok.status, 200, "{}", ok.body);
    ok.expect_retry();
    assert_eq!(ids_and_types(&ok.events(2)), expected(&FLOW[..2], 0));
}

#[test]
fn a_commit_racing_with_the_subscription_is_delivered_exactly_once() {
    let s = Server::start();
    for round in 0..100 {
        let id = s.create_intent("agent://team/race");
        let barrier = Arc::new(Barrier::new(2));
        let writer = {
            let (barrier, base, id) = (barrier.clone(), s.base.clone(), id.clone());
            thread::spawn(move || {
                barrier.wait();
                progress(&base, &id, "IN_PROGRESS");
                progress(&base, &id, "WAITING");
                resolve(&base, &id, "COMPLETED");
            })
        };
        let since = round % 3;
        barrier.wait();
        let mut sse = open(&s, &stream_path(&id, &format!("?since={since}")), &[]);
        assert_eq!(sse.status, 200, "{}", sse.body);
        sse.expect_retry();
        let got = sse.rest();
        writer.join().expect("writer");
        assert_eq!(sse.end, Some(End::Clean), "round {round}");
        assert!(got.iter().all(Block::is_event), "round {round}: {got:?}");
        assert_eq!(ids_and_types(&got), expected(FLOW, since), "round {round}");
    }
}

/// Regression: a terminal commit landing between the stream's read of the events and its read
/// of the intent's status ended the stream cleanly without ever sending the terminal event.
#[test]
fn a_terminal_commit_racing_with_the_first_read_is_still_sent() {
    let s = Server::start_args(&["--durability", "normal"]);
    for round in 0..1000 {
        let id = s.create_intent("agent://team/race-end");
        let barrier = Arc::new(Barrier::new(2));
        let writer = {
            let (barrier, base, id) = (barrier.clone(), s.base.clone(), id.clone());
            thread::spawn(move || {
                barrier.wait();
                resolve(&base, &id, "COMPLETED");
            })
        };
        barrier.wait();
        let mut sse = open(&s, &stream_path(&id, "?since=2"), &[]);
        sse.expect_retry();
        let got = sse.rest();
        writer.join().expect("writer");
        assert_eq!(sse.end, Some(End::Clean), "round {round}");
        let want = vec![(3, "intent.completed".to_string())];
        assert_eq!(ids_and_types(&got), want, "round {round}");
    }
}

#[test]
fn a_stream_open_at_shutdown_ends_cleanly_and_resumes_after_restart() {
    let mut first = Server::start();
    let id = first.create_intent("agent://team/restart");
    progress(&first.base, &id, "IN_PROGRESS");
    let mut sse = open(&first, &stream_path(&id, ""), &[]);
    sse.expect_retry();
    let before = sse.events(3);

    let started = Instant::now();
    assert_eq!(first.terminate(), Some(0));
    // The stream ended on its own instead of holding shutdown for the 10 s grace period.
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    let shutdown = Block {
        retry: Some(1000),
        event: Some("stream.shutdown".into()),
        data: Some("{}".into()),
        ..Block::default()
    };
    assert_eq!(sse.rest(), vec![shutdown]);
    assert_eq!(sse.end, Some(End::Clean));

    let second = Server::start_on(&first.data, &[]);
    progress(&second.base, &id, "WAITING"); // committed while nobody is connected
    let last_id = before.last().expect("events").id.clone().expect("id");
    let mut sse = open(
        &second,
        &stream_path(&id, ""),
        &[("last-event-id", &last_id)],
    );
    sse.expect_retry();
    let missed = sse.events(1);
    settle();
    resolve(&second.base, &id, "COMPLETED");
    let after = sse.rest();
    assert_eq!(sse.end, Some(End::Clean));
    let seen = [before, missed, after].concat();
    assert_eq!(ids_and_types(&seen), expected(FLOW, 0));
    let data: Vec<Value> = seen.iter().map(Block::json).collect();
    assert_eq!(data, history(&second, &id));
}

#[test]
fn a_stream_past_its_max_lifetime_ends_and_resumes_from_last_event_id() {
    let s = Server::start_args(&["--stream-max-lifetime-seconds", "1"]);
    let id = s.create_intent("agent://team/lifetime");
    let started = Instant::now();
    let mut sse = open(&s, &stream_path(&id, ""), &[]);
    sse.expect_retry();
    let first = sse.rest();
    assert_eq!(ids_and_types(&first), expected(&FLOW[..2], 0));
    assert_eq!(sse.end, Some(End::Clean));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(850), "ended after {took:?}");
    assert!(took < Duration::from_secs(8), "ended after {took:?}");

    progress(&s.base, &id, "IN_PROGRESS");
    let mut sse = open(&s, &stream_path(&id, ""), &[("last-event-id", "2")]);
    sse.expect_retry();
    assert_eq!(ids_and_types(&sse.rest()), expected(&FLOW[..3], 2));
}

/// A body of about 100 KiB, so that a few hundred feed items fill any socket buffer.
fn large_intent(to_agent: &str, n: usize) -> Value {
    json!({
        "intent_type": "demo.bulk.v1",
        "correlation_id": uuid(),
        "to_agent": to_agent,
        "payload": {"n": n, "blob": "x".repeat(100 * 1024)},
    })
}

#[test]
fn a_slow_consumer_is_cut_off_and_resumes_from_its_last_id() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("axme.log");
    let s = Server::start_logging_to(
        &log,
        &[
            "--log",
            "info,axme::http::sse=debug",
            "--stream-queue",
            "1",
            "--stream-write-deadline-seconds",
            "1",
            "--durability",
            "normal",
        ],
    );
    let feed = "/v1/agents/team/slow/intents/stream";
    let mut slow = open(&s, feed, &[]);
    assert_eq!(slow.status, 200);
    // About 32 MiB of items while the client reads nothing: far more than the socket buffers
    // and the one-frame queue hold, so the producer waits past its write deadline.
    let count = 320;
    let mut created = Vec::with_capacity(count);
    for n in 0..count {
        let r = s.post("/v1/intents", &large_intent("agent://team/slow", n));
        assert_eq!(r.status, 200, "{}", r.text);
        created.push(r.json["intent_id"].as_str().expect("id").to_string());
    }
    // The producer waits past its 1 s write deadline without a read, and says so.
    poll_until(
        Duration::from_secs(30),
        "the slow consumer to be cut off",
        || {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            text.contains("slow consumer cut off").then_some(())
        },
    );
    assert_eq!(s.get("/health").status, 200, "the server stays healthy");

    slow.expect_retry();
    let got = slow.rest();
    assert!(slow.end.is_some(), "the stream ended");
    let first: Vec<Block> = got.into_iter().filter(|b| !b.comment).collect();
    assert!(!first.is_empty(), "some items got through before the cut");
    assert!(
        first.len() < count / 2,
        "cut off long before the end: {} of {count} items arrived",
        first.len()
    );
    // `wait_seconds` bounds each response, so the rest may take several; each resumes from
    // the last id seen, until one ends with nothing new.
    let mut last_id = first.last().expect("items").id.clone().expect("id");
    let mut rest = Vec::new();
    loop {
        let mut fresh = open(
            &s,
            &format!("{feed}?wait_seconds=2"),
            &[("last-event-id", &last_id)],
        );
        fresh.expect_retry();
        let mut got = fresh.rest();
        assert_eq!(got.pop().as_ref().map(Block::event), Some("stream.timeout"));
        let Some(last) = got.last() else { break };
        last_id = last.id.clone().expect("id");
        rest.extend(got);
    }
    let all: Vec<&Block> = first.iter().chain(&rest).collect();
    let ids: Vec<String> = all
        .iter()
        .map(|b| {
            b.json()["intent_id"]
                .as_str()
                .expect("intent_id")
                .to_string()
        })
        .collect();
    assert_eq!(ids, created, "every item exactly once, in order");
    let seqs: Vec<i64> = all.iter().map(|b| b.seq()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
}
