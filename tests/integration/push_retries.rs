//! What a failed push does (SPEC.md, "http (push)"): non-2xx, timeouts and refused connections
//! are retried on `--push-retry-schedule` with the same `webhook-id`, each failure noted on the
//! intent as `intent.delivery_failed`; `Retry-After` is honoured; `410 Gone` disables the agent's
//! webhook; when attempts run out the delivery is dead-lettered and the intent FAILED with
//! `delivery_failed`; addresses that must never be reached are refused without a hang. Schedules
//! are a few hundred milliseconds so the whole file runs in seconds.

use crate::common;
use crate::receiver;

use std::time::{Duration, Instant};

use common::*;
use receiver::*;
use serde_json::{json, Value};

const FAST: &[&str] = &[
    "--push-retry-schedule",
    "200ms,200ms,200ms",
    "--push-throttle-floor-seconds",
    "0",
];

fn statuses(d: &Value) -> Vec<Value> {
    attempts(d)
        .iter()
        .map(|a| a["status_code"].clone())
        .collect()
}

fn delivery_failed_events(s: &Server, id: &str) -> Vec<Value> {
    events(s, id)
        .into_iter()
        .filter(|e| e["event_type"] == "intent.delivery_failed")
        .collect()
}

#[test]
fn a_500_is_retried_with_the_same_webhook_id_until_it_succeeds() {
    let s = Server::start_args(FAST);
    let rx = Receiver::start(Reply::ok());
    rx.then([Reply::status(500).body("boom")]);
    let to = address("flaky");
    let secret = register_http(&s, &to, &rx.url(), json!({}));
    let id = s.create_intent(&to);
    let hits = rx.wait_hits(2);
    assert_eq!(
        hits[0].id(),
        hits[1].id(),
        "webhook-id is stable across retries"
    );
    assert_eq!(hits[0].json()["data"]["delivery"]["attempt"], 1);
    assert_eq!(hits[1].json()["data"]["delivery"]["attempt"], 2);
    for h in &hits {
        assert_signed(h, &key_of(&secret));
    }
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(150), "retried after {gap:?}");

    let d = wait_delivery(&s, hits[0].id(), "delivered");
    assert_eq!(statuses(&d), [json!(500), json!(200)], "{d}");
    let a = attempts(&d);
    assert_eq!(a[0]["error"], "HTTP 500");
    assert_eq!(a[0]["response_excerpt"], "boom");
    assert_eq!(a[1]["error"], Value::Null);
    wait_intent_status(&s, &id, "DELIVERED");
    let failed = delivery_failed_events(&s, &id);
    assert_eq!(failed.len(), 1, "{failed:?}");
    let details = &failed[0]["details"];
    assert_eq!(details["delivery_id"], hits[0].id());
    assert_eq!(details["attempt"], 1);
    assert_eq!(details["status_code"], 500);
    assert_eq!(details["dead_lettered"], false);
    // The failure was noted while the intent was still SUBMITTED, before the hand-over.
    let types = event_types(&s, &id);
    let pos = |t: &str| types.iter().position(|x| x == t).expect(t);
    assert!(
        pos("intent.delivery_failed") < pos("intent.delivered"),
        "{types:?}"
    );
    assert_eq!(rx.hits().len(), 2, "nothing after the success");
}

#[test]
fn exhausted_attempts_dead_letter_the_push_and_fail_the_intent() {
    let s = Server::start_args(FAST);
    let rx = Receiver::start(Reply::status(500));
    let to = address("down");
    register_http(&s, &to, &rx.url(), json!({"max_delivery_attempts": 2}));
    let id = s.create_intent(&to);
    let hits = rx.wait_hits(2);
    let did = hits[0].id().to_string();
    let d = wait_delivery(&s, &did, "dead_lettered");
    assert_eq!(statuses(&d), [json!(500), json!(500)], "{d}");
    assert_eq!(d["next_attempt_at"], Value::Null);
    assert_eq!(d["last_error"], "HTTP 500");

    let i = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(i["error"]["code"], "delivery_failed", "{i}");
    assert_eq!(i["error"]["delivery_id"], did.as_str());
    let failed = delivery_failed_events(&s, &id);
    let flags: Vec<&Value> = failed
        .iter()
        .map(|e| &e["details"]["dead_lettered"])
        .collect();
    assert_eq!(flags, [&json!(false), &json!(true)], "{failed:?}");
    assert_eq!(
        event_types(&s, &id).last().map(String::as_str),
        Some("intent.failed")
    );
    let listed = s.get(&format!(
        "/v1/deliveries?status=dead_lettered&intent_id={id}"
    ));
    assert_eq!(listed.json["deliveries"][0]["delivery_id"], did.as_str());
    assert_eq!(rx.hits().len(), 2, "no third attempt");
}

