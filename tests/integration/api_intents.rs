//! The intents API from the outside, on its happy paths: every endpoint answers with the shape
//! AXP and SPEC.md promise, echoes what was sent (normalized where the spec says so), filters
//! and pages the listing without gaps or duplicates, and reports each change with its event.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, lowercase hex.
fn is_uuid(s: &str) -> bool {
    s.len() == 36
        && s.char_indices().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => c == '-',
            _ => c.is_ascii_digit() || ('a'..='f').contains(&c),
        })
}

/// The server's one timestamp spelling: RFC 3339 UTC with microseconds.
fn is_rfc3339_micros(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 27
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            10 => *c == b'T',
            13 | 16 => *c == b':',
            19 => *c == b'.',
            26 => *c == b'Z',
            _ => c.is_ascii_digit(),
        })
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    k.sort_unstable();
    k
}

fn ids(list: &Resp) -> Vec<String> {
    assert_eq!(list.status, 200, "{}", list.text);
    list.json["intents"]
        .as_array()
        .expect("intents")
        .iter()
        .map(|i| i["intent_id"].as_str().expect("intent_id").to_string())
        .collect()
}

fn create_with(s: &Server, body: Value) -> String {
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent_id"].as_str().expect("intent_id").to_string()
}

#[test]
fn capabilities_list_the_intent_operations() {
    let s = Server::start();
    let r = s.get("/v1/capabilities");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ok"], true);
    let caps: Vec<&str> = r.json["capabilities"]
        .as_array()
        .expect("capabilities")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for c in [
        "intents.create",
        "intents.get",
        "intents.resolve",
        "idempotency",
    ] {
        assert!(caps.contains(&c), "{c} missing from {caps:?}");
    }
    assert!(r.json["supported_intent_types"].is_array());
}

