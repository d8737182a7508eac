//! The handler side of the pull bindings: the agent feed as a poll and as SSE
//! (`/v1/agents/{address}/intents[/stream]`). The feed cursor is the global event id; a feed holds
//! the submissions and terminal events of its own address and nothing else, the terminal ones
//! only when a status filter asks for them; the first hand-over marks an intent DELIVERED exactly
//! once, however many listeners race for it, and the item shows it DELIVERED.

use crate::common;
use crate::sse_client;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};
use sse_client::{ids_and_types, open, post_to, resolve, settle, Block, End};

/// A feed poll: `(intent_id, seq, event_type)` of each item, and `next_since`.
fn poll(s: &Server, path: &str) -> (Vec<(String, i64, String)>, i64) {
    let r = s.get(path);
    assert_eq!(r.status, 200, "{path}: {}", r.text);
    assert_eq!(r.json["ok"], true);
    let items = r.json["intents"].as_array().expect("intents");
    let items = items
        .iter()
        .map(|i| {
            let id = i["intent_id"].as_str().expect("intent_id").to_string();
            let seq = i["seq"].as_i64().expect("seq");
            (id, seq, i["event_type"].as_str().expect("type").to_string())
        })
        .collect();
    (items, r.json["next_since"].as_i64().expect("next_since"))
}

fn event_types(s: &Server, id: &str) -> Vec<String> {
    let r = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(r.status, 200, "{}", r.text);
    let events = r.json["events"].as_array().expect("events");
    events
        .iter()
        .map(|e| e["event_type"].as_str().expect("type").to_string())
        .collect()
}

fn status_of(s: &Server, id: &str) -> String {
    let r = s.get(&format!("/v1/intents/{id}"));
    r.json["intent"]["status"]
        .as_str()
        .expect("status")
        .to_string()
}

/// A status filter naming every status: the whole feed, terminal items included.
const EVERY_STATUS: &str =
    "status=SUBMITTED,DELIVERED,ACKNOWLEDGED,IN_PROGRESS,WAITING,COMPLETED,FAILED,CANCELED,TIMED_OUT";

fn strictly_increasing(seqs: &[i64]) -> bool {
    seqs.windows(2).all(|w| w[0] < w[1])
}

