//! Inbox claims, the basics (SPEC.md, "inbox" under "Agents and bindings" and "Inbox claims"
//! under "The extension API"): a claim marks intents DELIVERED oldest first under a new lease,
//! its length comes from the claim, the agent or the 30 s default; `ack` moves the intent on
//! with the status it names; a used or unknown token is refused; bodies and addresses are
//! checked. Leases over time, nack and restarts are in `claims_leases.rs`, competing workers in
//! `claims_workers.rs`.

use crate::claims_support;
use crate::common;

use std::collections::HashSet;

use claims_support::*;
use common::*;
use serde_json::{json, Value};

#[test]
fn a_claim_delivers_the_oldest_intents_first_up_to_max() {
    let s = Server::start();
    let to = inbox("oldest");
    let ids = create_n(&s, &to, 5);

    let first = claim(&s, &to, json!({"max": 3, "lease_seconds": 10}));
    let got: Vec<&str> = first.iter().map(claimed_id).collect();
    assert_eq!(got, ids[..3], "oldest first, at most max");
    for c in &first {
        assert_eq!(c["attempt"], 1, "{c}");
        assert_eq!(c["intent"]["status"], "DELIVERED", "{c}");
        assert_eq!(c["intent"]["delivery_attempt"], 1, "{c}");
        assert_eq!(c["intent"]["to_agent"], to.as_str(), "{c}");
        assert!(token(c).starts_with("lease_"), "{c}");
        assert_lease_about(c, 10.0);
    }
    let tokens: HashSet<&str> = first.iter().map(token).collect();
    assert_eq!(tokens.len(), 3, "a token per claimed intent");

    for id in &ids[..3] {
        assert_eq!(intent(&s, id)["status"], "DELIVERED");
        assert_eq!(
            event_types(&s, id),
            ["intent.created", "intent.submitted", "intent.delivered"]
        );
        let delivered = events_of(&s, id, "intent.delivered");
        assert_eq!(delivered[0]["status"], "DELIVERED");
        assert_eq!(delivered[0]["details"]["via"], "inbox");
        assert_eq!(delivered[0]["details"]["attempt"], 1);
    }
    for id in &ids[3..] {
        assert_eq!(intent(&s, id)["status"], "SUBMITTED", "not claimed yet");
    }

    let rest = claim(&s, &to, json!({"max": 5}));
    let got: Vec<&str> = rest.iter().map(claimed_id).collect();
    assert_eq!(got, ids[3..], "only what is left, still in order");
    assert!(claim(&s, &to, json!({"max": 100})).is_empty());
}

#[test]
fn a_claim_without_a_body_takes_one_intent() {
    let s = Server::start();
    let to = inbox("nobody");
    let ids = create_n(&s, &to, 2);
    let r = post_empty(&s, &claim_path(&to));
    assert_ok(&r);
    let claims = r.json["claims"].as_array().expect("claims");
    assert_eq!(claims.len(), 1, "max defaults to 1: {}", r.text);
    assert_eq!(claimed_id(&claims[0]), ids[0]);
    assert_lease_about(&claims[0], 30.0);
    assert_eq!(intent(&s, &ids[1])["status"], "SUBMITTED");
}

#[test]
fn the_lease_comes_from_the_claim_then_the_agent_then_thirty_seconds() {
    let s = Server::start();
    let unregistered = inbox("unregistered");
    let plain = inbox("plain");
    let seven = inbox("seven");
    register_inbox(&s, &plain, json!({}));
    register_inbox(&s, &seven, json!({"lease_seconds": 7}));
    for to in [&unregistered, &plain, &seven, &seven] {
        s.create_intent(to);
    }
    assert_lease_about(&claim_one(&s, &unregistered, json!({})), 30.0);
    assert_lease_about(&claim_one(&s, &plain, json!({})), 30.0);
    assert_lease_about(&claim_one(&s, &seven, json!({})), 7.0);
    assert_lease_about(&claim_one(&s, &seven, json!({"lease_seconds": 3})), 3.0);
}

