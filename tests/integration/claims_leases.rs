//! Inbox claims over time (SPEC.md, "Inbox claims"): a lease that runs out puts its intent back
//! (SUBMITTED, `intent.delivery_failed` reason `lease_expired`, a new `intent.submitted`) and
//! its token is lost; `extend` keeps a lease alive; `nack` puts the intent back after a delay
//! (exponential by default); too many attempts FAIL the intent with `delivery_failed`. Leases
//! are one or two seconds, and every timing bound has a second or more of slack.

use crate::claims_support;
use crate::common;

use std::thread;
use std::time::{Duration, Instant};

use claims_support::*;
use common::*;
use serde_json::{json, Value};

/// Sleeps until `d` after `t0`.
fn sleep_until(t0: Instant, d: Duration) {
    if let Some(left) = d.checked_sub(t0.elapsed()) {
        thread::sleep(left);
    }
}

fn secs(t0: Instant) -> f64 {
    t0.elapsed().as_secs_f64()
}

#[test]
fn an_expired_lease_puts_the_intent_back_and_its_token_is_lost() {
    let (s, to, id) = with_one_intent("expiry");
    let t0 = Instant::now();
    let first = claim_one(&s, &to, json!({"lease_seconds": 1}));
    assert_lease_about(&first, 1.0);

    let back = wait_status(&s, &id, "SUBMITTED");
    let took = secs(t0);
    assert!(took >= 0.95, "requeued {took:.3}s after the claim");
    assert!(took < 5.0, "requeued {took:.3}s after the claim");
    assert_eq!(
        event_types(&s, &id),
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.delivery_failed",
            "intent.submitted",
        ]
    );
    let failed = events_of(&s, &id, "intent.delivery_failed");
    assert_eq!(failed[0]["details"]["reason"], "lease_expired");
    assert_eq!(failed[0]["details"]["lease_token"], token(&first));
    assert_eq!(failed[0]["details"]["attempt"], 1);
    let resubmitted = events_of(&s, &id, "intent.submitted");
    assert_eq!(resubmitted[1]["status"], "SUBMITTED");
    assert_eq!(resubmitted[1]["details"]["attempt"], 2);
    assert!(parse_time(&failed[0]["at"]) >= parse_time(&first["lease_expires_at"]));

    // The old token acts on nothing now.
    let n = events(&s, &id).len();
    assert_lease_lost(&ack(&s, token(&first), json!({"status": "COMPLETED"})));
    assert_lease_lost(&extend(&s, token(&first), 30));
    assert_lease_lost(&nack(&s, token(&first), json!({})));
    assert_eq!(intent(&s, &id), back, "nothing changed");
    assert_eq!(events(&s, &id).len(), n);

    let second = claim_one(&s, &to, json!({"lease_seconds": 30}));
    assert_eq!(claimed_id(&second), id);
    assert_eq!(second["attempt"], 2);
    assert_eq!(second["intent"]["delivery_attempt"], 2);
    assert_ne!(token(&second), token(&first), "a new token on every claim");
    let delivered = events_of(&s, &id, "intent.delivered");
    assert_eq!(delivered.len(), 2);
    assert_eq!(delivered[1]["details"]["attempt"], 2);
    // Superseded: the first token still cannot touch the intent the second one holds.
    assert_lease_lost(&ack(&s, token(&first), json!({"status": "FAILED"})));
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
    assert_ok(&ack(&s, token(&second), json!({"status": "COMPLETED"})));
    assert_eq!(intent(&s, &id)["status"], "COMPLETED");
}

#[test]
fn a_lease_is_lost_the_moment_it_ends_even_before_the_intent_is_put_back() {
    let (s, to, id) = with_one_intent("deadline");
    let c = claim_one(&s, &to, json!({"lease_seconds": 1}));
    let left = secs_from_now(&c["lease_expires_at"]);
    thread::sleep(Duration::from_secs_f64(left.max(0.0) + 0.05));
    // Whether or not the lease timer has run yet, the token is dead.
    assert_lease_lost(&ack(&s, token(&c), json!({"status": "COMPLETED"})));
    assert_lease_lost(&extend(&s, token(&c), 30));
    wait_status(&s, &id, "SUBMITTED");
    assert!(events_of(&s, &id, "intent.completed").is_empty());
}

