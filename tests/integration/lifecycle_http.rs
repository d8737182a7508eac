//! The lifecycle state machine as the HTTP API exposes it. Every status reachable through the
//! API (SUBMITTED fresh, ACKNOWLEDGED by ack, IN_PROGRESS and WAITING by progress, COMPLETED,
//! FAILED and CANCELED by resolve; DELIVERED only ever passes inside an ack, TIMED_OUT needs the
//! deadline machinery) is tried with every write endpoint. The expected outcome comes from
//! SPEC.md's table, written out again here: legal moves append exactly the right events, illegal
//! ones are 409 and leave the intent and its log byte for byte as they were. Also: the event log
//! of a full walk, and a graceful shutdown that keeps everything.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// Every write an intent can be sent through the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Ack,
    ProgressInProgress,
    ProgressWaiting,
    Resume,
    Complete,
    Fail,
    Cancel,
}

use Action::*;

const ACTIONS: [Action; 7] = [
    Ack,
    ProgressInProgress,
    ProgressWaiting,
    Resume,
    Complete,
    Fail,
    Cancel,
];

impl Action {
    fn send(self, s: &Server, id: &str) -> Resp {
        let (endpoint, body) = match self {
            Ack => ("ack", json!({})),
            ProgressInProgress => ("progress", json!({"status": "IN_PROGRESS"})),
            ProgressWaiting => (
                "progress",
                json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_TOOL"}),
            ),
            Resume => ("resume", json!({"reason": "go on"})),
            Complete => (
                "resolve",
                json!({"status": "COMPLETED", "result": {"v": 1}}),
            ),
            Fail => (
                "resolve",
                json!({"status": "FAILED", "error": {"code": "x"}}),
            ),
            Cancel => ("resolve", json!({"status": "CANCELED", "reason": "stop"})),
        };
        s.post(&format!("/v1/intents/{id}/{endpoint}"), &body)
    }

    fn is_resolve(self) -> bool {
        matches!(self, Complete | Fail | Cancel)
    }
}

/// What SPEC.md's table says `action` does from `from`: the event types it appends, or the
/// code of its 409.
fn expected(from: &str, action: Action) -> Result<&'static [&'static str], &'static str> {
    if ["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"].contains(&from) {
        return Err("intent_terminal");
    }
    match (from, action) {
        ("SUBMITTED", Ack) => Ok(&["intent.delivered", "intent.acknowledged"]),
        ("DELIVERED", Ack) => Ok(&["intent.acknowledged"]),
        (_, Ack) => Err("invalid_transition"),
        ("WAITING", Resume) => Ok(&["intent.in_progress"]),
        (_, Resume) => Err("invalid_transition"),
        ("IN_PROGRESS", ProgressInProgress) | ("WAITING", ProgressWaiting) => {
            Err("invalid_transition")
        }
        (_, ProgressInProgress) => Ok(&["intent.in_progress"]),
        (_, ProgressWaiting) => Ok(&["intent.waiting"]),
        (_, Complete) => Ok(&["intent.completed"]),
        (_, Fail) => Ok(&["intent.failed"]),
        (_, Cancel) => Ok(&["intent.canceled"]),
    }
}

/// A new intent driven into `status` through the API.
fn intent_in(s: &Server, status: &str) -> String {
    let id = s.create_intent("agent://team/worker");
    let path = match status {
        "SUBMITTED" => None,
        "ACKNOWLEDGED" => Some(Ack),
        "IN_PROGRESS" => Some(ProgressInProgress),
        "WAITING" => Some(ProgressWaiting),
        "COMPLETED" => Some(Complete),
        "FAILED" => Some(Fail),
        "CANCELED" => Some(Cancel),
        other => panic!("{other} is not reachable through the API"),
    };
    if let Some(a) = path {
        let r = a.send(s, &id);
        assert_eq!(r.status, 200, "driving to {status}: {}", r.text);
    }
    assert_eq!(snapshot(s, &id).0["status"], status);
    id
}

/// The intent and its whole event log.
fn snapshot(s: &Server, id: &str) -> (Value, Vec<Value>) {
    let i = s.get(&format!("/v1/intents/{id}"));
    let e = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!((i.status, e.status), (200, 200), "{} {}", i.text, e.text);
    let events = e.json["events"].as_array().expect("events").clone();
    (i.json["intent"].clone(), events)
}

/// Tries every action on a fresh intent in `from` and checks it against the table.
fn every_action_from(from: &str) {
    let s = Server::start();
    for action in ACTIONS {
        let id = intent_in(&s, from);
        let (before, log_before) = snapshot(&s, &id);
        let r = action.send(&s, &id);
        let (after, log_after) = snapshot(&s, &id);
        let case = format!("{from} --{action:?}-->");
        match expected(from, action) {
            Ok(types) => {
                assert_eq!(r.status, 200, "{case} {}", r.text);
                assert_eq!(
                    log_after[..log_before.len()],
                    log_before[..],
                    "{case} history"
                );
                let appended = &log_after[log_before.len()..];
                let got: Vec<&str> = appended
                    .iter()
                    .map(|e| e["event_type"].as_str().unwrap_or(""))
                    .collect();
                assert_eq!(got, types, "{case}");
                for (k, e) in appended.iter().enumerate() {
                    let seq = before["last_seq"].as_i64().unwrap() + 1 + k as i64;
                    assert_eq!(e["seq"], seq, "{case}");
                    let status = e["status"].as_str().unwrap().to_lowercase();
                    assert_eq!(e["event_type"], format!("intent.{status}"), "{case}");
                }
                let last = appended.last().unwrap();
                assert_eq!(after["status"], last["status"], "{case}");
                assert_eq!(after["last_seq"], last["seq"], "{case}");
                assert_eq!(r.json["intent"], after, "{case}");
                assert_eq!(r.json["event"], *last, "{case}");
                if action.is_resolve() {
                    assert!(r.json.get("events").is_none(), "{case}");
                    assert!(r.json["completion_delivery"].is_object(), "{case}");
                } else {
                    assert_eq!(r.json["events"], json!(appended), "{case}");
                }
            }
            Err(code) => {
                assert_eq!(r.status, 409, "{case} {}", r.text);
                assert_eq!(r.code(), code, "{case} {}", r.text);
                assert_eq!(r.json["detail"], r.json["error"]["message"], "{case}");
                assert_eq!(
                    (after, log_after),
                    (before, log_before),
                    "{case} changed it"
                );
            }
        }
    }
}