#[test]
fn feed_poll_hands_over_submissions_and_terminal_events_of_its_address_only() {
    let s = Server::start();
    let a1 = s.create_intent("agent://team/w");
    let other = s.create_intent("agent://team/other");
    let a2 = s.create_intent("agent://team/w");
    resolve(&s.base, &a1, "CANCELED");

    let (items, next) = poll(&s, &format!("/v1/agents/team/w/intents?{EVERY_STATUS}"));
    let shape: Vec<(&str, &str)> = items
        .iter()
        .map(|(id, _, t)| (id.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            (a1.as_str(), "intent.submitted"),
            (a2.as_str(), "intent.submitted"),
            (a1.as_str(), "intent.canceled"),
        ]
    );
    let seqs: Vec<i64> = items.iter().map(|i| i.1).collect();
    assert!(strictly_increasing(&seqs), "{seqs:?}");
    assert_eq!(next, seqs[2]);
    // The cursor is the global event id: the firehose numbers the same events the same way.
    let mut fire = open(
        &s,
        "/v1/events/stream?to_agent=agent://team/w&wait_seconds=1",
        &[],
    );
    fire.expect_retry();
    let fired: Vec<(i64, String)> = ids_and_types(&fire.rest());
    for (id, seq, event_type) in &items {
        assert!(
            fired.contains(&(*seq, event_type.clone())),
            "{id} {seq} {event_type}"
        );
    }
    // Without a filter, a1 (canceled, terminal) is left out.
    let (default, _) = poll(&s, "/v1/agents/team/w/intents");
    assert_eq!(default, vec![items[1].clone()]);
    // The items carry the intent as it is now.
    let r = s.get(&format!("/v1/agents/team/w/intents?limit=1&{EVERY_STATUS}"));
    let item = &r.json["intents"][0];
    assert_eq!(item["intent_id"], a1.as_str());
    assert_eq!(item["to_agent"], "agent://team/w");
    assert_eq!(item["status"], "CANCELED");
    assert_eq!(item["payload"], json!({"n": 1}));
    assert_eq!(r.json["next_since"], seqs[0]);

    // Paging with since/limit walks the same items; the end answers empty at the same cursor.
    let (page2, n2) = poll(
        &s,
        &format!(
            "/v1/agents/team/w/intents?since={}&limit=1&{EVERY_STATUS}",
            seqs[0]
        ),
    );
    assert_eq!((page2, n2), (vec![items[1].clone()], seqs[1]));
    let (page3, n3) = poll(
        &s,
        &format!("/v1/agents/team/w/intents?since={n2}&limit=5&{EVERY_STATUS}"),
    );
    assert_eq!((page3, n3), (vec![items[2].clone()], seqs[2]));
    assert_eq!(
        poll(
            &s,
            &format!("/v1/agents/team/w/intents?since={next}&{EVERY_STATUS}")
        ),
        (vec![], next)
    );

    // The full address, percent-encoded or typed with its scheme, names the same feed.
    for path in [
        "/v1/agents/agent%3A%2F%2Fteam%2Fw/intents",
        "/v1/agents/agent://team/w/intents",
    ] {
        let encoded = poll(&s, &format!("{path}?{EVERY_STATUS}"));
        assert_eq!(encoded, (items.clone(), next), "{path}");
    }
    let (theirs, _) = poll(&s, "/v1/agents/team/other/intents");
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs[0].0, other);

    // Handing a2 over marked it DELIVERED, once; a1 was canceled before anyone took it.
    assert_eq!(status_of(&s, &a2), "DELIVERED");
    let a2_events = s.get(&format!("/v1/intents/{a2}/events?since=2"));
    let delivered = &a2_events.json["events"];
    assert_eq!(delivered.as_array().map(Vec::len), Some(1), "{delivered}");
    assert_eq!(delivered[0]["event_type"], "intent.delivered");
    assert_eq!(delivered[0]["details"], json!({"via": "poll"}));
    assert!(!event_types(&s, &a1).contains(&"intent.delivered".to_string()));

    for (path, field) in [
        ("/v1/agents/team/w/intents?limit=0", "limit"),
        ("/v1/agents/team/w/intents?limit=201", "limit"),
        ("/v1/agents/team/w/intents?since=x", "since"),
        ("/v1/agents/team/w/intents?wait_seconds=0", "wait_seconds"),
        ("/v1/agents/team/w/intents?status=DONE", "status"),
    ] {
        let r = s.get(path);
        assert_eq!((r.status, r.field()), (422, field), "{path}: {}", r.text);
    }
    let r = s.get("/v1/agents/http:%2F%2Fx/intents");
    assert_eq!(
        (r.status, r.code()),
        (422, "invalid_agent_address"),
        "{}",
        r.text
    );
}

#[test]
fn the_first_hand_over_marks_delivered_exactly_once_among_racing_listeners() {
    let s = Server::start();
    for round in 0..15 {
        let address = format!("team/race{round}");
        let id = s.create_intent(&format!("agent://{address}"));
        let barrier = Arc::new(Barrier::new(3));
        let pollers: Vec<_> = (0..2)
            .map(|_| {
                let (barrier, url) = (
                    barrier.clone(),
                    s.url(&format!("/v1/agents/{address}/intents")),
                );
                thread::spawn(move || {
                    barrier.wait();
                    send(agent().get(&url).set("x-api-key", ADMIN_KEY), None)
                })
            })
            .collect();
        barrier.wait();
        let mut sse = open(&s, &format!("/v1/agents/{address}/intents/stream"), &[]);
        sse.expect_retry();
        let streamed = sse.events(1);
        assert_eq!(streamed[0].json()["intent_id"], id.as_str());
        for p in pollers {
            let r = p.join().expect("poller");
            assert_eq!(r.status, 200, "{}", r.text);
            assert_eq!(
                r.json["intents"][0]["intent_id"],
                id.as_str(),
                "round {round}"
            );
        }
        // Both polls have returned, so the intent is DELIVERED and no later mark can add another.
        let types = event_types(&s, &id);
        assert_eq!(
            types,
            ["intent.created", "intent.submitted", "intent.delivered"],
            "round {round}"
        );
    }
}

