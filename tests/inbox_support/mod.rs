//! Helpers shared by the inbox tests (`tests/inbox*.rs`): requests under an owner scope, the
//! checks every inbox response must pass (the AXP `api.inbox.*`, `api.approvals.*` and
//! `api.tasks.list` schemas, written out as assertions), and the ways a test makes threads:
//! intents to an `inbox` agent, human tasks, completions sent to a `reply_to` address.

use std::collections::HashSet;

use serde_json::{json, Value};

use crate::claims_support::{events, parse_time};
use crate::common::{intent_body, send, uuid, Resp, Server};

/// A fresh address for one test.
pub fn addr(name: &str) -> String {
    format!("agent://people/{name}-{}", &uuid()[..8])
}

/// A request with the admin key, under `owner`'s scope (`x-owner-agent`) when one is given.
pub fn req_as(s: &Server, owner: Option<&str>, method: &str, path: &str) -> ureq::Request {
    let r = s.req(method, path);
    match owner {
        Some(o) => r.set("x-owner-agent", o),
        None => r,
    }
}

pub fn get_as(s: &Server, owner: Option<&str>, path: &str) -> Resp {
    send(req_as(s, owner, "GET", path), None)
}

pub fn post_as(s: &Server, owner: Option<&str>, path: &str, body: &Value) -> Resp {
    send(req_as(s, owner, "POST", path), Some(body.to_string()))
}

/// Registers an agent that pulls its work (`delivery_mode: inbox`).
pub fn register_inbox_agent(s: &Server, address: &str) {
    let r = s.post(
        "/v1/agents",
        &json!({"address": address, "delivery_mode": "inbox"}),
    );
    assert_eq!(r.status, 200, "register {address}: {}", r.text);
}

/// Creates an intent to `to` with extra fields and returns the create response.
pub fn create_raw(s: &Server, to: &str, extra: Value) -> Resp {
    let mut body = intent_body(to);
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    s.post("/v1/intents", &body)
}

pub fn create(s: &Server, to: &str, extra: Value) -> String {
    let r = create_raw(s, to, extra);
    assert_eq!(r.status, 200, "create: {}", r.text);
    r.json["intent_id"].as_str().expect("intent_id").to_string()
}

/// Creates an intent to `to` carrying the human task `task`.
pub fn create_task(s: &Server, to: &str, task: Value) -> String {
    create(s, to, json!({ "human_task": task }))
}

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    k.sort();
    k
}

/// Asserts that an object has exactly these keys.
pub fn assert_keys(v: &Value, want: &[&str]) {
    let mut want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(keys(v), want, "{v}");
}

/// Asserts a canonical (lowercase, hyphenated) UUID string.
pub fn assert_uuid(v: &Value) {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    let u = ::uuid::Uuid::try_parse(s).unwrap_or_else(|e| panic!("{s} is not a UUID: {e}"));
    assert_eq!(u.hyphenated().to_string(), s, "not a canonical UUID");
}

fn assert_len(v: &Value, what: &str, min: usize, max: usize) {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{what} is not a string: {v}"));
    let n = s.chars().count();
    assert!(
        (min..=max).contains(&n),
        "{what} has {n} characters, outside {min}..={max}: {s:?}"
    );
}

const THREAD_REQUIRED: [&str; 9] = [
    "thread_id",
    "intent_id",
    "status",
    "owner_agent",
    "from_agent",
    "to_agent",
    "created_at",
    "updated_at",
    "timeline",
];

const TERMINAL: [&str; 4] = ["COMPLETED", "FAILED", "CANCELED", "TIMED_OUT"];

/// Checks one thread against the AXP thread shape: required fields and their formats, a
/// non-empty timeline of entries with a unique UUID `event_id`, in time order.
pub fn check_thread(t: &Value) {
    for k in THREAD_REQUIRED {
        assert!(t.get(k).is_some(), "the thread has no {k}: {t}");
    }
    assert_uuid(&t["thread_id"]);
    assert_uuid(&t["intent_id"]);
    assert_eq!(t["thread_id"], t["intent_id"], "a thread is its intent");
    let status = t["status"].as_str().expect("status");
    assert!(
        ["pending", "active", "done"].contains(&status),
        "thread status {status}"
    );
    let terminal = TERMINAL.contains(&t["intent_status"].as_str().expect("intent_status"));
    assert_eq!(
        status == "done",
        terminal,
        "done iff the intent is terminal: {t}"
    );
    for k in ["owner_agent", "from_agent", "to_agent"] {
        assert_len(&t[k], k, 3, 255);
    }
    let created = parse_time(&t["created_at"]);
    let updated = parse_time(&t["updated_at"]);
    assert!(updated >= created, "{t}");
    assert!(t["unread"].is_boolean(), "{t}");
    let timeline = t["timeline"].as_array().expect("timeline");
    assert!(!timeline.is_empty(), "an empty timeline: {t}");
    let mut ids = HashSet::new();
    let mut last = None;
    for e in timeline {
        for k in ["event_id", "event_type", "actor", "at", "details"] {
            assert!(e.get(k).is_some(), "a timeline entry without {k}: {e}");
        }
        assert_uuid(&e["event_id"]);
        assert!(
            ids.insert(e["event_id"].as_str().unwrap().to_string()),
            "event_id repeated in {t}"
        );
        assert_len(&e["event_type"], "event_type", 3, 120);
        assert_len(&e["actor"], "actor", 2, 120);
        assert!(e["details"].is_object(), "details is not an object: {e}");
        let at = parse_time(&e["at"]);
        if let Some(prev) = last {
            assert!(at >= prev, "the timeline is out of time order: {t}");
        }
        last = Some(at);
        match e.get("message_id") {
            Some(m) => {
                assert_eq!(m, &e["event_id"], "a message's event_id is its id");
                assert!(e["event_type"].as_str().unwrap().starts_with("inbox."));
            }
            None => assert!(e["seq"].is_i64(), "an event entry without seq: {e}"),
        }
    }
}

