//! The durable runtime against the real binary: the built-in agents (`agent://internal/delay`,
//! `/approval`, `/notify`), reminders and escalation, and timers that outlive a restart — each
//! fires exactly once, whether the server stopped gracefully or was killed, before they were due
//! or long after.

use crate::common;
use crate::receiver;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use base64::Engine;
use common::*;
use receiver::{
    event_types, events, eventually, expected_signature, intent, key_of, wait_intent_status,
    Receiver, Reply,
};
use serde_json::{json, Value};

const DELAY: &str = "agent://internal/delay";
const APPROVAL: &str = "agent://internal/approval";
const NOTIFY: &str = "agent://internal/notify";

/// Creates an intent to `to` with `payload` and extra top-level fields; returns its id.
fn create(s: &Server, to: &str, payload: Value, extra: Value) -> String {
    let mut body = intent_body(to);
    body["payload"] = payload;
    for (k, v) in extra.as_object().expect("extra is an object") {
        body[k] = v.clone();
    }
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "create: {}", r.text);
    r.json["intent_id"].as_str().expect("intent_id").to_string()
}

fn get_as(s: &Server, owner: &str, path: &str) -> Resp {
    send(s.req("GET", path).set("x-owner-agent", owner), None)
}

fn post_as(s: &Server, owner: &str, path: &str, body: &Value) -> Resp {
    send(
        s.req("POST", path).set("x-owner-agent", owner),
        Some(body.to_string()),
    )
}

/// A fresh address for one test.
fn addr(name: &str) -> String {
    format!("agent://timers/{name}-{}", &uuid()[..8])
}

fn of_type(events: &[Value], event_type: &str) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e["event_type"] == event_type)
        .cloned()
        .collect()
}

fn millis(rfc3339: &str) -> i128 {
    time::OffsetDateTime::parse(rfc3339, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339} is not RFC 3339: {e}"))
        .unix_timestamp_nanos()
        / 1_000_000
}

fn at_ms(v: &Value) -> i128 {
    millis(v["at"].as_str().expect("at"))
}

/// The timer events of an intent reminded twice, then escalated.
const TWO_REMINDERS_THEN_ESCALATION: [&str; 4] = [
    "intent.reminder",
    "intent.reminder",
    "intent.escalated",
    "intent.transfer",
];

/// Waits until the intent has been reminded `n` times.
fn wait_reminders(s: &Server, id: &str, n: i64, what: &str) {
    eventually(what, || (intent(s, id)["remind_count"] == n).then_some(()));
}

/// Waits until the timer scheduler has fired a reminder set `seconds` from now. The scheduler
/// fires due timers earliest first, so by then every timer due within that window has fired
/// too: a test that something does NOT fire waits this one signal instead of a fixed sleep, and
/// its window is as short as the interval it is about.
pub(crate) fn timers_caught_up(s: &Server, seconds: i64) {
    let sentinel = create(
        s,
        &addr("sentinel"),
        json!({}),
        json!({"remind_after_seconds": seconds}),
    );
    wait_reminders(s, &sentinel, 1, "the sentinel's reminder");
}

/// The reminder, escalation and transfer events of an intent, in order.
fn timer_events(s: &Server, id: &str) -> Vec<Value> {
    events(s, id)
        .into_iter()
        .filter(|e| {
            ["intent.reminder", "intent.escalated", "intent.transfer"]
                .contains(&e["event_type"].as_str().unwrap_or(""))
        })
        .collect()
}

fn types(events: &[Value]) -> Vec<&str> {
    events
        .iter()
        .map(|e| e["event_type"].as_str().expect("event_type"))
        .collect()
}

/// Waits until an intent's `field` is `want`.
fn wait_field(s: &Server, id: &str, field: &str, want: &str) -> Value {
    eventually(&format!("{field} of {id} to be {want}"), || {
        let i = intent(s, id);
        (i[field] == want).then_some(i)
    })
}

/// A `whsec_` secret with a random 32-byte key.
fn new_secret() -> String {
    let key: Vec<u8> = uuid().bytes().chain(uuid().bytes()).take(32).collect();
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(key)
    )
}