#[test]
fn the_status_filter_keeps_only_items_whose_intent_is_in_those_statuses() {
    let s = Server::start();
    let fresh = s.create_intent("agent://team/f");
    let acked = s.create_intent("agent://team/f");
    let done = s.create_intent("agent://team/f");
    let r = s.post(&format!("/v1/intents/{acked}/ack"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    resolve(&s.base, &done, "COMPLETED");

    let (items, end) = poll(&s, "/v1/agents/team/f/intents?status=COMPLETED");
    let shape: Vec<(&str, &str)> = items
        .iter()
        .map(|(id, _, t)| (id.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            (done.as_str(), "intent.submitted"),
            (done.as_str(), "intent.completed")
        ]
    );
    let (items, next) = poll(&s, "/v1/agents/team/f/intents?status=SUBMITTED,DELIVERED");
    let ids: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(ids, [fresh.as_str()]);
    assert_eq!(next, end, "the cursor moves past what the filter left out");
    // The stream takes the same filter.
    let path = "/v1/agents/team/f/intents/stream?status=SUBMITTED,DELIVERED&wait_seconds=1";
    let mut sse = open(&s, path, &[]);
    sse.expect_retry();
    let streamed = sse.rest();
    assert_eq!(streamed.len(), 2, "{streamed:?}");
    assert_eq!(streamed[0].json()["intent_id"], fresh.as_str());
    assert_eq!(streamed[1].event(), "stream.timeout");
    // Handed over by the filtered poll: DELIVERED now, so the same filter still lists it.
    assert_eq!(status_of(&s, &fresh), "DELIVERED");
    assert_eq!(status_of(&s, &acked), "ACKNOWLEDGED");
    let (again, _) = poll(&s, "/v1/agents/team/f/intents?status=DELIVERED");
    assert_eq!(again.len(), 1);
}

/// Regression: when the status filter left out a whole page, the poll answered `next_since` =
/// `since`, so a filtered poller never got past those items to the ones after them.
#[test]
fn a_filtered_poll_moves_past_a_page_the_filter_left_out() {
    let s = Server::start();
    let gone = s.create_intent("agent://team/pf");
    resolve(&s.base, &gone, "CANCELED");
    let wanted = s.create_intent("agent://team/pf");
    let mut since = 0;
    let mut found = Vec::new();
    let mut cursors = Vec::new();
    for _ in 0..5 {
        let path = format!("/v1/agents/team/pf/intents?status=SUBMITTED&limit=1&since={since}");
        let (items, next) = poll(&s, &path);
        cursors.push(next);
        found.extend(items.into_iter().map(|i| i.0));
        if next == since {
            break;
        }
        since = next;
    }
    assert_eq!(found, [wanted], "next_since after each poll: {cursors:?}");
}

#[test]
fn feed_long_poll_wakes_on_a_submission_and_answers_empty_after_the_wait() {
    let s = Server::start();
    let (_, start) = poll(&s, "/v1/agents/team/lp/intents");
    assert_eq!(start, 0);
    s.create_intent("agent://team/elsewhere"); // another address does not wake it
    let started = Instant::now();
    let writer = {
        let base = s.base.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(200));
            let r = post_to(&base, "/v1/intents", intent_body("agent://team/lp"));
            r.json["intent_id"].as_str().expect("id").to_string()
        })
    };
    let (items, next) = poll(&s, "/v1/agents/team/lp/intents?since=0&wait_seconds=5");
    let took = started.elapsed();
    let id = writer.join().expect("writer");
    assert_eq!(items.len(), 1, "{items:?}");
    assert_eq!(
        (items[0].0.as_str(), items[0].2.as_str()),
        (id.as_str(), "intent.submitted")
    );
    assert_eq!(next, items[0].1);
    assert!(took >= Duration::from_millis(200), "{took:?}");
    assert!(
        took < Duration::from_secs(3),
        "woken by the commit: {took:?}"
    );

    let started = Instant::now();
    let path = format!("/v1/agents/team/lp/intents?since={next}&wait_seconds=1");
    assert_eq!(poll(&s, &path), (vec![], next));
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