/// Checks `{ok, thread}` (api.inbox.thread.response) and returns the thread.
pub fn check_thread_response(r: &Resp) -> Value {
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.json, &["ok", "thread"]);
    assert_eq!(r.json["ok"], true);
    check_thread(&r.json["thread"]);
    r.json["thread"].clone()
}

/// `GET /v1/inbox/{id}` under `owner`, checked.
pub fn thread(s: &Server, owner: Option<&str>, id: &str) -> Value {
    check_thread_response(&get_as(s, owner, &format!("/v1/inbox/{id}")))
}

/// `GET /v1/inbox?{query}` under `owner`, checked (api.inbox.list.response).
pub fn list(s: &Server, owner: Option<&str>, query: &str) -> Vec<Value> {
    let r = get_as(s, owner, &format!("/v1/inbox?{query}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.json, &["ok", "threads"]);
    assert_eq!(r.json["ok"], true);
    let threads = r.json["threads"].as_array().expect("threads").clone();
    for t in &threads {
        check_thread(t);
        if let Some(o) = owner {
            assert_eq!(t["owner_agent"], o, "a thread of another owner: {t}");
        }
    }
    threads
}

/// The thread ids of a listing, in order.
pub fn ids(threads: &[Value]) -> Vec<String> {
    threads
        .iter()
        .map(|t| t["thread_id"].as_str().unwrap().to_string())
        .collect()
}

/// `GET /v1/inbox/changes` under `owner`, checked (api.inbox.changes.response); `cursor` is
/// left out when `None`.
pub fn changes(s: &Server, owner: Option<&str>, cursor: Option<&str>, limit: usize) -> Value {
    let mut path = format!("/v1/inbox/changes?limit={limit}");
    if let Some(c) = cursor {
        path.push_str(&format!("&cursor={c}"));
    }
    let r = get_as(s, owner, &path);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.json, &["changes", "has_more", "next_cursor", "ok"]);
    assert_eq!(r.json["ok"], true);
    assert!(r.json["has_more"].is_boolean());
    assert!(r.json["next_cursor"].is_string() || r.json["next_cursor"].is_null());
    for c in r.json["changes"].as_array().expect("changes") {
        assert_keys(c, &["cursor", "thread"]);
        assert_len(&c["cursor"], "cursor", 3, 128);
        check_thread(&c["thread"]);
        if let Some(o) = owner {
            assert_eq!(c["thread"]["owner_agent"], o);
        }
    }
    r.json
}

/// A thread action (`reply`, `read`, `delegate`, `approve`, `reject`) under `owner`, checked.
pub fn act(s: &Server, owner: Option<&str>, id: &str, action: &str, body: Value) -> Value {
    check_thread_response(&post_as(
        s,
        owner,
        &format!("/v1/inbox/{id}/{action}"),
        &body,
    ))
}

pub fn reply(s: &Server, owner: Option<&str>, id: &str, message: &str) -> Value {
    act(s, owner, id, "reply", json!({ "message": message }))
}

/// `POST /v1/inbox/{id}/messages/delete`, checked (api.inbox.messages.delete.response).
pub fn delete_messages(s: &Server, owner: Option<&str>, id: &str, body: Value) -> Value {
    let r = post_as(s, owner, &format!("/v1/inbox/{id}/messages/delete"), &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(
        &r.json,
        &["deleted_count", "message_ids", "mode", "ok", "thread"],
    );
    assert_eq!(r.json["ok"], true);
    assert_eq!(r.json["mode"], body["mode"]);
    let deleted = r.json["message_ids"].as_array().expect("message_ids");
    assert_eq!(r.json["deleted_count"], deleted.len());
    check_thread(&r.json["thread"]);
    r.json
}

/// The messages (replies, delegation notes, decisions) of a thread's timeline, oldest first.
pub fn messages(t: &Value) -> Vec<Value> {
    t["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .filter(|e| e.get("message_id").is_some())
        .cloned()
        .collect()
}

/// The message ids of a thread's timeline.
pub fn message_ids(t: &Value) -> Vec<String> {
    messages(t)
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts that a thread's timeline holds every event of its intent, as the events API shows
/// them, and returns its messages.
pub fn assert_timeline_has_every_event(s: &Server, t: &Value) -> Vec<Value> {
    let id = t["intent_id"].as_str().unwrap();
    let logged = events(s, id);
    let shown: Vec<&Value> = t["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e.get("seq").is_some())
        .collect();
    assert_eq!(shown.len(), logged.len(), "timeline {t}\nevents {logged:?}");
    for (e, l) in shown.iter().zip(&logged) {
        for k in ["seq", "event_type", "actor", "at", "details", "status"] {
            assert_eq!(e[k], l[k], "{k} of {e} vs the logged {l}");
        }
    }
    messages(t)
}

/// Checks `GET /v1/me/tasks` under `owner` against api.tasks.list.response and returns the tasks.
pub fn tasks(s: &Server, owner: Option<&str>) -> Vec<Value> {
    let r = get_as(s, owner, "/v1/me/tasks");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.json, &["ok", "tasks"]);
    assert_eq!(r.json["ok"], true);
    let tasks = r.json["tasks"].as_array().expect("tasks").clone();
    let item = [
        "intent_id",
        "intent_type",
        "status",
        "from_agent",
        "assigned_at",
        "due_at",
        "human_task",
    ];
    let spec = [
        "title",
        "description",
        "task_type",
        "allowed_outcomes",
        "required_comment",
        "assignees",
        "evidence_required",
        "form_schema",
    ];
    for t in &tasks {
        for k in keys(t) {
            assert!(item.contains(&k.as_str()), "tasks allow no {k}: {t}");
        }
        for k in [
            "intent_id",
            "intent_type",
            "status",
            "assigned_at",
            "human_task",
        ] {
            assert!(t.get(k).is_some(), "a task without {k}: {t}");
        }
        assert_uuid(&t["intent_id"]);
        assert_eq!(t["status"], "WAITING");
        parse_time(&t["assigned_at"]);
        if let Some(d) = t.get("due_at") {
            parse_time(d);
        }
        for k in keys(&t["human_task"]) {
            assert!(spec.contains(&k.as_str()), "a task spec allows no {k}: {t}");
        }
        assert_len(&t["human_task"]["title"], "title", 0, 255);
    }
    tasks
}

/// The intent ids of a task listing, in order.
pub fn task_ids(tasks: &[Value]) -> Vec<String> {
    tasks
        .iter()
        .map(|t| t["intent_id"].as_str().unwrap().to_string())
        .collect()
}

/// `POST /v1/approvals/{id}/decision`, checked (api.approvals.decision.response); returns the
/// approval.
pub fn decide(s: &Server, owner: Option<&str>, id: &str, body: Value) -> Value {
    let r = post_as(s, owner, &format!("/v1/approvals/{id}/decision"), &body);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_keys(&r.json, &["approval", "ok"]);
    assert_eq!(r.json["ok"], true);
    let a = r.json["approval"].clone();
    for k in keys(&a) {
        assert!(
            ["approval_id", "decision", "comment", "decided_at"].contains(&k.as_str()),
            "an approval allows no {k}: {a}"
        );
    }
    assert_uuid(&a["approval_id"]);
    assert_eq!(a["approval_id"], id);
    assert_eq!(a["decision"], body["decision"]);
    parse_time(&a["decided_at"]);
    assert!(a["comment"].is_null() || a["comment"].is_string());
    a
}

/// Asserts a 422 naming `field`, in the AXME error body.
pub fn assert_invalid_field(r: &Resp, field: &str) {
    assert_eq!(r.status, 422, "{}", r.text);
    assert!(r.has_error_shape(), "{}", r.text);
    assert_eq!(r.field(), field, "{}", r.text);
}

/// The GET of an intent and its events, to show that a refused request changed nothing.
pub fn snapshot(s: &Server, id: &str) -> (Value, usize, Vec<Value>) {
    let i = crate::claims_support::intent(s, id);
    let n = events(s, id).len();
    let t = get_as(s, None, &format!("/v1/inbox/{id}"));
    let msgs = if t.status == 200 {
        messages(&t.json["thread"])
    } else {
        Vec::new()
    };
    (i, n, msgs)
}

/// Claims the intent waiting for an inbox agent and acks it COMPLETED with `result`.
pub fn claim_and_complete(s: &Server, agent: &str, id: &str, result: Value) {
    use crate::claims_support::{ack, claim_one, claimed_id, token};
    let c = claim_one(s, agent, json!({"lease_seconds": 60}));
    assert_eq!(claimed_id(&c), id);
    let r = ack(
        s,
        token(&c),
        json!({"status": "COMPLETED", "result": result}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}