// --- agent://internal/delay ------------------------------------------------------------------

#[test]
fn delay_waits_for_time_then_completes_with_the_seconds_waited() {
    let s = Server::start();
    let id = create(&s, DELAY, json!({"seconds": 1}), json!({}));
    let quick = create(&s, DELAY, json!({"seconds": 0}), json!({}));
    let done = wait_intent_status(&s, &id, "COMPLETED");
    assert_eq!(done["result"], json!({"waited_seconds": 1}));
    assert_eq!(
        event_types(&s, &id),
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.waiting",
            "intent.completed"
        ]
    );
    let ev = events(&s, &id);
    assert_eq!(ev[2]["details"]["via"], "internal", "{}", ev[2]);
    assert_eq!(ev[2]["actor"], DELAY);
    assert_eq!(ev[3]["waiting_reason"], "WAITING_FOR_TIME", "{}", ev[3]);
    assert_eq!(ev[3]["actor"], DELAY);
    assert_eq!(ev[4]["actor"], "axme/runtime", "{}", ev[4]);
    let waited = at_ms(&ev[4]) - at_ms(&ev[3]);
    assert!(
        waited >= 990,
        "completed {waited} ms after it started waiting"
    );

    let done = wait_intent_status(&s, &quick, "COMPLETED");
    assert_eq!(done["result"], json!({"waited_seconds": 0}));
}

#[test]
fn delay_with_a_bad_payload_fails_with_invalid_payload() {
    let s = Server::start();
    let bad = [
        json!({}),
        json!({"seconds": "1"}),
        json!({"seconds": null}),
        json!({"seconds": -1}),
        json!({"seconds": 2_592_001}),
    ];
    let cases = bad.map(|payload| (payload, "payload.seconds"));
    for failed in assert_invalid_payloads(&s, DELAY, cases) {
        assert_eq!(failed["delivery_attempt"], 1, "not retried: {failed}");
    }
}

/// Sends each payload to `to` and checks that the intent FAILS with `invalid_payload` naming
/// the field; returns the failed intents.
fn assert_invalid_payloads<const N: usize>(
    s: &Server,
    to: &str,
    cases: [(Value, &str); N],
) -> Vec<Value> {
    let ids: Vec<String> = cases
        .iter()
        .map(|(payload, _)| create(s, to, payload.clone(), json!({})))
        .collect();
    let mut all = Vec::new();
    for (id, (payload, field)) in ids.iter().zip(&cases) {
        let failed = wait_intent_status(s, id, "FAILED");
        assert_eq!(
            failed["error"]["code"], "invalid_payload",
            "{payload}: {failed}"
        );
        assert_eq!(failed["error"]["details"]["field"], *field, "{failed}");
        all.push(failed);
    }
    all
}

// --- agent://internal/approval ---------------------------------------------------------------

/// The approver's tasks, by intent id.
fn tasks_of(s: &Server, owner: &str) -> Vec<Value> {
    let r = get_as(s, owner, "/v1/me/tasks");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["tasks"].as_array().expect("tasks").clone()
}

/// `owner` approves or rejects (`decision`) the task of intent `id`.
fn decide(s: &Server, owner: &str, id: &str, decision: &str, body: Value) -> Resp {
    post_as(s, owner, &format!("/v1/inbox/{id}/{decision}"), &body)
}

