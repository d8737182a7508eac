//! Pushes survive the server going away, and one bad endpoint cannot hold up the others
//! (SPEC.md: "Pending deliveries survive a restart", "Nothing acknowledged is ever lost ... not
//! when a receiver is down"). Restarts reuse the database file of the first server; a crash is
//! SIGKILL.

use crate::common;
use crate::receiver;

use std::time::{Duration, Instant};

use common::*;
use receiver::*;
use serde_json::{json, Value};

fn delivery_id_of(s: &Server, intent_id: &str) -> String {
    eventually("the intent's delivery", || {
        deliveries_of(s, intent_id)
            .first()
            .and_then(|d| d["delivery_id"].as_str().map(str::to_string))
    })
}

#[test]
fn pushes_pending_while_the_receiver_is_down_arrive_after_a_restart() {
    let args = ["--push-retry-schedule", "300ms"];
    let mut first = Server::start_args(&args);
    let port = closed_port();
    let to = address("down-then-up");
    let url = format!("http://127.0.0.1:{port}/hook");
    let secret = register_http(&first, &to, &url, json!({"max_delivery_attempts": 1000}));
    let intents: Vec<String> = (0..3).map(|_| first.create_intent(&to)).collect();
    let ids: Vec<String> = intents.iter().map(|i| delivery_id_of(&first, i)).collect();
    for id in &ids {
        eventually("a refused attempt", || {
            let d = delivery(&first, id);
            (d["status"] == "pending" && !attempts(&d).is_empty()).then_some(())
        });
    }
    assert_eq!(first.terminate(), Some(0));

    let rx = Receiver::start_on(port, Reply::ok());
    let second = Server::start_on(&first.data, &args);
    let hits = rx.wait_hits(3);
    let mut got: Vec<&str> = hits.iter().map(|h| h.id()).collect();
    let mut want: Vec<&str> = ids.iter().map(String::as_str).collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "every pending push arrives, under its own webhook-id"
    );
    for h in &hits {
        assert_signed(h, &key_of(&secret));
    }
    for (intent_id, id) in intents.iter().zip(&ids) {
        let d = wait_delivery(&second, id, "delivered");
        let a = attempts(&d);
        assert!(a.len() >= 2, "the refused attempts are kept: {d}");
        assert!(a[..a.len() - 1].iter().all(|x| x["status_code"].is_null()));
        assert_eq!(a[a.len() - 1]["status_code"], 200);
        wait_intent_status(&second, intent_id, "DELIVERED");
    }
    assert_eq!(rx.hits().len(), 3, "each arrives once");
}

#[test]
fn a_push_cut_by_a_crash_is_sent_again_with_the_same_webhook_id() {
    let args = ["--push-retry-schedule", "200ms", "--push-timeout", "20"];
    let mut first = Server::start_args(&args);
    let rx = Receiver::start(Reply::json(200, json!({"status": "ACKNOWLEDGED"})));
    rx.then([Reply::hang(Duration::from_secs(60))]);
    let to = address("crash");
    register_http(&first, &to, &rx.url(), json!({}));
    let id = first.create_intent(&to);
    let cut = rx.wait_hits(1).remove(0);
    first.kill();

    let second = Server::start_on(&first.data, &args);
    let hits = rx.wait_hits(2);
    assert_eq!(
        hits[1].id(),
        cut.id(),
        "at-least-once: receivers dedupe on webhook-id"
    );
    assert_eq!(hits[1].json()["data"]["intent"]["intent_id"], id.as_str());
    let d = wait_delivery(&second, cut.id(), "delivered");
    assert_eq!(attempts(&d).last().unwrap()["status_code"], 200);
    wait_intent_status(&second, &id, "ACKNOWLEDGED");
}

#[test]
fn a_graceful_stop_lets_the_push_in_flight_finish_and_records_it() {
    let args = ["--push-retry-schedule", "200ms", "--push-timeout", "10"];
    let mut first = Server::start_args(&args);
    let rx = Receiver::start(Reply::ok());
    rx.then([Reply::hang(Duration::from_millis(700))]);
    let to = address("graceful");
    register_http(&first, &to, &rx.url(), json!({}));
    let id = first.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    assert_eq!(first.terminate(), Some(0));

    let second = Server::start_on(&first.data, &args);
    let d = delivery(&second, hit.id());
    assert_eq!(d["status"], "delivered", "recorded before the exit: {d}");
    assert_eq!(attempts(&d).len(), 1);
    assert_eq!(intent(&second, &id)["status"], "DELIVERED");
    assert_eq!(rx.hits().len(), 1, "not sent twice");
}