#[test]
fn from_submitted_every_endpoint_follows_the_table() {
    every_action_from("SUBMITTED");
}

#[test]
fn from_acknowledged_every_endpoint_follows_the_table() {
    every_action_from("ACKNOWLEDGED");
}

#[test]
fn from_in_progress_every_endpoint_follows_the_table() {
    every_action_from("IN_PROGRESS");
}

#[test]
fn from_waiting_every_endpoint_follows_the_table() {
    every_action_from("WAITING");
}

#[test]
fn from_completed_every_endpoint_is_intent_terminal() {
    every_action_from("COMPLETED");
}

#[test]
fn from_failed_every_endpoint_is_intent_terminal() {
    every_action_from("FAILED");
}

#[test]
fn from_canceled_every_endpoint_is_intent_terminal() {
    every_action_from("CANCELED");
}

#[test]
fn a_full_walk_logs_gap_free_events_matching_each_status() {
    let s = Server::start();
    let id = s.create_intent("agent://team/worker");
    let r = s.post(
        &format!("/v1/intents/{id}/ack"),
        &json!({"actor": "agent://team/worker/1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    for action in [ProgressInProgress, ProgressWaiting, Resume, Complete] {
        let r = action.send(&s, &id);
        assert_eq!(r.status, 200, "{action:?}: {}", r.text);
    }
    let (intent, events) = snapshot(&s, &id);
    let types: Vec<&str> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.acknowledged",
            "intent.in_progress",
            "intent.waiting",
            "intent.in_progress",
            "intent.completed",
        ]
    );
    assert_eq!(intent["last_seq"], 8);
    assert_eq!(intent["status"], "COMPLETED");
    let mut prev_at = String::new();
    for (k, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], k as i64 + 1);
        assert_eq!(e["intent_id"], id.as_str());
        assert_eq!(e["handler"], "agent://team/worker");
        let status = e["status"].as_str().unwrap();
        assert_eq!(e["event_type"], format!("intent.{}", status.to_lowercase()));
        let reason = if status == "WAITING" {
            json!("WAITING_FOR_TOOL")
        } else {
            Value::Null
        };
        assert_eq!(e["waiting_reason"], reason, "seq {}", k + 1);
        let at = e["at"].as_str().unwrap().to_string();
        assert!(at >= prev_at, "times go backwards: {prev_at} then {at}");
        prev_at = at;
    }
    assert_eq!(events[2]["actor"], "agent://team/worker/1");
    assert_eq!(events[3]["actor"], "agent://team/worker/1");
    assert_eq!(events[6]["details"]["reason"], "go on");
    assert_eq!(events[7]["details"]["result"], json!({"v": 1}));

    for since in 0..=8 {
        let r = s.get(&format!("/v1/intents/{id}/events?since={since}"));
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.json["events"], json!(events[since..]), "since={since}");
    }
    let beyond = s.get(&format!("/v1/intents/{id}/events?since=1000"));
    assert_eq!(beyond.status, 200, "{}", beyond.text);
    assert_eq!(beyond.json["events"], json!([]));
}

#[test]
fn events_of_an_unknown_intent_are_404() {
    let s = Server::start();
    s.create_intent("agent://w");
    let missing = uuid();
    for query in ["", "?since=0", "?since=5"] {
        let r = s.get(&format!("/v1/intents/{missing}/events{query}"));
        assert_eq!(r.status, 404, "{}", r.text);
        assert_eq!(r.code(), "intent_not_found");
    }
}

#[test]
fn sigterm_exits_zero_and_everything_is_there_after_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let mut s = Server::start_on(&db, &[]);
    let submitted = intent_in(&s, "SUBMITTED");
    let waiting = intent_in(&s, "WAITING");
    let completed = intent_in(&s, "COMPLETED");
    let before: Vec<_> = [&submitted, &waiting, &completed]
        .iter()
        .map(|id| snapshot(&s, id))
        .collect();
    let list_before = s.get("/v1/intents").json;
    assert_eq!(
        s.terminate(),
        Some(0),
        "SIGTERM must end the server cleanly"
    );

    let s = Server::start_on(&db, &[]);
    let after: Vec<_> = [&submitted, &waiting, &completed]
        .iter()
        .map(|id| snapshot(&s, id))
        .collect();
    assert_eq!(after, before);
    assert_eq!(s.get("/v1/intents").json, list_before);
    // The restarted server carries on where it stopped.
    let r = Resume.send(&s, &waiting);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["event"]["seq"], 4);
}

#[test]
fn sigint_shuts_down_as_cleanly_as_sigterm() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let mut s = Server::start_on(&db, &[]);
    let id = intent_in(&s, "ACKNOWLEDGED");
    let before = snapshot(&s, &id);
    // Were SIGINT not handled, its default action would kill the process before the SIGTERM
    // that `terminate` sends next, and there would be no exit code.
    signal(s.pid(), "INT");
    assert_eq!(s.terminate(), Some(0));
    let s = Server::start_on(&db, &[]);
    assert_eq!(snapshot(&s, &id), before);
}