#[test]
fn an_approval_waits_for_the_approver_and_completes_with_the_decision() {
    let s = Server::start();
    let ann = addr("ann");
    let bob = addr("bob");
    let id = create(
        &s,
        APPROVAL,
        json!({"approver": ann, "title": "Ship release 1.2"}),
        json!({}),
    );
    let waiting = wait_intent_status(&s, &id, "WAITING");
    assert_eq!(waiting["waiting_reason"], "WAITING_FOR_HUMAN", "{waiting}");
    assert_eq!(waiting["human_task"]["title"], "Ship release 1.2");

    let tasks = tasks_of(&s, &ann);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["intent_id"], id.as_str());
    assert_eq!(tasks[0]["human_task"]["title"], "Ship release 1.2");
    assert_eq!(tasks[0]["human_task"]["task_type"], "approval");
    assert!(
        tasks_of(&s, &bob).is_empty(),
        "only the approver has the task"
    );
    // Someone else cannot decide it.
    let r = decide(&s, &bob, &id, "approve", json!({}));
    assert_error(&r, 404, "thread_not_found");

    let r = decide(&s, &ann, &id, "approve", json!({"comment": "go"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_intent_status(&s, &id, "COMPLETED");
    assert_eq!(done["result"]["decision"], "approve", "{done}");
    assert_eq!(done["result"]["decided_by"], ann.as_str());
    assert_eq!(done["result"]["comment"], "go");
    let last = events(&s, &id).pop().expect("events");
    assert_eq!(last["event_type"], "intent.completed");
    assert_eq!(last["actor"], ann.as_str());
    assert!(tasks_of(&s, &ann).is_empty());
    // Decided once.
    let r = decide(&s, &ann, &id, "reject", json!({}));
    assert_error(&r, 409, "intent_terminal");
}

#[test]
fn a_rejected_approval_fails_with_rejected() {
    let s = Server::start();
    let ann = addr("ann");
    let id = create(
        &s,
        APPROVAL,
        json!({"approver": ann, "title": "Delete the staging database"}),
        json!({}),
    );
    wait_intent_status(&s, &id, "WAITING");
    let r = decide(
        &s,
        &ann,
        &id,
        "reject",
        json!({"comment": "not before the audit"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let failed = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(failed["error"]["code"], "rejected", "{failed}");
    assert_eq!(failed["error"]["message"], "not before the audit");
    assert_eq!(failed["error"]["details"]["decided_by"], ann.as_str());
}

#[test]
fn an_approval_uses_the_intents_own_human_task_and_its_rules() {
    let s = Server::start();
    let ann = addr("ann");
    let task = json!({"title": "Budget 2027", "task_type": "approval", "required_comment": true});
    let id = create(
        &s,
        APPROVAL,
        json!({"approver": ann, "title": "ignored: the intent has a task"}),
        json!({ "human_task": task }),
    );
    wait_intent_status(&s, &id, "WAITING");
    let tasks = tasks_of(&s, &ann);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["human_task"]["title"], "Budget 2027");
    let r = decide(&s, &ann, &id, "approve", json!({}));
    assert_error(&r, 422, "schema_invalid");
    assert_eq!(r.field(), "comment");
    let r = decide(
        &s,
        &ann,
        &id,
        "approve",
        json!({"comment": "within limits"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    wait_intent_status(&s, &id, "COMPLETED");
}

#[test]
fn an_approval_without_a_valid_approver_fails_with_invalid_payload() {
    let s = Server::start();
    assert_invalid_payloads(
        &s,
        APPROVAL,
        [
            (json!({"title": "x"}), "payload.approver"),
            (
                json!({"approver": "https://example.com/ann", "title": "x"}),
                "payload.approver",
            ),
            (
                json!({"approver": "agent://people/ann", "title": ""}),
                "payload.title",
            ),
        ],
    );
}

// --- agent://internal/notify -----------------------------------------------------------------

#[test]
fn notify_posts_the_body_signed_and_retries_with_the_same_webhook_id() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok());
    rx.then([Reply::status(500)]);
    let secret = new_secret();
    let body = json!({"hello": "world", "n": [1, 2, 3], "nested": {"ok": true}});
    let id = create(
        &s,
        NOTIFY,
        json!({"url": rx.url(), "secret": secret, "body": body}),
        json!({"max_delivery_attempts": 3}),
    );
    let done = wait_intent_status(&s, &id, "COMPLETED");
    let hits = rx.hits();
    assert_eq!(hits.len(), 2, "one failed POST, one that succeeded");
    let webhook_id = format!("msg_{}", id.replace('-', ""));
    for hit in &hits {
        assert_eq!(hit.method, "POST");
        assert_eq!(hit.path, "/hook");
        assert_eq!(hit.header("content-type"), Some("application/json"));
        assert_eq!(
            hit.id(),
            webhook_id,
            "the webhook-id is stable across retries"
        );
        assert_eq!(hit.json(), body);
        // The signature, checked here with ring: v1,base64(HMAC-SHA256(key, "{id}.{ts}.{body}")).
        let ts = hit.header("webhook-timestamp").expect("webhook-timestamp");
        ts.parse::<i64>().expect("a numeric webhook-timestamp");
        let header = hit.header("webhook-signature").expect("webhook-signature");
        let want = expected_signature(&key_of(&secret), hit.id(), ts, &hit.body);
        assert!(
            header.split(' ').any(|sig| sig == want),
            "signature {header:?}, expected {want:?}"
        );
        // A signature over anything else does not match.
        let forged = expected_signature(&key_of(&secret), hit.id(), ts, b"{}");
        assert!(!header.split(' ').any(|sig| sig == forged));
    }
    assert_eq!(done["result"]["delivered"], true, "{done}");
    assert_eq!(done["result"]["status_code"], 200);
    assert_eq!(done["result"]["signed"], true);
    assert_eq!(done["result"]["webhook_id"], webhook_id.as_str());
    assert_eq!(done["result"]["url"], rx.url().as_str());
    assert_eq!(done["delivery_attempt"], 2);
    let ev = events(&s, &id);
    let failures = of_type(&ev, "intent.delivery_failed");
    assert_eq!(failures.len(), 1, "{ev:?}");
    assert_eq!(failures[0]["details"]["error"]["code"], "notify_failed");
    assert_eq!(failures[0]["details"]["error"]["status_code"], 500);

    // Without a secret: unsigned, and the default body is {}.
    let plain = create(&s, NOTIFY, json!({"url": rx.url()}), json!({}));
    let done = wait_intent_status(&s, &plain, "COMPLETED");
    assert_eq!(done["result"]["signed"], false);
    let hits = rx.hits();
    let hit = hits
        .iter()
        .find(|h| h.header("webhook-id") == Some(&format!("msg_{}", plain.replace('-', ""))))
        .expect("the unsigned notification");
    assert_eq!(hit.header("webhook-signature"), None);
    assert_eq!(hit.json(), json!({}));
}

#[test]
fn notify_answered_410_fails_at_once() {
    let s = Server::start();
    let rx = Receiver::start(Reply::status(410));
    let id = create(
        &s,
        NOTIFY,
        json!({"url": rx.url(), "body": {"x": 1}}),
        json!({"max_delivery_attempts": 5}),
    );
    let failed = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(failed["error"]["code"], "notify_gone", "{failed}");
    assert_eq!(failed["error"]["status_code"], 410);
    assert_eq!(failed["delivery_attempt"], 1);
    assert_eq!(rx.hits().len(), 1, "no retry after 410");
    assert!(of_type(&events(&s, &id), "intent.delivery_failed").is_empty());
}

#[test]
fn notify_that_keeps_failing_ends_in_delivery_failed() {
    let s = Server::start();
    let rx = Receiver::start(Reply::status(503));
    let id = create(
        &s,
        NOTIFY,
        json!({"url": rx.url()}),
        json!({"max_delivery_attempts": 2}),
    );
    let failed = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(failed["error"]["code"], "delivery_failed", "{failed}");
    assert_eq!(rx.hits().len(), 2);
    let ids: HashSet<String> = rx.hits().iter().map(|h| h.id().to_string()).collect();
    assert_eq!(ids.len(), 1, "one webhook-id for every attempt");
}

#[test]
fn notify_with_a_bad_payload_fails_with_invalid_payload() {
    let s = Server::start();
    assert_invalid_payloads(
        &s,
        NOTIFY,
        [
            (json!({}), "payload.url"),
            (json!({"url": "ftp://example.com/x"}), "payload.url"),
            (
                json!({"url": "http://127.0.0.1:9/x", "secret": "not-a-whsec"}),
                "payload.secret",
            ),
        ],
    );
}

#[test]
fn notify_to_an_address_the_push_guard_refuses_fails_at_once() {
    let s = Server::start_args(&["--push-deny-private"]);
    let rx = Receiver::start(Reply::ok());
    let id = create(
        &s,
        NOTIFY,
        json!({"url": rx.url()}),
        json!({"max_delivery_attempts": 5}),
    );
    let failed = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(failed["error"]["code"], "target_refused", "{failed}");
    assert_eq!(failed["delivery_attempt"], 1);
    assert!(rx.hits().is_empty(), "nothing was sent");
}

// --- Reminders and escalation ----------------------------------------------------------------

#[test]
fn reminders_then_escalation_re_address_the_intent() {
    let s = Server::start();
    let slow = addr("slow");
    let id = create(
        &s,
        &slow,
        json!({}),
        json!({"remind_after_seconds": 1, "remind_interval_seconds": 1, "max_reminders": 2,
               "escalate_to": "agent://boss"}),
    );
    let created = intent(&s, &id);
    let escalated = wait_field(&s, &id, "to_agent", "agent://boss");
    assert_eq!(escalated["status"], "SUBMITTED");
    assert_eq!(escalated["remind_count"], 2);
    // Nothing more comes after the escalation (within the 1 s interval).
    timers_caught_up(&s, 1);
    let ev = timer_events(&s, &id);
    assert_eq!(types(&ev), TWO_REMINDERS_THEN_ESCALATION, "{ev:?}");
    for (n, r) in ev[..2].iter().enumerate() {
        assert_eq!(r["details"]["reminder"], n as i64 + 1, "{r}");
        assert_eq!(r["details"]["max_reminders"], 2);
        assert_eq!(r["details"]["pending_with"], slow.as_str());
        assert_eq!(r["actor"], "axme/runtime");
        // Not before it was due.
        let due = millis(created["created_at"].as_str().unwrap()) + 1000 * (n as i128 + 1);
        assert!(
            at_ms(r) >= due,
            "reminder {} at {} before {due}",
            n + 1,
            r["at"]
        );
    }
    assert_eq!(
        ev[2]["details"],
        json!({"from": slow, "to": "agent://boss", "reminders": 2})
    );
    assert_eq!(ev[3]["details"]["from"], slow.as_str());
    assert_eq!(ev[3]["details"]["to"], "agent://boss");
    assert_eq!(ev[3]["details"]["reason"], "escalated");
    let after = intent(&s, &id);
    assert_eq!(after["to_agent"], "agent://boss");
    assert_eq!(after["remind_count"], 2);
}

#[test]
fn a_terminal_intent_is_not_reminded_or_escalated() {
    let s = Server::start();
    let timers = json!({"remind_after_seconds": 1, "remind_interval_seconds": 1,
                        "escalate_to": "agent://boss"});
    // Done before its first reminder.
    let early = create(&s, &addr("early"), json!({}), timers.clone());
    // Done after its first reminder.
    let late = create(&s, &addr("late"), json!({}), timers);
    let resolve = |id: &str| {
        let r = s.post(
            &format!("/v1/intents/{id}/resolve"),
            &json!({"status": "COMPLETED", "result": {}}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    };
    resolve(&early);
    wait_reminders(&s, &late, 1, "the first reminder");
    resolve(&late);
    timers_caught_up(&s, 1);
    assert!(
        timer_events(&s, &early).is_empty(),
        "{:?}",
        events(&s, &early)
    );
    assert_eq!(types(&timer_events(&s, &late)), ["intent.reminder"]);
    assert_ne!(intent(&s, &late)["to_agent"], "agent://boss");
}

#[test]
fn one_reminder_by_default_and_no_escalation_without_escalate_to() {
    let s = Server::start();
    let id = create(
        &s,
        &addr("once"),
        json!({}),
        json!({"remind_after_seconds": 1}),
    );
    wait_reminders(&s, &id, 1, "the reminder");
    timers_caught_up(&s, 1);
    let ev = timer_events(&s, &id);
    assert_eq!(types(&ev), ["intent.reminder"], "{ev:?}");
    assert_eq!(ev[0]["details"]["max_reminders"], 1);
}

#[test]
fn an_escalated_human_task_becomes_a_task_of_the_escalation_address() {
    let s = Server::start();
    let ann = addr("ann");
    let boss = addr("boss");
    let id = create(
        &s,
        &ann,
        json!({}),
        json!({"human_task": {"title": "Sign off the budget", "task_type": "approval"},
               "remind_after_seconds": 1, "escalate_to": boss}),
    );
    assert_eq!(intent(&s, &id)["waiting_reason"], "WAITING_FOR_HUMAN");
    wait_field(&s, &id, "to_agent", &boss);
    let tasks = tasks_of(&s, &boss);
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    assert_eq!(tasks[0]["intent_id"], id.as_str());
    assert_eq!(tasks[0]["human_task"]["title"], "Sign off the budget");
    let r = decide(&s, &boss, &id, "approve", json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_intent_status(&s, &id, "COMPLETED");
    assert_eq!(done["result"]["decided_by"], boss.as_str());
    assert_eq!(
        types(&timer_events(&s, &id)),
        ["intent.reminder", "intent.escalated", "intent.transfer"]
    );
}

#[test]
fn an_intent_escalated_to_an_inbox_agent_is_claimed_there() {
    let s = Server::start();
    let boss = addr("boss-inbox");
    let r = s.post(
        "/v1/agents",
        &json!({"address": boss, "delivery_mode": "inbox"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = create(
        &s,
        &addr("nobody"),
        json!({}),
        json!({"remind_after_seconds": 1, "escalate_to": boss}),
    );
    wait_field(&s, &id, "to_agent", &boss);
    let r = get_as(&s, &boss, "/v1/inbox");
    assert_eq!(r.status, 200, "{}", r.text);
    let threads = r.json["threads"].as_array().expect("threads");
    assert_eq!(threads.len(), 1, "{}", r.text);
    let path = format!(
        "/v1/agents/{}/inbox/claim",
        boss.trim_start_matches("agent://")
    );
    let r = s.post(&path, &json!({"max": 10}));
    assert_eq!(r.status, 200, "{}", r.text);
    let claims = r.json["claims"].as_array().expect("claims");
    assert_eq!(claims.len(), 1, "{}", r.text);
    assert_eq!(claims[0]["intent"]["intent_id"], id.as_str());
}

// --- Restarts --------------------------------------------------------------------------------

/// A delay and a chain of reminders set before a stop.
struct Pending {
    delay: String,
    reminded: String,
    slow: String,
    created: Instant,
}

/// Sets a 3 s delay and reminders at 3 s and 4 s with an escalation at 5 s, and checks that
/// none of them fired yet.
fn set_timers(s: &Server) -> Pending {
    let created = Instant::now();
    let delay = create(s, DELAY, json!({"seconds": 3}), json!({}));
    let slow = addr("restart");
    let reminded = create(
        s,
        &slow,
        json!({}),
        json!({"remind_after_seconds": 3, "remind_interval_seconds": 1, "max_reminders": 2,
               "escalate_to": "agent://boss"}),
    );
    let waiting = wait_intent_status(s, &delay, "WAITING");
    assert_eq!(waiting["waiting_reason"], "WAITING_FOR_TIME");
    assert!(
        timer_events(s, &reminded).is_empty(),
        "the setup took so long that the reminder fired already"
    );
    Pending {
        delay,
        reminded,
        slow,
        created,
    }
}

/// After the restart: the delay completed once, two reminders and one escalation, nothing
/// more, nothing early.
fn assert_fired_once(s: &Server, p: &Pending) {
    let done = wait_intent_status(s, &p.delay, "COMPLETED");
    assert_eq!(done["result"], json!({"waited_seconds": 3}));
    wait_field(s, &p.reminded, "to_agent", "agent://boss");
    // Anything doubled (or a chain going on, at its 1 s interval) would show up by now.
    timers_caught_up(s, 1);
    let ev = events(s, &p.delay);
    assert_eq!(of_type(&ev, "intent.completed").len(), 1, "{ev:?}");
    let waiting = of_type(&ev, "intent.waiting");
    assert_eq!(waiting.len(), 1, "{ev:?}");
    let completed = &of_type(&ev, "intent.completed")[0];
    let waited = at_ms(completed) - at_ms(&waiting[0]);
    assert!(
        waited >= 2990,
        "completed {waited} ms after it started waiting"
    );

    let ev = timer_events(s, &p.reminded);
    assert_eq!(types(&ev), TWO_REMINDERS_THEN_ESCALATION, "{ev:?}");
    assert_eq!(ev[0]["details"]["reminder"], 1);
    assert_eq!(ev[1]["details"]["reminder"], 2);
    assert_eq!(ev[2]["details"]["from"], p.slow.as_str());
    let i = intent(s, &p.reminded);
    assert_eq!(i["remind_count"], 2);
    assert_eq!(i["status"], "SUBMITTED");
}

fn restart_case(kill: bool, overdue: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let mut s = Server::start_on(&db, &[]);
    let pending = set_timers(&s);
    if kill {
        s.kill();
    } else {
        assert_eq!(s.terminate(), Some(0));
    }
    drop(s);
    if overdue {
        // Past every timer, the escalation included.
        let all_due = pending.created + Duration::from_millis(5500);
        std::thread::sleep(all_due.saturating_duration_since(Instant::now()));
    }
    let s = Server::start_on(&db, &[]);
    assert_fired_once(&s, &pending);
}

#[test]
fn timers_set_before_a_graceful_stop_fire_once_after_the_restart() {
    restart_case(false, false);
}

#[test]
fn timers_set_before_a_kill_fire_once_after_the_restart() {
    restart_case(true, false);
}

#[test]
fn timers_overdue_at_a_restart_after_a_graceful_stop_fire_once() {
    restart_case(false, true);
}

#[test]
fn timers_overdue_at_a_restart_after_a_kill_fire_once() {
    restart_case(true, true);
}

#[test]
fn a_kill_between_two_reminders_neither_repeats_nor_loses_one() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let mut s = Server::start_on(&db, &[]);
    let slow = addr("between");
    let id = create(
        &s,
        &slow,
        json!({}),
        json!({"remind_after_seconds": 1, "remind_interval_seconds": 2, "max_reminders": 3}),
    );
    wait_reminders(&s, &id, 1, "the first reminder");
    s.kill();
    drop(s);
    let s = Server::start_on(&db, &[]);
    wait_reminders(&s, &id, 3, "the third reminder");
    // A fourth would fall one 2 s interval after the third.
    timers_caught_up(&s, 2);
    let ev = timer_events(&s, &id);
    assert_eq!(
        ev.iter()
            .map(|e| e["details"]["reminder"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        [1, 2, 3],
        "{ev:?}"
    );
}

#[test]
fn a_delay_does_not_complete_an_intent_that_moved_on_to_wait_for_something_else() {
    let s = Server::start();
    let id = create(&s, DELAY, json!({"seconds": 2}), json!({}));
    let waiting = wait_intent_status(&s, &id, "WAITING");
    assert_eq!(waiting["waiting_reason"], "WAITING_FOR_TIME");
    // Someone takes the intent over before the delay is up and makes it wait for a person.
    let r = s.post(
        &format!("/v1/intents/{id}/progress"),
        &json!({"status": "IN_PROGRESS"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.post(
        &format!("/v1/intents/{id}/progress"),
        &json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_HUMAN"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // Past the delay (due 2 s after it began to wait): it still waits for the person.
    timers_caught_up(&s, 2);
    let i = intent(&s, &id);
    assert_eq!(
        (i["status"].as_str(), i["waiting_reason"].as_str()),
        (Some("WAITING"), Some("WAITING_FOR_HUMAN")),
        "{i}\n{:?}",
        events(&s, &id)
    );
}
