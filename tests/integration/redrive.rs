//! `POST /v1/intents/{id}/redrive` (extension): an intent that FAILED because it could not be
//! delivered (`delivery_failed`: its claim attempts ran out) goes back to its handler's queue,
//! SUBMITTED with a fresh attempt budget; nothing else can leave a terminal status (409
//! `not_redrivable`). Leases here are one second and every wait polls.

use crate::claims_support;
use crate::common;
use crate::inbox_support;
use crate::receiver;

use claims_support::{
    ack, assert_ok, claim, claim_one, claimed_id, event_types, events, intent, token, wait_status,
};
use common::*;
use inbox_support::*;
use receiver::{Receiver, Reply};
use serde_json::{json, Value};

/// Claims the only intent of `agent` with a one-second lease and waits until the lease ran out
/// and the intent, out of attempts, FAILED.
fn exhaust(s: &Server, agent: &str, id: &str, attempt: i64) -> Value {
    let c = claim_one(s, agent, json!({"lease_seconds": 1}));
    assert_eq!(claimed_id(&c), id);
    assert_eq!(c["attempt"], attempt);
    let failed = wait_status(s, id, "FAILED");
    assert_eq!(failed["error"]["code"], "delivery_failed", "{failed}");
    failed
}

fn redrive(s: &Server, id: &str, body: Value) -> Resp {
    s.post(&format!("/v1/intents/{id}/redrive"), &body)
}