#[test]
fn the_intent_s_max_delivery_attempts_overrides_the_agent_s() {
    let s = Server::start_args(FAST);
    let rx = Receiver::start(Reply::status(503));
    let to = address("override");
    register_http(&s, &to, &rx.url(), json!({"max_delivery_attempts": 3}));
    let mut body = intent_body(&to);
    body["max_delivery_attempts"] = json!(1);
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap().to_string();
    let hit = rx.wait_hits(1).remove(0);
    let d = wait_delivery(&s, hit.id(), "dead_lettered");
    assert_eq!(statuses(&d), [json!(503)]);
    wait_intent_status(&s, &id, "FAILED");
}

#[test]
fn without_a_limit_the_schedule_gives_one_attempt_per_step_plus_the_first() {
    let s = Server::start_args(&["--push-retry-schedule", "100ms,100ms"]);
    let rx = Receiver::start(Reply::status(502));
    let to = address("schedule");
    register_http(&s, &to, &rx.url(), json!({}));
    let id = s.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    let d = wait_delivery(&s, hit.id(), "dead_lettered");
    assert_eq!(statuses(&d), [json!(502), json!(502), json!(502)], "{d}");
    wait_intent_status(&s, &id, "FAILED");
    assert_eq!(rx.hits().len(), 3);
}