#[test]
fn feed_stream_delivers_live_and_resumes_with_since_and_last_event_id() {
    let s = Server::start();
    let ids: Vec<String> = (0..3)
        .map(|_| s.create_intent("agent://team/sse"))
        .collect();
    s.create_intent("agent://team/not-this-one");
    let mut sse = open(&s, "/v1/agents/team/sse/intents/stream", &[]);
    assert_eq!(sse.status, 200);
    assert_eq!(sse.header("content-type"), Some("text/event-stream"));
    sse.expect_retry();
    let mut seen = sse.events(3);
    settle();
    let live = s.create_intent("agent://team/sse");
    seen.extend(sse.events(1));
    let want: Vec<&str> = ids.iter().chain([&live]).map(String::as_str).collect();
    let got: Vec<Value> = seen.iter().map(Block::json).collect();
    let got_ids: Vec<&str> = got
        .iter()
        .map(|i| i["intent_id"].as_str().expect("id"))
        .collect();
    assert_eq!(got_ids, want);
    for (block, item) in seen.iter().zip(&got) {
        assert_eq!(block.event(), "intent.submitted");
        assert_eq!(item["seq"], block.seq(), "id: is the item's seq");
        assert_eq!(item["event_type"], "intent.submitted");
        assert_eq!(item["to_agent"], "agent://team/sse");
    }
    let seqs: Vec<i64> = seen.iter().map(Block::seq).collect();
    assert!(strictly_increasing(&seqs), "{seqs:?}");
    // The same cursor as the poll.
    let (polled, _) = poll(&s, "/v1/agents/team/sse/intents");
    assert_eq!(polled.iter().map(|i| i.1).collect::<Vec<_>>(), seqs);
    drop(sse);
    // The stream marked the intents it handed over (the first three surely before the fourth
    // was sent; the poll may have been first for the fourth).
    let r = s.get(&format!("/v1/intents/{}/events?since=2", ids[0]));
    assert_eq!(r.json["events"][0]["details"], json!({"via": "stream"}));

    let path = format!(
        "/v1/agents/agent%3A%2F%2Fteam%2Fsse/intents/stream?since={}&wait_seconds=1",
        seqs[1]
    );
    let mut resumed = open(&s, &path, &[]);
    resumed.expect_retry();
    let rest = resumed.rest();
    assert_eq!(ids_and_types(&rest), ids_and_types(&seen[2..]));
    assert_eq!(rest.last().map(Block::event), Some("stream.timeout"));

    let cursor = seqs[2].to_string();
    let path = "/v1/agents/team/sse/intents/stream?since=0&wait_seconds=1";
    let mut resumed = open(&s, path, &[("last-event-id", &cursor)]);
    resumed.expect_retry();
    assert_eq!(ids_and_types(&resumed.rest()), ids_and_types(&seen[3..]));
    assert_eq!(resumed.end, Some(End::Clean));

    let mut ahead = open(
        &s,
        "/v1/agents/team/sse/intents/stream?since=100000&wait_seconds=1",
        &[],
    );
    ahead.expect_retry();
    let reset = ahead.next().expect("reset");
    assert_eq!(reset.event(), "reset");
    let latest = reset.json()["latest"].as_i64().expect("latest");
    assert!(latest >= seqs[3], "{reset:?}");
    assert_eq!(reset.json()["reason"], "cursor_ahead");
}