#[test]
fn a_delivery_failed_intent_is_redriven_to_submitted_and_claimable_again() {
    let s = Server::start();
    let agent = addr("flaky");
    register_inbox_agent(&s, &agent);
    let id = create(&s, &agent, json!({"max_delivery_attempts": 1}));
    let failed = exhaust(&s, &agent, &id, 1);
    assert_eq!(failed["delivery_attempt"], 1);
    assert_eq!(thread(&s, Some(&agent), &id)["status"], "done");
    let n = events(&s, &id).len();

    let r = redrive(&s, &id, json!({}));
    assert_ok(&r);
    let i = &r.json["intent"];
    assert_eq!(i["status"], "SUBMITTED");
    assert_eq!(i["delivery_attempt"], 0);
    assert!(i.get("error").is_none(), "the failure is cleared: {i}");
    assert_eq!(r.json["event"]["event_type"], "intent.submitted");
    assert_eq!(r.json["event"]["status"], "SUBMITTED");
    assert_eq!(r.json["event"]["seq"], n + 1);
    assert_eq!(r.json["event"]["actor"], "agent://admin");
    assert_eq!(
        r.json["event"]["details"],
        json!({"redrive": true, "previous_attempts": 1})
    );
    assert_eq!(r.json["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(&intent(&s, &id), i, "the response is the stored intent");
    let t = thread(&s, Some(&agent), &id);
    assert_eq!(t["status"], "pending", "the handler's thread is open again");
    assert_timeline_has_every_event(&s, &t);

    // A fresh budget: claimable as a first attempt, and it can run out again.
    let again = exhaust(&s, &agent, &id, 1);
    assert_eq!(again["delivery_attempt"], 1);
    let r = redrive(&s, &id, json!({"actor": "agent://ops/alice"}));
    assert_ok(&r);
    assert_eq!(r.json["event"]["actor"], "agent://ops/alice");
    assert_eq!(r.json["intent"]["delivery_attempt"], 0);
    let c = claim_one(&s, &agent, json!({"lease_seconds": 60}));
    assert_eq!(claimed_id(&c), id);
    assert_eq!(c["attempt"], 1);
    assert_eq!(c["intent"]["delivery_attempt"], 1);
    assert_ok(&ack(
        &s,
        token(&c),
        json!({"status": "COMPLETED", "result": {"ok": 1}}),
    ));
    assert_eq!(intent(&s, &id)["status"], "COMPLETED");
    let types = event_types(&s, &id);
    assert_eq!(types.iter().filter(|t| *t == "intent.failed").count(), 2);
    assert_eq!(types.last().map(String::as_str), Some("intent.completed"));

    // Completed now: no longer redrivable.
    let before = snapshot(&s, &id);
    let r = redrive(&s, &id, json!({}));
    assert_error(&r, 409, "not_redrivable");
    assert_eq!(snapshot(&s, &id), before);
}

#[test]
fn only_a_delivery_failure_can_be_redriven() {
    let s = Server::start();
    let agent = addr("solid");
    // FAILED for another reason: by its handler, and a rejected task.
    let handled = s.create_intent(&agent);
    let r = s.post(
        &format!("/v1/intents/{handled}/resolve"),
        &json!({"status": "FAILED", "error": {"code": "boom", "message": "broke"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let owner = addr("owner");
    let rejected = create_task(&s, &owner, json!({"title": "No"}));
    act(&s, Some(&owner), &rejected, "reject", json!({}));
    // Not terminal at all, and canceled.
    let submitted = s.create_intent(&agent);
    let canceled = s.create_intent(&agent);
    let r = s.post(
        &format!("/v1/intents/{canceled}/resolve"),
        &json!({"status": "CANCELED", "reason": "not needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    for id in [&handled, &rejected, &submitted, &canceled] {
        let before = snapshot(&s, id);
        let r = redrive(&s, id, json!({}));
        assert_error(&r, 409, "not_redrivable");
        assert_eq!(
            snapshot(&s, id),
            before,
            "a refused redrive changes nothing"
        );
    }
    assert_error(&redrive(&s, &uuid(), json!({})), 404, "intent_not_found");
    let r = redrive(&s, "not-a-uuid", json!({}));
    assert_error(&r, 422, "schema_invalid");
    assert_eq!(r.field(), "intent_id");
}

#[test]
fn a_redrive_is_checked_and_replayed_by_its_idempotency_key() {
    let s = Server::start();
    let agent = addr("keyed");
    let id = create(&s, &agent, json!({"max_delivery_attempts": 1}));
    exhaust(&s, &agent, &id, 1);
    for (body, field) in [
        (json!({"actor": 7}), "actor"),
        (json!({"actor": "x"}), "actor"),
        (json!({"force": true}), "force"),
    ] {
        assert_invalid_field(&redrive(&s, &id, body), field);
    }
    assert_eq!(intent(&s, &id)["status"], "FAILED");

    let path = format!("/v1/intents/{id}/redrive");
    let keyed = || {
        send(
            s.req("POST", &path).set("Idempotency-Key", "redrive-1"),
            Some("{}".into()),
        )
    };
    let first = keyed();
    assert_ok(&first);
    let n = events(&s, &id).len();
    let again = keyed();
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json);
    assert_eq!(events(&s, &id).len(), n, "redriven once");
    // Unkeyed, it is SUBMITTED now: 409.
    assert_error(&redrive(&s, &id, json!({})), 409, "not_redrivable");
    assert_eq!(claim(&s, &agent, json!({"lease_seconds": 60})).len(), 1);
}

#[test]
fn a_push_that_ran_out_of_attempts_is_pushed_again_after_a_redrive() {
    let s = Server::start_args(&["--push-retry-schedule", "100ms"]);
    let rx = Receiver::start(Reply::ok());
    rx.then([Reply::status(500)]);
    let to = addr("hook");
    receiver::register_http(&s, &to, &rx.url(), json!({"max_delivery_attempts": 1}));
    let id = s.create_intent(&to);
    let failed = wait_status(&s, &id, "FAILED");
    assert_eq!(failed["error"]["code"], "delivery_failed", "{failed}");
    assert_eq!(rx.hits().len(), 1);

    assert_ok(&redrive(&s, &id, json!({})));
    let hits = rx.wait_hits(2);
    let body = hits[1].json();
    assert_eq!(body["type"], "intent.submitted");
    assert_eq!(body["data"]["intent"]["intent_id"], id.as_str());
    assert_eq!(body["data"]["delivery"]["attempt"], 1, "a fresh budget");
    assert_ne!(hits[1].id(), hits[0].id(), "a new delivery");
    let i = wait_status(&s, &id, "DELIVERED");
    assert!(i.get("error").is_none(), "{i}");
}
