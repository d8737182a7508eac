//! A property test of the lifecycle state machine through the HTTP API: many random sequences of
//! operations (resolve, resume, ack, progress, claim, nack, redrive, with every status and some
//! nonsense) on fresh intents, from a fixed seed so a failure replays. After every operation:
//!
//! - an accepted operation appended events whose status moves are legal per SPEC.md's table
//!   (written out here independently of the server's own table), with `seq` following on;
//! - a move the table allows for resolve / progress is accepted, one it forbids is 409;
//! - a refused operation (any 4xx) changed nothing: status, `last_seq` and events are as before;
//! - the intent's status is the status of its last status-changing event, and a terminal intent
//!   never changes again (but for the documented redrive of `delivery_failed`).

use crate::common;

use common::{intent_body, Server};
use serde_json::{json, Value};

/// SPEC.md's legal moves, plus the two documented extras: resolving a fresh (SUBMITTED or
/// DELIVERED) intent straight to COMPLETED, and the redrive FAILED -> SUBMITTED.
fn legal(from: &str, to: &str) -> bool {
    let table: &[(&str, &[&str])] = &[
        ("CREATED", &["SUBMITTED"]),
        (
            "SUBMITTED",
            &[
                "DELIVERED",
                "IN_PROGRESS",
                "WAITING",
                "FAILED",
                "CANCELED",
                "TIMED_OUT",
                "COMPLETED",
            ],
        ),
        (
            "DELIVERED",
            &[
                "ACKNOWLEDGED",
                "IN_PROGRESS",
                "WAITING",
                "FAILED",
                "CANCELED",
                "TIMED_OUT",
                "SUBMITTED",
                "COMPLETED",
            ],
        ),
        (
            "ACKNOWLEDGED",
            &[
                "IN_PROGRESS",
                "WAITING",
                "COMPLETED",
                "FAILED",
                "CANCELED",
                "TIMED_OUT",
            ],
        ),
        (
            "IN_PROGRESS",
            &["WAITING", "COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"],
        ),
        (
            "WAITING",
            &[
                "IN_PROGRESS",
                "COMPLETED",
                "FAILED",
                "CANCELED",
                "TIMED_OUT",
            ],
        ),
    ];
    table.iter().any(|(f, tos)| *f == from && tos.contains(&to))
}

fn terminal(s: &str) -> bool {
    matches!(s, "COMPLETED" | "FAILED" | "CANCELED" | "TIMED_OUT")
}

/// A small deterministic generator (xorshift64*), so a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[(self.next() % items.len() as u64) as usize]
    }
}

#[derive(Debug, Clone, PartialEq)]
struct Snapshot {
    status: String,
    last_seq: i64,
    events: Vec<(i64, String, String)>,
}

fn snapshot(s: &Server, id: &str) -> Snapshot {
    let i = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(i.status, 200, "{}", i.text);
    let e = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(e.status, 200, "{}", e.text);
    Snapshot {
        status: i.json["intent"]["status"].as_str().unwrap().to_string(),
        last_seq: i.json["intent"]["last_seq"].as_i64().unwrap(),
        events: e.json["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["seq"].as_i64().unwrap(),
                    e["event_type"].as_str().unwrap().to_string(),
                    e["status"].as_str().unwrap().to_string(),
                )
            })
            .collect(),
    }
}

/// Event types that record something without a status change.
fn notes(event_type: &str) -> bool {
    matches!(
        event_type,
        "intent.delivery_failed" | "intent.reminder" | "intent.escalated" | "intent.transfer"
    )
}

/// The history invariants: gap-free seq from 1, every status move legal, the intent's status is
/// its last event's, nothing after a terminal event but a redrive.
fn check_history(snap: &Snapshot) {
    let seqs: Vec<i64> = snap.events.iter().map(|e| e.0).collect();
    assert_eq!(
        seqs,
        (1..=seqs.len() as i64).collect::<Vec<_>>(),
        "{snap:?}"
    );
    assert_eq!(snap.last_seq, seqs.len() as i64, "{snap:?}");
    let mut current = "CREATED".to_string();
    for (seq, event_type, status) in snap.events.iter().skip(1) {
        if notes(event_type) {
            assert_eq!(
                *status, current,
                "a note changed the status at seq {seq}: {snap:?}"
            );
            continue;
        }
        let redrive = current == "FAILED" && status == "SUBMITTED";
        assert!(
            legal(&current, status) || redrive,
            "illegal move {current} -> {status} at seq {seq}: {snap:?}"
        );
        current = status.clone();
    }
    assert_eq!(current, snap.status, "{snap:?}");
}