#[test]
fn a_claim_takes_only_submitted_intents_of_its_own_agent() {
    let s = Server::start();
    let mine = inbox("mine");
    let other = inbox("other");
    let done = s.create_intent(&mine);
    let theirs = s.create_intent(&other);
    let open = s.create_intent(&mine);
    let r = s.post(
        &format!("/v1/intents/{done}/resolve"),
        &json!({"status": "COMPLETED", "result": {"v": 1}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    let got = claim(&s, &mine, json!({"max": 10}));
    let ids: Vec<&str> = got.iter().map(claimed_id).collect();
    assert_eq!(ids, [open.as_str()]);
    assert_eq!(intent(&s, &theirs)["status"], "SUBMITTED");
    assert_eq!(intent(&s, &done)["status"], "COMPLETED");
    assert!(claim(&s, &mine, json!({"max": 10})).is_empty());
}

/// Claims one fresh intent of a fresh agent and returns (intent id, claim).
fn claimed(s: &Server) -> (String, Value) {
    let to = inbox("ack");
    let id = s.create_intent(&to);
    let c = claim_one(s, &to, json!({"lease_seconds": 60}));
    assert_eq!(claimed_id(&c), id);
    (id, c)
}

/// The one event of `event_type` on the intent, after checking it is the newest.
fn last_event(s: &Server, id: &str, event_type: &str) -> Value {
    let all = events(s, id);
    let last = all.last().expect("events").clone();
    assert_eq!(last["event_type"], event_type, "{all:?}");
    last
}

#[test]
fn ack_defaults_to_acknowledged_and_the_intent_leaves_the_queue() {
    let s = Server::start();
    for body in [Some(json!({})), None] {
        let (id, c) = claimed(&s);
        let r = match &body {
            Some(b) => ack(&s, token(&c), b.clone()),
            None => post_empty(&s, &format!("/v1/claims/{}/ack", token(&c))),
        };
        assert_ok(&r);
        assert_eq!(r.json["intent"]["status"], "ACKNOWLEDGED", "{}", r.text);
        assert_eq!(r.json["event"]["event_type"], "intent.acknowledged");
        assert_eq!(intent(&s, &id)["status"], "ACKNOWLEDGED");
        let e = last_event(&s, &id, "intent.acknowledged");
        assert_eq!(e["details"]["lease_token"], token(&c));
        let to = c["intent"]["to_agent"].as_str().expect("to_agent");
        assert!(claim(&s, to, json!({})).is_empty(), "acked: not claimable");
    }
}

#[test]
fn ack_in_progress_moves_the_intent_on() {
    let s = Server::start();
    let (id, c) = claimed(&s);
    let r = ack(&s, token(&c), json!({"status": "IN_PROGRESS"}));
    assert_ok(&r);
    assert_eq!(intent(&s, &id)["status"], "IN_PROGRESS");
    last_event(&s, &id, "intent.in_progress");
    // The worker finishes through the ordinary AXME endpoint.
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {"done": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(intent(&s, &id)["result"], json!({"done": true}));
}

#[test]
fn ack_completed_sets_the_result() {
    let s = Server::start();
    let (id, c) = claimed(&s);
    let result = json!({"total": 42, "lines": ["a", "b"]});
    let r = ack(
        &s,
        token(&c),
        json!({"status": "COMPLETED", "result": result}),
    );
    assert_ok(&r);
    let i = intent(&s, &id);
    assert_eq!(i["status"], "COMPLETED");
    assert_eq!(i["result"], result);
    let e = last_event(&s, &id, "intent.completed");
    assert_eq!(e["details"]["result"], result);
    assert_eq!(e["details"]["lease_token"], token(&c));
}

#[test]
fn ack_failed_sets_the_error() {
    let s = Server::start();
    let (id, c) = claimed(&s);
    let error = json!({"code": "bad_input", "message": "row 7 has no date"});
    let r = ack(&s, token(&c), json!({"status": "FAILED", "error": error}));
    assert_ok(&r);
    let i = intent(&s, &id);
    assert_eq!(i["status"], "FAILED");
    assert_eq!(i["error"], error);
    let e = last_event(&s, &id, "intent.failed");
    assert_eq!(e["details"]["error"], error);
}

#[test]
fn an_unknown_ack_status_is_422_and_changes_nothing() {
    let s = Server::start();
    let (id, c) = claimed(&s);
    let before = intent(&s, &id);
    for bad in [
        json!("WAITING"),
        json!("DONE"),
        json!("completed"),
        json!(3),
    ] {
        let r = ack(&s, token(&c), json!({ "status": bad }));
        assert_invalid(&r, "status");
    }
    assert_eq!(intent(&s, &id), before, "nothing changed");
    assert_ok(&ack(&s, token(&c), json!({"status": "COMPLETED"})));
}

#[test]
fn a_used_token_is_409_lease_lost_and_changes_nothing() {
    let s = Server::start();
    let (id, c) = claimed(&s);
    assert_ok(&ack(&s, token(&c), json!({"status": "COMPLETED"})));
    let before = intent(&s, &id);
    let n = events(&s, &id).len();
    assert_lease_lost(&ack(&s, token(&c), json!({"status": "COMPLETED"})));
    assert_lease_lost(&ack(&s, token(&c), json!({"status": "FAILED"})));
    assert_lease_lost(&nack(&s, token(&c), json!({})));
    assert_lease_lost(&extend(&s, token(&c), 30));
    assert_eq!(intent(&s, &id), before);
    assert_eq!(events(&s, &id).len(), n, "no event appended");
}

#[test]
fn a_claim_whose_intent_was_canceled_is_lost_and_never_requeued() {
    let (s, to, id) = with_one_intent("canceled");
    let c = claim_one(&s, &to, json!({"lease_seconds": 1}));
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "CANCELED", "reason": "not needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_lease_lost(&ack(&s, token(&c), json!({"status": "COMPLETED"})));
    assert_lease_lost(&extend(&s, token(&c), 30));
    // Past the lease's end (1 s) the timer leaves the canceled intent alone.
    crate::runtime_timers::timers_caught_up(&s, 1);
    assert_eq!(intent(&s, &id)["status"], "CANCELED");
    assert!(events_of(&s, &id, "intent.delivery_failed").is_empty());
    assert!(claim(&s, &to, json!({})).is_empty());
}

#[test]
fn claim_bodies_are_checked_and_the_field_named() {
    let (s, to, id) = with_one_intent("checked");
    for (body, field) in [
        (json!({"max": 0}), "max"),
        (json!({"max": 101}), "max"),
        (json!({"max": "2"}), "max"),
        (json!({"max": 1.5}), "max"),
        (json!({"lease_seconds": 0}), "lease_seconds"),
        (json!({"lease_seconds": 43_201}), "lease_seconds"),
        (json!({"wait_seconds": 61}), "wait_seconds"),
        (json!({"wait_seconds": -1}), "wait_seconds"),
        (json!({"max": 1, "lease": 5}), "lease"),
        (json!({"visibility_timeout": 5}), "visibility_timeout"),
    ] {
        let r = claim_raw(&s, &to, body.clone());
        assert_invalid(&r, field);
        assert_eq!(r.code(), "schema_invalid", "{body}: {}", r.text);
    }
    let r = claim_raw(&s, &to, json!([1]));
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(intent(&s, &id)["status"], "SUBMITTED", "no claim was made");
    // The bounds themselves are fine.
    let ok = claim(
        &s,
        &to,
        json!({"max": 100, "lease_seconds": 43_200, "wait_seconds": 0}),
    );
    assert_eq!(ok.len(), 1);
    assert_lease_about(&ok[0], 43_200.0);
}

#[test]
fn ack_nack_and_extend_bodies_are_checked() {
    let s = Server::start();
    let (id, c) = claimed(&s);
    let t = token(&c);
    for (action, body, field) in [
        ("ack", json!({"status": "COMPLETED", "extra": 1}), "extra"),
        ("ack", json!({"status": "COMPLETED", "result": 5}), "result"),
        ("ack", json!({"status": "FAILED", "error": [1]}), "error"),
        ("nack", json!({"delay_seconds": -1}), "delay_seconds"),
        ("nack", json!({"delay_seconds": "soon"}), "delay_seconds"),
        ("nack", json!({"delay": 1}), "delay"),
        ("extend", json!({}), "lease_seconds"),
        ("extend", json!({"lease_seconds": 0}), "lease_seconds"),
        ("extend", json!({"lease_seconds": 43_201}), "lease_seconds"),
        ("extend", json!({"lease_seconds": 5, "x": 1}), "x"),
    ] {
        let r = act(&s, t, action, body.clone());
        assert_eq!(r.status, 422, "{action} {body}: {}", r.text);
        assert_eq!(r.field(), field, "{action} {body}: {}", r.text);
    }
    let i = intent(&s, &id);
    assert_eq!(i["status"], "DELIVERED", "nothing changed: {i}");
    assert_eq!(event_types(&s, &id).len(), 3);
    assert_ok(&ack(&s, t, json!({})));
}

#[test]
fn claiming_needs_a_key() {
    let (s, to, id) = with_one_intent("anon");
    let r = send(s.req_anon("POST", &claim_path(&to)), Some("{}".into()));
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(intent(&s, &id)["status"], "SUBMITTED");
    let c = claim_one(&s, &to, json!({}));
    let r = send(
        s.req_anon("POST", &format!("/v1/claims/{}/ack", token(&c))),
        Some("{}".into()),
    );
    assert_eq!(r.status, 401, "{}", r.text);
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
}

#[test]
fn an_unknown_token_is_404() {
    let s = Server::start();
    for (action, body) in [
        ("ack", json!({})),
        ("nack", json!({})),
        ("extend", json!({"lease_seconds": 5})),
    ] {
        let r = act(&s, "lease_0123456789abcdef0123456789abcdef", action, body);
        assert_eq!(r.status, 404, "{action}: {}", r.text);
        assert_eq!(r.code(), "not_found", "{action}: {}", r.text);
    }
}

#[test]
fn the_address_in_the_path_may_be_bare_or_percent_encoded() {
    let s = Server::start();
    let to = "agent://team/billing/worker";
    let ids = create_n(&s, to, 2);
    let bare = claim(&s, to, json!({}));
    assert_eq!(claimed_id(&bare[0]), ids[0]);
    let r = s.post(
        "/v1/agents/agent%3A%2F%2Fteam%2Fbilling%2Fworker/inbox/claim",
        &json!({}),
    );
    assert_ok(&r);
    assert_eq!(claimed_id(&r.json["claims"][0]), ids[1], "{}", r.text);

    let r = s.post("/v1/agents/http%3A%2F%2Fteam%2Fw/inbox/claim", &json!({}));
    assert_eq!(r.status, 422, "{}", r.text);
    assert_eq!(r.code(), "invalid_agent_address", "{}", r.text);
}