#[test]
fn replay_requeues_a_dead_lettered_push_under_the_same_webhook_id() {
    let s = Server::start_args(FAST);
    let rx = Receiver::start(Reply::status(500));
    // An observer's push has no intent that a dead letter could end, so its replay is sent.
    let sub = s.post(
        "/v1/webhooks/subscriptions",
        &json!({"callback_url": rx.url(), "event_types": ["intent.created"]}),
    );
    assert_eq!(sub.status, 200, "{}", sub.text);
    let id = s.create_intent(&address("observed"));
    let first = rx.wait_hits(1).remove(0);
    let did = first.id().to_string();
    let d = wait_delivery(&s, &did, "dead_lettered");
    assert_eq!(
        attempts(&d).len(),
        4,
        "the schedule's 3 steps plus the first: {d}"
    );
    assert_eq!(d["intent_id"], id.as_str());

    rx.set_default(Reply::ok());
    let r = s.post(&format!("/v1/deliveries/{did}/replay"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["delivery"]["status"], "pending");
    let hits = rx.wait_hits(5);
    assert_eq!(hits[4].id(), did, "the replay keeps the webhook-id");
    let d = wait_delivery(&s, &did, "delivered");
    let a = attempts(&d);
    assert_eq!(a.len(), 5, "the replay's attempt is appended: {d}");
    assert_eq!(a[4]["attempt"], 5);
    assert_eq!(a[4]["status_code"], 200);

    // A delivered push can be replayed too; a pending one cannot.
    rx.set_default(Reply::hang(Duration::from_secs(30)));
    let r = s.post(&format!("/v1/deliveries/{did}/replay"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    rx.wait_hits(6);
    let again = s.post(&format!("/v1/deliveries/{did}/replay"), &json!({}));
    assert_eq!(
        (again.status, again.code()),
        (409, "delivery_pending"),
        "{}",
        again.text
    );
    let missing = s.post("/v1/deliveries/msg_nope/replay", &json!({}));
    assert_eq!(missing.status, 404, "{}", missing.text);
}

#[test]
fn a_timeout_is_recorded_and_retried() {
    let s = Server::start_args(&[
        "--push-retry-schedule",
        "200ms",
        "--push-timeout",
        "1",
        "--push-throttle-floor-seconds",
        "0",
    ]);
    let rx = Receiver::start(Reply::ok());
    rx.then([Reply::hang(Duration::from_secs(5))]);
    let to = address("slow");
    register_http(&s, &to, &rx.url(), json!({}));
    let id = s.create_intent(&to);
    let hits = rx.wait_hits(2);
    assert_eq!(hits[0].id(), hits[1].id());
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(900),
        "the first attempt waited {gap:?}"
    );
    assert!(
        gap < Duration::from_secs(4),
        "it was cut at the timeout, not at the reply"
    );
    let d = wait_delivery(&s, hits[0].id(), "delivered");
    let a = attempts(&d);
    let err = a[0]["error"].as_str().unwrap_or("").to_ascii_lowercase();
    assert!(err.contains("timed out") || err.contains("timeout"), "{d}");
    assert_eq!(a[0]["status_code"], Value::Null);
    assert!(a[0]["latency_ms"].as_i64().unwrap() >= 900, "{d}");
    assert_eq!(a[1]["status_code"], 200);
    wait_intent_status(&s, &id, "DELIVERED");
}

#[test]
fn gone_dead_letters_at_once_and_disables_the_agent_until_it_registers_again() {
    let s = Server::start_args(FAST);
    let rx = Receiver::start(Reply::status(410));
    let to = address("gone");
    register_http(&s, &to, &rx.url(), json!({}));
    let first = s.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    let d = wait_delivery(&s, hit.id(), "dead_lettered");
    assert_eq!(statuses(&d), [json!(410)], "no retry after 410: {d}");
    let i = wait_intent_status(&s, &first, "FAILED");
    assert_eq!(i["error"]["code"], "delivery_failed");

    // Disabled: a new intent waits, nothing is pushed.
    let second = s.create_intent(&to);
    assert!(deliveries_of(&s, &second).is_empty());
    assert_eq!(intent(&s, &second)["status"], "SUBMITTED");

    // Registering again enables the webhook for the intents that follow.
    rx.set_default(Reply::ok());
    register(&s, &to, &rx.url(), json!({}));
    let third = s.create_intent(&to);
    let hits = rx.wait_hits(2);
    assert_eq!(
        hits[1].json()["data"]["intent"]["intent_id"],
        third.as_str()
    );
    wait_intent_status(&s, &third, "DELIVERED");
    assert_eq!(rx.hits().len(), 2, "{:?}", rx.hits());
}

#[test]
fn too_many_requests_waits_for_retry_after() {
    let s = Server::start_args(FAST);
    let rx = Receiver::start(Reply::ok());
    rx.then([Reply::status(429).header("Retry-After", "1")]);
    let to = address("throttled");
    register_http(&s, &to, &rx.url(), json!({}));
    let started = Instant::now();
    let id = s.create_intent(&to);
    let hits = rx.wait_hits(2);
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(900), "retried after {gap:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
    let d = wait_delivery(&s, hits[0].id(), "delivered");
    assert_eq!(statuses(&d), [json!(429), json!(200)]);
    wait_intent_status(&s, &id, "DELIVERED");
}

#[test]
fn a_refused_connection_is_retried_then_dead_lettered() {
    let s = Server::start_args(&["--push-retry-schedule", "100ms,100ms"]);
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    let to = address("nobody");
    register_http(&s, &to, &url, json!({}));
    let id = s.create_intent(&to);
    let did = eventually("the delivery", || {
        deliveries_of(&s, &id)
            .first()
            .map(|d| d["delivery_id"].clone())
    });
    let d = wait_delivery(&s, did.as_str().unwrap(), "dead_lettered");
    let a = attempts(&d);
    assert_eq!(a.len(), 3, "{d}");
    for at in &a {
        let err = at["error"].as_str().unwrap_or("");
        assert!(err.contains("Connection refused"), "{d}");
        assert_eq!(at["status_code"], Value::Null);
    }
    let i = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(i["error"]["code"], "delivery_failed");
    assert_eq!(delivery_failed_events(&s, &id).len(), 3);
}

/// Waits for the only delivery of an intent to settle and returns it.
fn settled(s: &Server, id: &str, status: &str) -> Value {
    let did = eventually("the delivery", || {
        deliveries_of(s, id)
            .first()
            .map(|d| d["delivery_id"].clone())
    });
    wait_delivery(s, did.as_str().unwrap(), status)
}

#[test]
fn cloud_metadata_is_refused_at_once_without_a_hang() {
    let s = Server::start_args(FAST);
    let to = address("ssrf");
    register_http(
        &s,
        &to,
        "http://169.254.169.254/latest/meta-data",
        json!({}),
    );
    let started = Instant::now();
    let id = s.create_intent(&to);
    let d = settled(&s, &id, "dead_lettered");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let a = attempts(&d);
    assert_eq!(a.len(), 1, "a refused address is not retried: {d}");
    let err = a[0]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("refused by axme") && err.contains("169.254.169.254"),
        "{d}"
    );
    wait_intent_status(&s, &id, "FAILED");
}

#[test]
fn deny_private_refuses_a_loopback_receiver() {
    let s = Server::start_args(&["--push-deny-private", "--push-retry-schedule", "100ms"]);
    let rx = Receiver::start(Reply::ok());
    let to = address("private");
    register_http(&s, &to, &rx.url(), json!({}));
    let id = s.create_intent(&to);
    let d = settled(&s, &id, "dead_lettered");
    let err = attempts(&d)[0]["error"].as_str().unwrap_or("").to_string();
    assert!(
        err.contains("refused by axme") && err.contains("loopback"),
        "{d}"
    );
    assert!(rx.hits().is_empty(), "the receiver was reached");
    wait_intent_status(&s, &id, "FAILED");
    // Without the flag the same receiver is fine (see the other tests); a name that resolves
    // to loopback is refused just the same.
    let named = address("private-named");
    register_http(
        &s,
        &named,
        &format!("http://localhost:{}/hook", rx.port()),
        json!({}),
    );
    let id = s.create_intent(&named);
    let d = settled(&s, &id, "dead_lettered");
    let err = attempts(&d)[0]["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("refused by axme"), "{d}");
    assert!(rx.hits().is_empty());
}

#[test]
fn a_redirect_is_not_followed_and_counts_as_a_failure() {
    let s = Server::start_args(&["--push-retry-schedule", "100ms"]);
    let elsewhere = Receiver::start(Reply::ok());
    let rx = Receiver::start(Reply::status(302).header("Location", &elsewhere.url()));
    let to = address("redirect");
    register_http(&s, &to, &rx.url(), json!({"max_delivery_attempts": 2}));
    let id = s.create_intent(&to);
    let d = settled(&s, &id, "dead_lettered");
    assert_eq!(statuses(&d), [json!(302), json!(302)], "{d}");
    let err = attempts(&d)[0]["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("redirects are not followed"), "{d}");
    assert!(elsewhere.hits().is_empty(), "the Location was visited");
    wait_intent_status(&s, &id, "FAILED");
}

#[test]
fn a_retry_due_after_the_intent_ended_is_dropped_and_the_intent_left_alone() {
    let s = Server::start_args(&["--push-retry-schedule", "500ms"]);
    let to = address("ended");
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    register_http(&s, &to, &url, json!({"max_delivery_attempts": 5}));
    let id = s.create_intent(&to);
    let did = eventually("a refused attempt", || {
        let d = deliveries_of(&s, &id).into_iter().next()?;
        (!attempts(&d).is_empty()).then(|| d["delivery_id"].as_str().unwrap().to_string())
    });
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "CANCELED", "reason": "no longer needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let d = wait_delivery(&s, &did, "failed");
    let a = attempts(&d);
    assert_eq!(a.len(), 2, "{d}");
    let err = a[1]["error"].as_str().unwrap_or("");
    assert!(
        err.contains("not attempted") && err.contains("terminal"),
        "{d}"
    );
    assert_eq!(intent(&s, &id)["status"], "CANCELED");
}