const STATUSES: &[&str] = &[
    "COMPLETED",
    "FAILED",
    "CANCELED",
    "IN_PROGRESS",
    "WAITING",
    "ACKNOWLEDGED",
    "SUBMITTED",
    "TIMED_OUT",
    "bogus",
];
const REASONS: &[&str] = &[
    "WAITING_FOR_HUMAN",
    "WAITING_FOR_TOOL",
    "WAITING_FOR_AGENT",
    "WAITING_FOR_TIME",
];

#[test]
fn random_operation_sequences_never_break_the_state_machine() {
    let s = Server::start_args(&["--push-retry-schedule", "1s"]);
    let agent = "agent://prop/worker";
    let r = s.post(
        "/v1/agents",
        &json!({"address": agent, "delivery_mode": "inbox", "max_delivery_attempts": 2}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    let mut accepted = 0;
    let mut refused = 0;
    for round in 0..60 {
        let mut body = intent_body(agent);
        body["max_delivery_attempts"] = json!(1 + rng.next() % 2);
        let r = s.post("/v1/intents", &body);
        assert_eq!(r.status, 200, "{}", r.text);
        let id = r.json["intent_id"].as_str().unwrap().to_string();
        let mut lease: Option<String> = None;
        for step in 0..12 {
            let before = snapshot(&s, &id);
            let op = rng.next() % 9;
            let (path, body, target): (String, Value, Option<&str>) = match op {
                0 | 1 => {
                    let to = *rng.pick(STATUSES);
                    let mut b = json!({"status": to});
                    match to {
                        "COMPLETED" => b["result"] = json!({"round": round}),
                        "FAILED" => b["error"] = json!({"code": "prop", "message": "random"}),
                        "CANCELED" => b["reason"] = json!("random"),
                        _ => {}
                    }
                    let target = ["COMPLETED", "FAILED", "CANCELED"]
                        .contains(&to)
                        .then_some(to);
                    (format!("/v1/intents/{id}/resolve"), b, target)
                }
                2 => {
                    let to = *rng.pick(&["IN_PROGRESS", "WAITING"]);
                    let mut b = json!({"status": to});
                    if to == "WAITING" {
                        b["waiting_reason"] = json!(*rng.pick(REASONS));
                    }
                    (format!("/v1/intents/{id}/progress"), b, Some(to))
                }
                3 => (format!("/v1/intents/{id}/resume"), json!({}), None),
                4 => (format!("/v1/intents/{id}/ack"), json!({}), None),
                5 => (
                    "/v1/agents/prop/worker/inbox/claim".to_string(),
                    json!({"max": 1, "lease_seconds": 60}),
                    None,
                ),
                6 => match &lease {
                    Some(t) => (
                        format!("/v1/claims/{t}/nack"),
                        json!({"delay_seconds": 0}),
                        None,
                    ),
                    None => (format!("/v1/intents/{id}/ack"), json!({}), None),
                },
                7 => match &lease {
                    Some(t) => (
                        format!("/v1/claims/{t}/ack"),
                        json!({"status": *rng.pick(&["ACKNOWLEDGED", "IN_PROGRESS", "COMPLETED", "FAILED"])}),
                        None,
                    ),
                    None => (format!("/v1/intents/{id}/resume"), json!({}), None),
                },
                _ => (format!("/v1/intents/{id}/redrive"), json!({}), None),
            };
            let r = s.post(&path, &body);
            assert!(
                r.status < 500,
                "round {round} step {step} {path}: {}",
                r.text
            );
            if path.ends_with("/claim") {
                if let Some(t) = r.json["claims"][0]["lease_token"].as_str() {
                    if r.json["claims"][0]["intent"]["intent_id"] == json!(id) {
                        lease = Some(t.to_string());
                    }
                }
            }
            let after = snapshot(&s, &id);
            if r.status == 200 {
                accepted += 1;
            } else {
                refused += 1;
                assert!(r.has_error_shape(), "{}", r.text);
                assert_eq!(
                    after, before,
                    "refused {path} {body} changed the intent: {}",
                    r.text
                );
            }
            if let Some(to) = target {
                // The table decides resolve and progress alone (their bodies were valid).
                let from = before.status.as_str();
                let ok = body["status"] != json!("bogus") && legal(from, to);
                if ok {
                    assert_eq!(
                        r.status, 200,
                        "{from} -> {to} is legal but {path} said {}",
                        r.text
                    );
                } else if !terminal(from) || r.status != 422 {
                    assert!(
                        r.status == 409 || r.status == 422,
                        "{from} -> {to} is illegal but {path} said {} {}",
                        r.status,
                        r.text
                    );
                }
            }
            if terminal(&before.status)
                && !(before.status == "FAILED" && after.status == "SUBMITTED")
            {
                assert_eq!(after, before, "a terminal intent changed after {path}");
            }
            check_history(&after);
        }
    }
    assert!(
        accepted > 100 && refused > 100,
        "the sequences explored too little: {accepted} accepted, {refused} refused"
    );
}