#[test]
fn create_answers_submitted_with_a_uuid_and_an_rfc3339_time() {
    let s = Server::start();
    let r = s.post("/v1/intents", &intent_body("agent://team/worker"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(keys(&r.json), ["created_at", "intent_id", "ok", "status"]);
    assert_eq!(r.json["ok"], true);
    assert_eq!(r.json["status"], "SUBMITTED");
    let id = r.json["intent_id"].as_str().unwrap();
    assert!(is_uuid(id), "{id}");
    let at = r.json["created_at"].as_str().unwrap();
    assert!(is_rfc3339_micros(at), "{at}");
    assert_eq!(
        s.get(&format!("/v1/intents/{id}")).json["intent"]["created_at"],
        at
    );
}

#[test]
fn get_echoes_every_field_normalized() {
    let s = Server::start();
    let correlation = uuid().to_uppercase();
    let payload = json!({"n": 1, "nested": {"list": [1, "two", null, 3.5]}, "text": "héllo ✓"});
    let task = json!({
        "title": "Approve the invoice",
        "description": "Check the amounts",
        "task_type": "approval",
        "allowed_outcomes": ["approve", "reject"],
        "required_comment": true,
        "assignees": ["alice@example.com"],
        "evidence_required": false,
        "form_schema": {"type": "object"},
    });
    let r = s.post(
        "/v1/intents",
        &json!({
            "intent_type": "billing.invoice.send.v2",
            "correlation_id": correlation,
            "to_agent": "team/worker",
            "reply_to": "agent://team/requester",
            "payload": payload,
            "deadline_at": "2030-01-02T03:04:05.5+02:00",
            "remind_after_seconds": 60,
            "remind_interval_seconds": 30,
            "max_reminders": 3,
            "escalate_to": "agent://team/boss",
            "max_delivery_attempts": 7,
            "human_task": task,
        }),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap();
    let got = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(keys(&got.json), ["intent", "ok", "payload"]);
    let i = &got.json["intent"];
    assert_eq!(
        got.json["payload"], i["payload"],
        "the payload again beside the intent"
    );
    assert_eq!(i["intent_id"], id);
    assert_eq!(i["intent_type"], "billing.invoice.send.v2");
    assert_eq!(i["correlation_id"], correlation.to_lowercase());
    assert_eq!(i["to_agent"], "agent://team/worker");
    assert_eq!(i["from_agent"], "agent://admin");
    assert_eq!(i["reply_to"], "agent://team/requester");
    assert_eq!(i["payload"], payload);
    assert_eq!(i["deadline_at"], "2030-01-02T01:04:05.500000Z");
    assert_eq!(i["remind_after_seconds"], 60);
    assert_eq!(i["remind_interval_seconds"], 30);
    assert_eq!(i["max_reminders"], 3);
    assert_eq!(i["remind_count"], 0);
    assert_eq!(i["escalate_to"], "agent://team/boss");
    assert_eq!(i["max_delivery_attempts"], 7);
    assert_eq!(i["delivery_attempt"], 0);
    assert_eq!(i["human_task"], task);
    // A human task waits for a person from its creation (seq 3, `intent.waiting`).
    assert_eq!(i["status"], "WAITING");
    assert_eq!(i["waiting_reason"], "WAITING_FOR_HUMAN");
    assert_eq!(
        i["pending_with"],
        json!({"type": "human", "ref": "agent://team/worker"})
    );
    assert_eq!(i["last_seq"], 3);
    assert_eq!(i["created_at"], r.json["created_at"]);
    assert!(is_rfc3339_micros(i["updated_at"].as_str().unwrap()));
    for absent in ["result", "error"] {
        assert!(i.get(absent).is_none(), "{absent} should be absent: {i}");
    }
    // The path id is read case-insensitively, like every UUID.
    let upper = s.get(&format!("/v1/intents/{}", id.to_uppercase()));
    assert_eq!(upper.json["intent"], *i);
}

#[test]
fn an_explicit_from_agent_is_kept() {
    let s = Server::start();
    let mut body = intent_body("agent://w");
    body["from_agent"] = json!("svc/billing");
    let id = create_with(&s, body);
    let i = s.get(&format!("/v1/intents/{id}")).json["intent"].clone();
    assert_eq!(i["from_agent"], "agent://svc/billing");
    assert!(i.get("reply_to").is_none() && i.get("human_task").is_none());
}

#[test]
fn list_filters_by_each_field() {
    let s = Server::start();
    let corr = uuid();
    let mut b = intent_body("agent://a");
    b["correlation_id"] = json!(corr);
    let a1 = create_with(&s, b);
    let mut b = intent_body("agent://a");
    b["from_agent"] = json!("agent://other");
    let a2 = create_with(&s, b);
    let b1 = create_with(&s, intent_body("agent://b"));
    let r = s.post(
        &format!("/v1/intents/{b1}/resolve"),
        &json!({"status": "COMPLETED", "result": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let (a1, a2, b1) = (a1.as_str(), a2.as_str(), b1.as_str());

    let q = |query: &str| ids(&s.get(&format!("/v1/intents{query}")));
    assert_eq!(q(""), [b1, a2, a1]);
    assert_eq!(q("?to_agent=agent://a"), [a2, a1]);
    assert_eq!(q("?to_agent=agent%3A%2F%2Fa"), [a2, a1]);
    assert_eq!(q("?to_agent=a"), [a2, a1], "a bare address is normalized");
    assert_eq!(q("?to_agent=agent://b"), [b1]);
    assert_eq!(q("?to_agent=agent://nobody"), Vec::<String>::new());
    assert_eq!(q("?from_agent=agent://other"), [a2]);
    assert_eq!(q("?from_agent=agent://admin"), [b1, a1]);
    assert_eq!(q("?status=COMPLETED"), [b1]);
    assert_eq!(q("?status=SUBMITTED"), [a2, a1]);
    assert_eq!(q("?status=WAITING"), Vec::<String>::new());
    assert_eq!(q(&format!("?correlation_id={corr}")), [a1]);
    assert_eq!(q(&format!("?correlation_id={}", corr.to_uppercase())), [a1]);
    assert_eq!(q("?to_agent=agent://a&from_agent=agent://admin"), [a1]);
    assert_eq!(q("?limit=1"), [b1]);

    let full = s.get("/v1/intents?status=COMPLETED");
    assert_eq!(keys(&full.json), ["intents", "next_cursor", "ok"]);
    assert_eq!(full.json["intents"][0]["status"], "COMPLETED");
    assert_eq!(full.json["intents"][0]["result"], json!({}));
}

#[test]
fn cursor_pages_through_seven_intents_newest_first_without_gaps() {
    let s = Server::start();
    let mut created: Vec<String> = (0..7).map(|_| s.create_intent("agent://p")).collect();
    created.reverse();

    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => "/v1/intents?limit=3".to_string(),
            Some(c) => format!("/v1/intents?limit=3&cursor={c}"),
        };
        let page = s.get(&path);
        let page_ids = ids(&page);
        pages.push(page_ids.len());
        seen.extend(page_ids);
        match &page.json["next_cursor"] {
            Value::Null => break,
            Value::String(c) => cursor = Some(c.clone()),
            other => panic!("next_cursor must be a string or null, got {other}"),
        }
        assert!(pages.len() <= 3, "more pages than intents: {pages:?}");
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen, created);

    // A page that ends exactly at the last intent says so.
    let all = s.get("/v1/intents?limit=7");
    assert_eq!(ids(&all), created);
    assert_eq!(all.json["next_cursor"], Value::Null);
}

#[test]
fn events_since_returns_only_newer_events() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let all = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(all.status, 200, "{}", all.text);
    assert_eq!(keys(&all.json), ["events", "ok"]);
    let ev = all.json["events"].as_array().unwrap();
    assert_eq!(ev.len(), 2);
    assert_eq!(ev[0]["seq"], 1);
    assert_eq!(ev[0]["event_type"], "intent.created");
    assert_eq!(ev[0]["status"], "CREATED");
    assert_eq!(ev[0]["details"], json!({"intent_type": "demo.task.v1"}));
    assert_eq!(ev[1]["seq"], 2);
    assert_eq!(ev[1]["event_type"], "intent.submitted");
    assert_eq!(ev[1]["status"], "SUBMITTED");
    for e in ev {
        assert_eq!(e["intent_id"], id.as_str());
        assert_eq!(e["handler"], "agent://w");
        assert_eq!(e["actor"], "agent://admin");
        assert_eq!(e["waiting_reason"], Value::Null);
        assert!(is_rfc3339_micros(e["at"].as_str().unwrap()));
    }
    let since1 = s.get(&format!("/v1/intents/{id}/events?since=1"));
    assert_eq!(since1.json["events"], json!([ev[1]]));
    let since2 = s.get(&format!("/v1/intents/{id}/events?since=2"));
    assert_eq!(since2.json["events"], json!([]));
}

#[test]
fn resolve_completed_returns_intent_event_and_no_delivery() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let result = json!({"answer": 42, "items": ["a", "b"]});
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": result, "actor": "agent://w"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        keys(&r.json),
        ["completion_delivery", "event", "intent", "ok"]
    );
    assert_eq!(r.json["intent"]["status"], "COMPLETED");
    assert_eq!(r.json["intent"]["legacy_status"], "done");
    assert_eq!(r.json["intent"]["result"], result);
    assert_eq!(r.json["intent"]["last_seq"], 3);
    assert!(r.json["intent"].get("pending_with").is_none());
    let e = &r.json["event"];
    assert_eq!(e["seq"], 3);
    assert_eq!(e["event_type"], "intent.completed");
    assert_eq!(e["status"], "COMPLETED");
    assert_eq!(e["actor"], "agent://w");
    assert_eq!(e["details"]["result"], result);
    assert_eq!(
        r.json["completion_delivery"],
        json!({"delivered": false, "reason": "no_reply_to"})
    );
    assert_eq!(
        s.get(&format!("/v1/intents/{id}")).json["intent"],
        r.json["intent"]
    );
}

#[test]
fn resolve_failed_and_canceled_record_error_and_reason() {
    let s = Server::start();
    let failed = s.create_intent("agent://w");
    let error = json!({"code": "boom", "message": "it broke"});
    let r = s.post(
        &format!("/v1/intents/{failed}/resolve"),
        &json!({"status": "FAILED", "error": error}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "FAILED");
    assert_eq!(r.json["intent"]["legacy_status"], "failed");
    assert_eq!(r.json["intent"]["error"], error);
    assert_eq!(r.json["event"]["event_type"], "intent.failed");
    assert_eq!(r.json["event"]["details"]["error"], error);
    assert_eq!(r.json["completion_delivery"]["delivered"], false);

    let canceled = s.create_intent("agent://w");
    let r = s.post(
        &format!("/v1/intents/{canceled}/resolve"),
        &json!({"status": "CANCELED", "reason": "no longer needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "CANCELED");
    assert_eq!(r.json["event"]["event_type"], "intent.canceled");
    assert_eq!(
        r.json["event"]["details"],
        json!({"reason": "no longer needed"})
    );
}

#[test]
fn resolve_with_reply_to_delivers_the_completion_to_its_thread() {
    let s = Server::start();
    let mut body = intent_body("agent://w");
    body["reply_to"] = json!("team/requester");
    let id = create_with(&s, body);
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {"ok": 1}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let d = &r.json["completion_delivery"];
    assert_eq!(d["delivered"], true);
    assert_eq!(d["reply_to"], "agent://team/requester");
    assert_eq!(d["thread_id"], id.as_str());
    assert!(is_uuid(d["message_id"].as_str().unwrap()), "{d}");
    assert_eq!(d["completion"]["intent_id"], id.as_str());
    assert_eq!(d["completion"]["status"], "COMPLETED");
    assert_eq!(d["completion"]["event_seq"], 3);
    assert_eq!(d["completion"]["result"], json!({"ok": 1}));
}

#[test]
fn ack_from_submitted_appends_delivered_then_acknowledged() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let r = s.post(
        &format!("/v1/intents/{id}/ack"),
        &json!({"actor": "agent://w/1"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "ACKNOWLEDGED");
    let events = r.json["events"].as_array().unwrap();
    let types: Vec<_> = events.iter().map(|e| e["event_type"].clone()).collect();
    assert_eq!(types, ["intent.delivered", "intent.acknowledged"]);
    assert_eq!(events[0]["seq"], 3);
    assert_eq!(events[1]["seq"], 4);
    assert!(events.iter().all(|e| e["actor"] == "agent://w/1"));
    assert_eq!(r.json["event"], events[1]);
    assert!(r.json.get("completion_delivery").is_none());
    let log = s.get(&format!("/v1/intents/{id}/events?since=2"));
    assert_eq!(log.json["events"], json!(events));

    // An empty body is an ack without an actor.
    let other = s.create_intent("agent://w");
    let r = send(s.req("POST", &format!("/v1/intents/{other}/ack")), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "ACKNOWLEDGED");
}

#[test]
fn progress_reports_in_progress_and_waiting_with_a_reason() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let r = s.post(
        &format!("/v1/intents/{id}/progress"),
        &json!({"status": "IN_PROGRESS", "details": {"pct": 10}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "IN_PROGRESS");
    assert_eq!(r.json["intent"]["legacy_status"], "running");
    assert_eq!(r.json["event"]["event_type"], "intent.in_progress");
    assert_eq!(r.json["event"]["details"], json!({"pct": 10}));
    assert_eq!(r.json["events"], json!([r.json["event"]]));

    let r = s.post(
        &format!("/v1/intents/{id}/progress"),
        &json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_TOOL"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "WAITING");
    assert_eq!(r.json["intent"]["legacy_status"], "blocked");
    assert_eq!(r.json["intent"]["waiting_reason"], "WAITING_FOR_TOOL");
    assert_eq!(r.json["intent"]["pending_with"]["type"], "agent");
    assert_eq!(r.json["event"]["event_type"], "intent.waiting");
    assert_eq!(r.json["event"]["waiting_reason"], "WAITING_FOR_TOOL");
    assert_eq!(r.json["event"]["seq"], 4);
}

#[test]
fn resume_decides_a_waiting_human_task_that_meets_its_rules() {
    let s = Server::start();
    let mut body = intent_body("agent://w");
    body["human_task"] = json!({"title": "OK?", "allowed_outcomes": ["approve", "reject"],
        "required_comment": true});
    let id = create_with(&s, body);
    let r = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(
        r.json["intent"]["pending_with"]["type"], "human",
        "{}",
        r.text
    );
    assert_eq!(r.json["intent"]["waiting_reason"], "WAITING_FOR_HUMAN");
    let task_result = json!({"outcome": "approve", "comment": "looks right", "data": {"x": 1}});
    let r = s.post(
        &format!("/v1/intents/{id}/resume"),
        &json!({"actor": "human://alice", "reason": "approved", "task_result": task_result}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // The task_result decides the task: an approving outcome completes the intent with it.
    assert_eq!(r.json["intent"]["status"], "COMPLETED");
    assert!(r.json["intent"].get("waiting_reason").is_none());
    let e = &r.json["event"];
    assert_eq!(e["event_type"], "intent.completed");
    assert_eq!(e["seq"], 4);
    assert_eq!(e["actor"], "human://alice");
    let result = json!({"outcome": "approve", "comment": "looks right",
        "task_result": task_result, "decided_by": "human://alice"});
    assert_eq!(
        e["details"],
        json!({"approve_current_step": true, "reason": "approved", "task_result": task_result,
            "result": result})
    );
    assert_eq!(r.json["intent"]["result"], result);
}

#[test]
fn a_plain_waiting_intent_resumes_with_an_empty_body_object() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let r = s.post(
        &format!("/v1/intents/{id}/progress"),
        &json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_AGENT"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.post(&format!("/v1/intents/{id}/resume"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "IN_PROGRESS");
    assert_eq!(
        r.json["event"]["details"],
        json!({"approve_current_step": true})
    );
}