#[test]
fn a_hanging_endpoint_does_not_hold_up_a_healthy_one() {
    let s = Server::start_args(&[
        "--push-endpoint-concurrency",
        "1",
        "--push-timeout",
        "2",
        "--push-retry-schedule",
        "1h",
    ]);
    let slow = Receiver::start(Reply::hang(Duration::from_secs(30)));
    let fast = Receiver::start(Reply::ok());
    let (a, b) = (address("slow"), address("fast"));
    register_http(&s, &a, &slow.url(), json!({}));
    register_http(&s, &b, &fast.url(), json!({}));
    for _ in 0..3 {
        s.create_intent(&a);
    }
    let stuck = slow.wait_hits(1).remove(0);
    let started = Instant::now();
    let healthy: Vec<String> = (0..5).map(|_| s.create_intent(&b)).collect();
    let hits = fast.wait_hits(5);
    let last = hits.iter().map(|h| h.at).max().unwrap();
    assert!(
        last - stuck.at < Duration::from_millis(1500),
        "healthy pushes took {:?} (created after {:?})",
        last - stuck.at,
        started - stuck.at
    );
    assert_eq!(
        slow.hits().len(),
        1,
        "one push at a time to the slow endpoint"
    );
    for id in &healthy {
        wait_intent_status(&s, id, "DELIVERED");
    }
    // The slow endpoint's next push waits for the first to time out.
    let slow_hits = slow.wait_hits(2);
    let gap = slow_hits[1].at - slow_hits[0].at;
    assert!(
        gap >= Duration::from_millis(1800),
        "second slow push after {gap:?}"
    );
    let d = delivery(&s, stuck.id());
    let err = attempts(&d)[0]["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("timed out"), "{d}");
    assert_eq!(d["status"], "pending", "retried in an hour: {d}");
    assert!(d["next_attempt_at"].is_string());
}

#[test]
fn the_delivery_log_pages_newest_first_and_filters_by_status() {
    let s = Server::start_args(&["--push-retry-schedule", "100ms"]);
    let ok = Receiver::start(Reply::ok());
    let bad = Receiver::start(Reply::status(500));
    let (a, b) = (address("log-ok"), address("log-bad"));
    register_http(&s, &a, &ok.url(), json!({}));
    register_http(&s, &b, &bad.url(), json!({"max_delivery_attempts": 1}));
    let mut made: Vec<String> = (0..3).map(|_| s.create_intent(&a)).collect();
    made.push(s.create_intent(&b));
    let ids: Vec<String> = made.iter().map(|i| delivery_id_of(&s, i)).collect();
    wait_delivery(&s, &ids[3], "dead_lettered");
    for id in &ids[..3] {
        wait_delivery(&s, id, "delivered");
    }
    let page = |q: &str| {
        let r = s.get(&format!("/v1/deliveries?{q}"));
        assert_eq!(r.status, 200, "{q}: {}", r.text);
        let ids: Vec<String> = r.json["deliveries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["delivery_id"].as_str().unwrap().to_string())
            .collect();
        (ids, r.json["next_cursor"].clone())
    };
    let (p1, c1) = page("limit=3");
    assert_eq!(
        p1,
        [ids[3].clone(), ids[2].clone(), ids[1].clone()],
        "newest first"
    );
    let (p2, c2) = page(&format!("limit=3&cursor={}", c1.as_str().unwrap()));
    assert_eq!(p2, [ids[0].clone()]);
    assert_eq!(c2, Value::Null);
    assert_eq!(page("status=dead_lettered").0, [ids[3].clone()]);
    assert_eq!(page("status=delivered").0.len(), 3);
    assert!(page("status=pending").0.is_empty());
    for (q, field) in [
        ("status=lost", "status"),
        ("limit=0", "limit"),
        ("limit=201", "limit"),
        ("intent_id=nope", "intent_id"),
    ] {
        let r = s.get(&format!("/v1/deliveries?{q}"));
        assert_eq!((r.status, r.field()), (422, field), "{q}: {}", r.text);
    }
    let r = s.get("/v1/deliveries/msg_missing");
    assert_eq!(r.status, 404, "{}", r.text);
}