#[test]
fn extend_keeps_a_lease_alive_past_its_first_expiry() {
    let (s, to, id) = with_one_intent("extend");
    let t0 = Instant::now();
    let c = claim_one(&s, &to, json!({"lease_seconds": 1}));
    sleep_until(t0, Duration::from_millis(400));
    let r = extend(&s, token(&c), 3);
    assert_ok(&r);
    assert_eq!(r.json["lease_token"], token(&c));
    assert_eq!(r.json["attempt"], 1);
    assert_eq!(r.json["intent"]["intent_id"], id.as_str());
    assert_lease_about(&r.json, 3.0);

    // Well past the first expiry and a round of the lease timer.
    sleep_until(t0, Duration::from_millis(2200));
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
    assert!(events_of(&s, &id, "intent.delivery_failed").is_empty());
    assert!(claim(&s, &to, json!({})).is_empty(), "still held");
    assert_ok(&ack(&s, token(&c), json!({"status": "COMPLETED"})));
    assert_eq!(intent(&s, &id)["status"], "COMPLETED");
}

#[test]
fn extend_on_a_lost_lease_is_409_and_changes_nothing() {
    let (s, to, id) = with_one_intent("lapsed");
    let c = claim_one(&s, &to, json!({"lease_seconds": 1}));
    let back = wait_status(&s, &id, "SUBMITTED");
    assert_lease_lost(&extend(&s, token(&c), 60));
    assert_eq!(intent(&s, &id), back);
    let again = claim_one(&s, &to, json!({}));
    assert_eq!(again["attempt"], 2);
}

#[test]
fn a_nack_with_a_delay_holds_the_intent_back_that_long() {
    let (s, to, id) = with_one_intent("delay");
    let c = claim_one(&s, &to, json!({"lease_seconds": 30}));
    let t0 = Instant::now();
    let error = json!({"code": "busy"});
    let r = nack(&s, token(&c), json!({"delay_seconds": 2, "error": error}));
    assert_ok(&r);
    assert_eq!(r.json["intent"]["status"], "SUBMITTED", "{}", r.text);
    assert!(claim(&s, &to, json!({})).is_empty(), "held back at once");
    sleep_until(t0, Duration::from_millis(1000));
    assert!(claim(&s, &to, json!({})).is_empty(), "held back after 1 s");

    let (again, at) = claim_when_ready(&s, &to, json!({}));
    let took = at.duration_since(t0).as_secs_f64();
    assert!(
        (2.0..5.0).contains(&took),
        "claimable {took:.3}s after nack"
    );
    assert_eq!(claimed_id(&again), id);
    assert_eq!(again["attempt"], 2);

    let failed = events_of(&s, &id, "intent.delivery_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["details"]["reason"], "nacked");
    assert_eq!(failed[0]["details"]["error"], error);
    assert_eq!(failed[0]["details"]["attempt"], 1);
    assert_eq!(failed[0]["details"]["lease_token"], token(&c));
    assert_lease_lost(&ack(&s, token(&c), json!({})));
}

#[test]
fn a_nack_without_a_delay_backs_off_about_a_second() {
    let (s, to, id) = with_one_intent("backoff");
    let c = claim_one(&s, &to, json!({"lease_seconds": 30}));
    let error = json!({"code": "db_locked", "message": "try again"});
    let t0 = Instant::now();
    assert_ok(&nack(&s, token(&c), json!({ "error": error })));
    assert!(claim(&s, &to, json!({})).is_empty(), "held back at once");
    let (again, at) = claim_when_ready(&s, &to, json!({}));
    let took = at.duration_since(t0).as_secs_f64();
    // Attempt 1: 1 s with ±20% jitter.
    assert!(
        (0.8..4.0).contains(&took),
        "claimable {took:.3}s after nack"
    );
    assert_eq!(again["attempt"], 2);
    assert_eq!(
        event_types(&s, &id),
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.delivery_failed",
            "intent.submitted",
            "intent.delivered",
        ]
    );
    let failed = events_of(&s, &id, "intent.delivery_failed");
    assert_eq!(failed[0]["details"]["reason"], "nacked");
    assert_eq!(failed[0]["details"]["error"], error);
}

#[test]
fn a_nack_with_no_delay_is_claimable_at_once() {
    let (s, to, id) = with_one_intent("nodelay");
    let c = claim_one(&s, &to, json!({}));
    assert_ok(&nack(&s, token(&c), json!({"delay_seconds": 0})));
    let again = claim_one(&s, &to, json!({}));
    assert_eq!(claimed_id(&again), id);
    assert_eq!(again["attempt"], 2);
    let failed = events_of(&s, &id, "intent.delivery_failed");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["details"]["error"], Value::Null);
}

