//! Intent deadlines: `deadline_at` -> TIMED_OUT once, from a durable timer that survives restarts.

use crate::common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

fn in_ms(ms: i64) -> String {
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{:.3}", now_s() + ms as f64 / 1000.0),
            "+%Y-%m-%dT%H:%M:%S.%3NZ",
        ])
        .output()
        .expect("date");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}

fn now_s() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs_f64()
}

fn create_with_deadline(s: &Server, deadline: &str) -> String {
    let mut body = intent_body("agent://deadline/w");
    body["deadline_at"] = Value::from(deadline);
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent_id"].as_str().expect("id").to_string()
}

fn status(s: &Server, id: &str) -> String {
    s.get(&format!("/v1/intents/{id}")).json["intent"]["status"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

fn wait_for_status(s: &Server, id: &str, want: &str, within: Duration) -> bool {
    let end = Instant::now() + within;
    while Instant::now() < end {
        if status(s, id) == want {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn a_passed_deadline_times_the_intent_out_once() {
    let s = Server::start();
    let id = create_with_deadline(&s, &in_ms(600));
    assert_eq!(status(&s, &id), "SUBMITTED");
    assert!(wait_for_status(
        &s,
        &id,
        "TIMED_OUT",
        Duration::from_secs(10)
    ));
    let events = s.get(&format!("/v1/intents/{id}/events")).json["events"].clone();
    let timed_out: Vec<&Value> = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event_type"] == "intent.timed_out")
        .collect();
    assert_eq!(timed_out.len(), 1, "{events}");
    assert_eq!(timed_out[0]["details"]["error"]["code"], "intent_timeout");
    let intent = s.get(&format!("/v1/intents/{id}")).json["intent"].clone();
    assert_eq!(intent["error"]["code"], "intent_timeout");
}

#[test]
fn a_resolved_intent_is_not_timed_out_later() {
    let s = Server::start();
    let id = create_with_deadline(&s, &in_ms(700));
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &serde_json::json!({"status": "COMPLETED", "result": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // A timer due after the deadline has fired: the deadline's round has run too.
    crate::runtime_timers::timers_caught_up(&s, 1);
    assert_eq!(status(&s, &id), "COMPLETED");
}

#[test]
fn a_deadline_that_passed_while_the_server_was_down_fires_at_startup() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let mut s = Server::start_on(&db, &[]);
    let deadline = in_ms(800);
    let passed = Instant::now() + Duration::from_millis(850);
    let id = create_with_deadline(&s, &deadline);
    assert_eq!(s.terminate(), Some(0));
    // The deadline passes while nothing runs.
    std::thread::sleep(passed.saturating_duration_since(Instant::now()));
    let s = Server::start_on(&db, &[]);
    assert!(wait_for_status(
        &s,
        &id,
        "TIMED_OUT",
        Duration::from_secs(5)
    ));
    let events = s.get(&format!("/v1/intents/{id}/events")).json["events"].clone();
    let n = events
        .as_array()
        .expect("events")
        .iter()
        .filter(|e| e["event_type"] == "intent.timed_out")
        .count();
    assert_eq!(n, 1, "{events}");
}