/// Regression: a feed item was rendered from the row read before the hand-over, so a fresh
/// intent went out as SUBMITTED and AXME's agents (which act on DELIVERED) skipped it.
#[test]
fn r_a_handed_over_feed_item_shows_delivered() {
    let s = Server::start();
    let polled = s.create_intent("agent://team/hand");
    let r = s.get("/v1/agents/team/hand/intents");
    let item = &r.json["intents"][0];
    assert_eq!(item["intent_id"], polled.as_str());
    assert_eq!(
        (&item["status"], &item["lifecycle_status"]),
        (&json!("DELIVERED"), &json!("DELIVERED")),
        "{item}"
    );
    let next = r.json["next_since"].as_i64().expect("next_since");

    let streamed = s.create_intent("agent://team/hand");
    let path = format!("/v1/agents/agent://team/hand/intents/stream?since={next}");
    let mut sse = open(&s, &path, &[]);
    sse.expect_retry();
    let item = sse.events(1).remove(0).json();
    assert_eq!(item["intent_id"], streamed.as_str());
    assert_eq!(item["status"], "DELIVERED", "{item}");
    assert_eq!(item["event_type"], "intent.submitted");
    // What the item said is what the intent is.
    assert_eq!(status_of(&s, &streamed), "DELIVERED");
}

#[test]
fn terminal_items_are_left_out_unless_a_status_filter_names_them() {
    let s = Server::start();
    let live = s.create_intent("agent://team/term");
    let done = s.create_intent("agent://team/term");
    resolve(&s.base, &done, "COMPLETED");
    let canceled = s.create_intent("agent://team/term");
    resolve(&s.base, &canceled, "CANCELED");

    let (items, next) = poll(&s, "/v1/agents/team/term/intents");
    let ids: Vec<&str> = items.iter().map(|i| i.0.as_str()).collect();
    assert_eq!(ids, [live.as_str()]);
    // The cursor moves past what was left out.
    let (_, end) = poll(&s, &format!("/v1/agents/team/term/intents?{EVERY_STATUS}"));
    assert_eq!(next, end);

    let (items, _) = poll(&s, "/v1/agents/team/term/intents?status=COMPLETED");
    let shape: Vec<(&str, &str)> = items
        .iter()
        .map(|(id, _, t)| (id.as_str(), t.as_str()))
        .collect();
    assert_eq!(
        shape,
        [
            (done.as_str(), "intent.submitted"),
            (done.as_str(), "intent.completed")
        ]
    );
    // The stream leaves them out the same way.
    let mut sse = open(
        &s,
        "/v1/agents/team/term/intents/stream?wait_seconds=1",
        &[],
    );
    sse.expect_retry();
    let rest = sse.rest();
    let streamed: Vec<Value> = rest
        .iter()
        .filter(|b| b.is_event())
        .map(Block::json)
        .collect();
    assert_eq!(streamed.len(), 1, "{rest:?}");
    assert_eq!(streamed[0]["intent_id"], live.as_str());
    assert_eq!(rest.last().map(Block::event), Some("stream.timeout"));
}

/// Regression: `wait_seconds` only bounded the stream's idle time, so a feed that kept
/// receiving never ended, and AXME's TypeScript and Go SDKs (which read the response to its
/// end) never saw an item.
#[test]
fn r_wait_seconds_bounds_a_busy_feed_stream() {
    let s = Server::start();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (base, stop) = (s.base.clone(), stop.clone());
        thread::spawn(move || {
            let mut sent = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = post_to(&base, "/v1/intents", intent_body("agent://team/busy"));
                assert_eq!(r.status, 200, "{}", r.text);
                sent += 1;
                thread::sleep(Duration::from_millis(150));
            }
            sent
        })
    };
    let started = Instant::now();
    let mut sse = open(
        &s,
        "/v1/agents/team/busy/intents/stream?wait_seconds=2",
        &[],
    );
    sse.expect_retry();
    let rest = sse.rest();
    let took = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let sent = writer.join().expect("writer");
    let items = rest.iter().filter(|b| b.is_event()).count();
    assert!(items >= 3, "items kept arriving: {items} of {sent}");
    assert_eq!(rest.last().map(Block::event), Some("stream.timeout"));
    assert_eq!(sse.end, Some(End::Clean));
    assert!(took >= Duration::from_millis(1900), "{took:?}");
    assert!(
        took < Duration::from_secs(4),
        "ended by wait_seconds: {took:?}"
    );
}