/// The error a dead-lettered intent ends with.
fn assert_dead_lettered(s: &Server, id: &str, attempts: usize, reason: &str) {
    let i = intent(s, id);
    assert_eq!(i["status"], "FAILED", "{i}");
    assert_eq!(i["error"]["code"], "delivery_failed", "{i}");
    let failed = events_of(s, id, "intent.delivery_failed");
    assert_eq!(failed.len(), attempts, "{failed:?}");
    for f in &failed {
        assert_eq!(f["details"]["reason"], reason, "{f}");
    }
    let types = event_types(s, id);
    assert_eq!(types.last().map(String::as_str), Some("intent.failed"));
    assert_eq!(types.iter().filter(|t| *t == "intent.failed").count(), 1);
    let last = events(s, id).pop().expect("event");
    assert_eq!(last["details"]["error"]["code"], "delivery_failed");
}

#[test]
fn a_poison_message_fails_after_its_max_delivery_attempts_of_nacks() {
    let s = Server::start();
    let to = inbox("poison");
    let id = create_with(&s, &to, json!({"max_delivery_attempts": 2}));
    let c1 = claim_one(&s, &to, json!({}));
    let r = nack(
        &s,
        token(&c1),
        json!({"delay_seconds": 0, "error": {"code": "crash"}}),
    );
    assert_ok(&r);
    assert_eq!(r.json["intent"]["status"], "SUBMITTED");
    let c2 = claim_one(&s, &to, json!({}));
    assert_eq!(c2["attempt"], 2);
    let r = nack(
        &s,
        token(&c2),
        json!({"delay_seconds": 0, "error": {"code": "crash"}}),
    );
    assert_ok(&r);
    assert_eq!(r.json["intent"]["status"], "FAILED", "{}", r.text);
    assert_eq!(r.json["intent"]["error"]["code"], "delivery_failed");
    assert_dead_lettered(&s, &id, 2, "nacked");
    assert_eq!(
        event_types(&s, &id),
        [
            "intent.created",
            "intent.submitted",
            "intent.delivered",
            "intent.delivery_failed",
            "intent.submitted",
            "intent.delivered",
            "intent.delivery_failed",
            "intent.failed",
        ]
    );
    assert!(claim(&s, &to, json!({})).is_empty(), "dead: not claimable");
}

#[test]
fn a_poison_message_fails_after_its_max_delivery_attempts_of_expiries() {
    let s = Server::start();
    let to = inbox("poison-expiry");
    let id = create_with(&s, &to, json!({"max_delivery_attempts": 2}));
    claim_one(&s, &to, json!({"lease_seconds": 1}));
    let (c2, _) = claim_when_ready(&s, &to, json!({"lease_seconds": 1}));
    assert_eq!(c2["attempt"], 2);
    wait_status(&s, &id, "FAILED");
    assert_dead_lettered(&s, &id, 2, "lease_expired");
    assert_lease_lost(&ack(&s, token(&c2), json!({})));
    assert!(claim(&s, &to, json!({})).is_empty());
}

#[test]
fn the_agents_max_delivery_attempts_applies_unless_the_intent_says() {
    let s = Server::start();
    let to = inbox("agent-max");
    register_inbox(&s, &to, json!({"max_delivery_attempts": 1}));
    let strict = s.create_intent(&to);
    let lenient = create_with(&s, &to, json!({"max_delivery_attempts": 3}));
    let c = claim_one(&s, &to, json!({}));
    assert_eq!(claimed_id(&c), strict);
    assert_ok(&nack(&s, token(&c), json!({"delay_seconds": 0})));
    assert_dead_lettered(&s, &strict, 1, "nacked");

    let c = claim_one(&s, &to, json!({}));
    assert_eq!(claimed_id(&c), lenient);
    assert_ok(&nack(&s, token(&c), json!({"delay_seconds": 0})));
    assert_eq!(intent(&s, &lenient)["status"], "SUBMITTED");
}

#[test]
fn without_a_limit_an_intent_gets_five_attempts() {
    let (s, to, id) = with_one_intent("five");
    for attempt in 1..=5 {
        let c = claim_one(&s, &to, json!({}));
        assert_eq!(c["attempt"], attempt);
        let r = nack(&s, token(&c), json!({"delay_seconds": 0}));
        assert_ok(&r);
        let want = if attempt < 5 { "SUBMITTED" } else { "FAILED" };
        assert_eq!(r.json["intent"]["status"], want, "after attempt {attempt}");
    }
    assert_dead_lettered(&s, &id, 5, "nacked");
}
