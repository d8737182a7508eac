//! Push bugs found while writing the push tests, one test each, named after the bug and saying
//! in one line what broke (`r_<what broke>`, as in `claims_regressions`).

use crate::common;
use crate::receiver;

use std::time::{Duration, Instant};

use common::*;
use receiver::*;
use serde_json::json;

fn delivery_id_of(s: &Server, intent_id: &str) -> String {
    eventually("the intent's delivery", || {
        deliveries_of(s, intent_id)
            .first()
            .and_then(|d| d["delivery_id"].as_str().map(str::to_string))
    })
}

/// Replaying a dead-lettered handler push answered 200 "pending" but never sent it: the intent
/// the dead letter had FAILED made the next attempt "not attempted: the intent is already
/// terminal", so a handler push could never be replayed at all.
#[test]
fn r_replay_of_a_dead_lettered_handler_push_is_sent() {
    let s = Server::start_args(&["--push-retry-schedule", "200ms"]);
    let rx = Receiver::start(Reply::status(500));
    let to = address("replay");
    register_http(&s, &to, &rx.url(), json!({"max_delivery_attempts": 2}));
    let id = s.create_intent(&to);
    let did = rx.wait_hits(2)[0].id().to_string();
    wait_delivery(&s, &did, "dead_lettered");
    wait_intent_status(&s, &id, "FAILED");

    rx.set_default(Reply::ok());
    let r = s.post(&format!("/v1/deliveries/{did}/replay"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let d = eventually("the replay to settle", || {
        let d = delivery(&s, &did);
        (d["status"] != "pending").then_some(d)
    });
    assert_eq!(d["status"], "delivered", "{d}");
    let hits = rx.wait_hits(3);
    assert_eq!(hits[2].id(), did, "same webhook-id");
    assert_eq!(attempts(&d).len(), 3, "attempts appended: {d}");
}

/// Retiring an http agent while its push waited for a retry FAILED the intent with
/// `delivery_failed` after one attempt, though a retired address becomes a pull agent again and
/// the intents addressed to it stay (src/service/agents.rs, `retire`).
#[test]
fn r_retiring_an_http_agent_leaves_its_pending_intents_to_be_pulled() {
    let s = Server::start_args(&["--push-retry-schedule", "500ms"]);
    let to = address("retired");
    let url = format!("http://127.0.0.1:{}/hook", closed_port());
    register_http(&s, &to, &url, json!({"max_delivery_attempts": 10}));
    let id = s.create_intent(&to);
    let did = delivery_id_of(&s, &id);
    eventually("a refused attempt", || {
        (!attempts(&delivery(&s, &did)).is_empty()).then_some(())
    });
    let path = format!("/v1/agents/{}", &to["agent://".len()..]);
    let r = send(s.req("DELETE", &path), None);
    assert_eq!(r.status, 200, "{}", r.text);
    eventually("the push to be given up", || {
        (delivery(&s, &did)["status"] != "pending").then_some(())
    });
    let i = intent(&s, &id);
    assert_eq!(i["status"], "SUBMITTED", "left for a pull: {i}");
}

/// Re-registering an http agent as `poll` while a push waited for a retry still pushed the
/// intent to the old webhook (and marked it DELIVERED), instead of leaving it to be pulled.
#[test]
fn r_an_agent_switched_to_poll_gets_no_more_pushes() {
    let s = Server::start_args(&["--push-retry-schedule", "500ms"]);
    let rx = Receiver::start(Reply::status(500));
    let to = address("switched");
    register_http(&s, &to, &rx.url(), json!({"max_delivery_attempts": 10}));
    let id = s.create_intent(&to);
    let did = rx.wait_hits(1)[0].id().to_string();
    let r = s.post(
        "/v1/agents",
        &json!({"address": to, "delivery_mode": "poll"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    rx.set_default(Reply::ok());
    eventually("the push to be given up", || {
        (delivery(&s, &did)["status"] != "pending").then_some(())
    });
    assert_eq!(rx.hits().len(), 1, "pushed to a poll agent");
    assert_eq!(intent(&s, &id)["status"], "SUBMITTED");
}

/// With a saturated endpoint (`--push-endpoint-concurrency` reached) and a push to it already
/// due, the scheduler slept until the saturated endpoint's attempt ended (up to
/// `--push-timeout`), so a healthy endpoint's retry due in 200 ms came seconds late.
#[test]
fn r_a_held_back_push_does_not_delay_other_endpoints_retries() {
    let s = Server::start_args(&[
        "--push-retry-schedule",
        "200ms",
        "--push-endpoint-concurrency",
        "1",
        "--push-timeout",
        "4",
        "--push-throttle-floor-seconds",
        "0",
    ]);
    let slow = Receiver::start(Reply::hang(Duration::from_secs(30)));
    let flaky = Receiver::start(Reply::ok());
    flaky.then([Reply::status(500)]);
    let (a, b) = (address("slow"), address("flaky"));
    register_http(&s, &a, &slow.url(), json!({}));
    register_http(&s, &b, &flaky.url(), json!({}));
    s.create_intent(&a);
    s.create_intent(&a);
    slow.wait_hits(1);
    s.create_intent(&b);
    let hits = flaky.wait_hits(2);
    let gap = hits[1].at - hits[0].at;
    assert!(gap < Duration::from_millis(1500), "retried after {gap:?}");
}

/// More than 512 pushes due to one saturated endpoint filled the scheduler's whole batch, so a
/// push to any other endpoint was not sent until that backlog drained (one push per timeout).
#[test]
fn r_a_backlog_at_one_endpoint_does_not_starve_the_others() {
    let s = Server::start_args(&[
        "--push-retry-schedule",
        "1h",
        "--push-endpoint-concurrency",
        "1",
        "--push-timeout",
        "5",
        "--durability",
        "normal",
    ]);
    let slow = Receiver::start(Reply::hang(Duration::from_secs(60)));
    let fast = Receiver::start(Reply::ok());
    let (a, b) = (address("backlog"), address("healthy"));
    register_http(&s, &a, &slow.url(), json!({}));
    register_http(&s, &b, &fast.url(), json!({}));
    for _ in 0..530 {
        s.create_intent(&a);
    }
    let started = Instant::now();
    s.create_intent(&b);
    let hit = fast.wait_hits_for(1, Duration::from_secs(10)).remove(0);
    let waited = hit.at - started;
    assert!(
        waited < Duration::from_secs(2),
        "the healthy push waited {waited:?}"
    );
}

/// A subscription's own (non-`whsec_`) secret got a `secret_hint` of the last 4 characters of
/// its base64 form, which the owner never saw, instead of the last 4 of the secret they gave.
#[test]
fn r_the_hint_of_a_given_plain_secret_is_its_own_last_four_characters() {
    let s = Server::start();
    let r = s.post(
        "/v1/webhooks/subscriptions",
        &json!({"callback_url": "http://127.0.0.1:9/h", "event_types": ["intent.*"],
                "secret": "a-plain-secret-of-my-own"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["subscription"]["secret_hint"], "-own", "{}", r.text);
}

/// `Retry-After` in its HTTP-date form (RFC 9110, 10.2.3) was ignored: only delay-seconds were
/// parsed, so the retry came on the schedule's 200 ms.
#[test]
fn r_retry_after_as_an_http_date_is_honoured() {
    let s = Server::start_args(&[
        "--push-retry-schedule",
        "200ms",
        "--push-throttle-floor-seconds",
        "0",
    ]);
    let rx = Receiver::start(Reply::ok());
    let when = time::OffsetDateTime::now_utc() + time::Duration::seconds(3);
    let fmt = time::macros::format_description!(
        "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
    );
    let date = when.format(&fmt).expect("http date");
    rx.then([Reply::status(503).header("Retry-After", &date)]);
    let to = address("dated");
    register_http(&s, &to, &rx.url(), json!({}));
    s.create_intent(&to);
    let hits = rx.wait_hits(2);
    let gap = hits[1].at - hits[0].at;
    assert!(
        gap >= Duration::from_millis(1500),
        "retried after {gap:?} (Retry-After: {date})"
    );
}
