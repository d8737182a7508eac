//! `Idempotency-Key` on the intents API: a retry with the same key and the same JSON gets the
//! original response back (marked `idempotent-replayed: true`) without running again; the same
//! key with another body is 409; keys are scoped to the endpoint; and they survive a restart.

use crate::common;

use common::*;
use serde_json::json;

fn keyed(s: &Server, path: &str, key: &str, body: &str) -> Resp {
    send(
        s.req("POST", path).set("Idempotency-Key", key),
        Some(body.to_string()),
    )
}

fn intent_count(s: &Server) -> usize {
    let r = s.get("/v1/intents?limit=200");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intents"].as_array().expect("intents").len()
}

fn event_count(s: &Server, id: &str) -> usize {
    let r = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["events"].as_array().expect("events").len()
}

#[test]
fn same_key_and_body_replays_the_original_create() {
    let s = Server::start();
    let body = intent_body("agent://w").to_string();
    let first = keyed(&s, "/v1/intents", "create-1", &body);
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = keyed(&s, "/v1/intents", "create-1", &body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    assert_eq!(intent_count(&s), 1);
}

#[test]
fn key_order_and_whitespace_do_not_make_a_different_body() {
    let s = Server::start();
    let corr = uuid();
    let compact = format!(
        r#"{{"intent_type":"demo.task.v1","correlation_id":"{corr}","to_agent":"agent://w","payload":{{"a":1,"b":[1,2]}}}}"#
    );
    let shuffled = format!(
        "{{\n  \"payload\": {{ \"b\": [1, 2], \"a\": 1 }},\n  \"to_agent\": \"agent://w\",\n  \
         \"correlation_id\": \"{corr}\",\n  \"intent_type\": \"demo.task.v1\"\n}}\n"
    );
    let first = keyed(&s, "/v1/intents", "k", &compact);
    assert_eq!(first.status, 200, "{}", first.text);
    let again = keyed(&s, "/v1/intents", "k", &shuffled);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json["intent_id"], first.json["intent_id"]);
    assert_eq!(intent_count(&s), 1);
}

#[test]
fn concurrent_retries_with_one_key_create_one_intent() {
    let s = Server::start();
    let body = intent_body("agent://w").to_string();
    // `Server` holds a receiver and is not `Sync`; the threads only need its address.
    let url = s.url("/v1/intents");
    let responses: Vec<Resp> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                scope.spawn(|| {
                    let req = agent()
                        .post(&url)
                        .set("x-api-key", ADMIN_KEY)
                        .set("Idempotency-Key", "race");
                    send(req, Some(body.clone()))
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert!(responses.iter().all(|r| r.status == 200), "{responses:?}");
    assert!(responses.iter().all(|r| r.text == responses[0].text));
    let fresh = responses
        .iter()
        .filter(|r| r.header("idempotent-replayed").is_none())
        .count();
    assert_eq!(fresh, 1, "exactly one request may run");
    assert_eq!(intent_count(&s), 1);
}

#[test]
fn same_key_with_another_body_is_409_and_creates_nothing() {
    let s = Server::start();
    let first = keyed(
        &s,
        "/v1/intents",
        "k",
        &intent_body("agent://w").to_string(),
    );
    assert_eq!(first.status, 200, "{}", first.text);
    let other = keyed(
        &s,
        "/v1/intents",
        "k",
        &intent_body("agent://w").to_string(),
    );
    assert_eq!(other.status, 409, "{}", other.text);
    assert_eq!(other.code(), "idempotency_conflict");
    assert_eq!(other.json["detail"], other.json["error"]["message"]);
    assert_eq!(intent_count(&s), 1);
}

#[test]
fn keys_are_scoped_per_endpoint_and_intent() {
    let s = Server::start();
    let resolve = json!({"status": "COMPLETED", "result": {"v": 1}}).to_string();
    let a = s.create_intent("agent://w");
    let b = s.create_intent("agent://w");
    for id in [&a, &b] {
        let r = keyed(&s, &format!("/v1/intents/{id}/resolve"), "shared", &resolve);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("idempotent-replayed"), None, "{id}");
        assert_eq!(r.json["intent"]["intent_id"], id.as_str());
        assert_eq!(r.json["intent"]["status"], "COMPLETED");
    }
    let c = s.create_intent("agent://w");
    let r = keyed(&s, &format!("/v1/intents/{c}/ack"), "shared", "{}");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "ACKNOWLEDGED");
    let r = keyed(
        &s,
        "/v1/intents",
        "shared",
        &intent_body("agent://w").to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
    assert_eq!(intent_count(&s), 4);
}

#[test]
fn a_replayed_resolve_returns_the_original_even_though_the_intent_is_terminal() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let path = format!("/v1/intents/{id}/resolve");
    let body = json!({"status": "COMPLETED", "result": {"v": 1}}).to_string();
    let first = keyed(&s, &path, "resolve-1", &body);
    assert_eq!(first.status, 200, "{}", first.text);
    let again = keyed(&s, &path, "resolve-1", &body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    // Without the key it is a new request, and the intent is terminal.
    let unkeyed = send(s.req("POST", &path), Some(body));
    assert_eq!(unkeyed.status, 409, "{}", unkeyed.text);
    assert_eq!(unkeyed.code(), "intent_terminal");
    assert_eq!(event_count(&s, &id), 3);
}

#[test]
fn a_replayed_ack_appends_no_more_events() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let path = format!("/v1/intents/{id}/ack");
    let first = keyed(&s, &path, "ack-1", r#"{"actor":"agent://w/1"}"#);
    assert_eq!(first.status, 200, "{}", first.text);
    let again = keyed(&s, &path, "ack-1", r#"{ "actor": "agent://w/1" }"#);
    assert_eq!(
        again.header("idempotent-replayed"),
        Some("true"),
        "{}",
        again.text
    );
    assert_eq!(again.json, first.json);
    assert_eq!(event_count(&s, &id), 4);
}

#[test]
fn a_refused_request_does_not_use_up_its_key() {
    let s = Server::start();
    let mut bad = intent_body("agent://w");
    bad["intent_type"] = json!("Not A Type");
    let r = keyed(&s, "/v1/intents", "k", &bad.to_string());
    assert_eq!(r.status, 422, "{}", r.text);
    let r = keyed(
        &s,
        "/v1/intents",
        "k",
        &intent_body("agent://w").to_string(),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);

    // A 409 from the lifecycle is not remembered either.
    let id = s.create_intent("agent://w");
    let resume = format!("/v1/intents/{id}/resume");
    let r = keyed(&s, &resume, "r", "{}");
    assert_eq!(r.code(), "invalid_transition", "{}", r.text);
    let wait = json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_AGENT"});
    assert_eq!(
        s.post(&format!("/v1/intents/{id}/progress"), &wait).status,
        200
    );
    let r = keyed(&s, &resume, "r", "{}");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("idempotent-replayed"), None);
}

#[test]
fn an_overlong_key_or_one_with_blanks_is_400_naming_the_header() {
    let s = Server::start();
    for key in ["k".repeat(256), "a key".into(), "a\tkey".into()] {
        let r = keyed(
            &s,
            "/v1/intents",
            &key,
            &intent_body("agent://w").to_string(),
        );
        assert_eq!(r.status, 400, "{key:?}: {}", r.text);
        assert_eq!(r.code(), "bad_request");
        assert_eq!(r.field(), "Idempotency-Key");
    }
    assert_eq!(intent_count(&s), 0);
}

#[test]
fn keys_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = dir.path().join("axme.db");
    let body = intent_body("agent://w").to_string();
    let mut s = Server::start_on(&db, &[]);
    let first = keyed(&s, "/v1/intents", "durable", &body);
    assert_eq!(first.status, 200, "{}", first.text);
    let id = first.json["intent_id"].as_str().unwrap().to_string();
    let resolve = json!({"status": "CANCELED", "reason": "r"}).to_string();
    let resolved = keyed(
        &s,
        &format!("/v1/intents/{id}/resolve"),
        "durable",
        &resolve,
    );
    assert_eq!(resolved.status, 200, "{}", resolved.text);
    assert_eq!(s.terminate(), Some(0));

    let s = Server::start_on(&db, &[]);
    let again = keyed(&s, "/v1/intents", "durable", &body);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.text, first.text);
    let again = keyed(
        &s,
        &format!("/v1/intents/{id}/resolve"),
        "durable",
        &resolve,
    );
    assert_eq!(
        again.header("idempotent-replayed"),
        Some("true"),
        "{}",
        again.text
    );
    assert_eq!(again.text, resolved.text);
    let conflict = keyed(
        &s,
        "/v1/intents",
        "durable",
        &intent_body("agent://x").to_string(),
    );
    assert_eq!(conflict.status, 409, "{}", conflict.text);
    assert_eq!(conflict.code(), "idempotency_conflict");
    assert_eq!(intent_count(&s), 1);
}
