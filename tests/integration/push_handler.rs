//! The push binding from a handler's side (SPEC.md, "http (push)" and "Deliveries"): an intent
//! to an `http` agent arrives at its webhook as a signed Standard Webhooks POST, 2xx marks it
//! DELIVERED, the 2xx body may move it on, and the delivery log shows every attempt. Also the
//! validation of the agent and flag settings the push binding adds.

use crate::common;
use crate::receiver;

use std::process::{Command, Stdio};

use common::*;
use receiver::*;
use serde_json::{json, Value};

#[test]
fn a_push_is_signed_and_carries_the_intent_and_the_delivery() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok().body("thanks"));
    let to = address("signed");
    let secret = register_http(&s, &to, &rx.url(), json!({}));
    assert!(secret.starts_with("whsec_"), "{secret}");
    assert_eq!(key_of(&secret).len(), 32, "32 random bytes");
    // Later reads show only the hint.
    let a = s.get(&format!("/v1/agents/{}", &to["agent://".len()..]));
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.json["agent"].get("webhook_secret").is_none(),
        "{}",
        a.text
    );
    assert_eq!(a.json["agent"]["secret_hint"], &secret[secret.len() - 4..]);

    let id = s.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    assert_eq!(hit.method, "POST");
    assert_eq!(hit.path, "/hook");
    assert_eq!(hit.header("content-type"), Some("application/json"));
    assert_signed(&hit, &key_of(&secret));
    // The crate's own signer agrees with the independent one.
    let ts: i64 = hit.header("webhook-timestamp").unwrap().parse().unwrap();
    assert_eq!(
        hit.header("webhook-signature").unwrap(),
        axme::webhook::sign::signature(std::slice::from_ref(&secret), hit.id(), ts, &hit.body)
    );

    let body = hit.json();
    assert_eq!(body["type"], "intent.submitted");
    assert!(body["timestamp"].as_str().is_some_and(|t| t.contains('T')));
    let data = &body["data"];
    assert_eq!(data["intent"]["intent_id"], id.as_str());
    assert_eq!(data["intent"]["to_agent"], to.as_str());
    assert_eq!(data["intent"]["intent_type"], "demo.task.v1");
    assert_eq!(data["intent"]["payload"], json!({"n": 1}));
    assert_eq!(data["delivery"]["delivery_id"], hit.id());
    assert_eq!(data["delivery"]["attempt"], 1);
    assert!(hit.id().starts_with("msg_"), "{}", hit.id());

    let i = wait_intent_status(&s, &id, "DELIVERED");
    assert_eq!(i["intent_id"], id.as_str());
    let evs = events(&s, &id);
    let delivered: Vec<&Value> = evs
        .iter()
        .filter(|e| e["event_type"] == "intent.delivered")
        .collect();
    assert_eq!(delivered.len(), 1, "{evs:?}");
    assert_eq!(delivered[0]["details"]["delivery_id"], hit.id());
    assert_eq!(delivered[0]["details"]["via"], "http");

    let listed = deliveries_of(&s, &id);
    assert_eq!(listed.len(), 1, "{listed:?}");
    let d = delivery(&s, hit.id());
    assert_eq!(listed[0], d, "the listing and the single read agree");
    assert_eq!(d["delivery_id"], hit.id());
    assert_eq!(d["intent_id"], id.as_str());
    assert_eq!(d["kind"], "handler");
    assert_eq!(d["status"], "delivered");
    assert_eq!(d["target_url"], rx.url());
    assert_eq!(d["event_type"], "intent.submitted");
    assert_eq!(d["next_attempt_at"], Value::Null);
    let a = attempts(&d);
    assert_eq!(a.len(), 1, "{d}");
    assert_eq!(a[0]["attempt"], 1);
    assert_eq!(a[0]["status_code"], 200);
    assert_eq!(a[0]["error"], Value::Null);
    assert_eq!(a[0]["response_excerpt"], "thanks");
    assert!(a[0]["latency_ms"].as_i64().is_some_and(|l| l >= 0), "{d}");
    assert!(a[0]["at"].as_str().is_some_and(|t| t.contains('T')), "{d}");
    assert_eq!(rx.hits().len(), 1, "exactly one push");
}

#[test]
fn a_given_webhook_secret_signs_and_is_never_echoed() {
    let s = Server::start();
    let rx = Receiver::start(Reply::status(204));
    let key: Vec<u8> = (0u8..24).collect();
    let secret = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key)
    );
    let to = address("given");
    let agent = register(&s, &to, &rx.url(), json!({"webhook_secret": secret}));
    assert!(agent.get("webhook_secret").is_none(), "{agent}");
    assert_eq!(agent["secret_hint"], &secret[secret.len() - 4..]);
    let id = s.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    assert_signed(&hit, &key);
    wait_intent_status(&s, &id, "DELIVERED");
    let d = wait_delivery(&s, hit.id(), "delivered");
    assert_eq!(attempts(&d)[0]["status_code"], 204);
}

/// Registers a handler answering `reply`, sends it one intent, and returns the server, the
/// intent id, the delivery and the intent once the delivery is settled.
fn handled_with(reply: Reply) -> (Server, String, Value) {
    let s = Server::start();
    let rx = Receiver::start(reply);
    let to = address("replies");
    register_http(&s, &to, &rx.url(), json!({}));
    let id = s.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    let d = wait_delivery(&s, hit.id(), "delivered");
    (s, id, d)
}

#[test]
fn a_completed_reply_completes_the_intent_with_its_result() {
    let reply = json!({"status": "COMPLETED", "result": {"answer": 42, "items": ["a"]}});
    let (s, id, d) = handled_with(Reply::json(200, reply.clone()));
    let i = wait_intent_status(&s, &id, "COMPLETED");
    assert_eq!(i["result"], json!({"answer": 42, "items": ["a"]}));
    let a = attempts(&d);
    assert_eq!(a[0]["error"], Value::Null, "{d}");
    assert_eq!(a[0]["response_excerpt"], reply.to_string());
    let types = event_types(&s, &id);
    let tail: Vec<&str> = types.iter().rev().take(2).rev().map(|t| &t[..]).collect();
    assert_eq!(tail, ["intent.delivered", "intent.completed"], "{types:?}");
}

#[test]
fn a_waiting_reply_leaves_the_intent_waiting_for_the_reason_given() {
    let reply = json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_HUMAN"});
    let (s, id, _) = handled_with(Reply::json(200, reply));
    let i = wait_intent_status(&s, &id, "WAITING");
    assert_eq!(i["waiting_reason"], "WAITING_FOR_HUMAN");
}

#[test]
fn a_failed_reply_fails_the_intent_with_its_error() {
    let reply = json!({"status": "FAILED", "error": {"code": "no_stock", "message": "none left"}});
    let (s, id, _) = handled_with(Reply::json(202, reply));
    let i = wait_intent_status(&s, &id, "FAILED");
    assert_eq!(i["error"]["code"], "no_stock", "{i}");
}

#[test]
fn an_unknown_reply_status_is_noted_on_the_attempt_and_the_push_still_counts() {
    let (s, id, d) = handled_with(Reply::json(200, json!({"status": "DONE"})));
    let err = attempts(&d)[0]["error"].as_str().unwrap_or("").to_string();
    assert!(
        err.contains("\"DONE\"") && err.contains("not applied"),
        "{d}"
    );
    assert_eq!(attempts(&d)[0]["status_code"], 200);
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
}

#[test]
fn a_reply_the_lifecycle_refuses_is_noted_and_changes_nothing_else() {
    // WAITING needs a waiting_reason: the reply is invalid as a progress report.
    let (s, id, d) = handled_with(Reply::json(200, json!({"status": "WAITING"})));
    let err = attempts(&d)[0]["error"].as_str().unwrap_or("").to_string();
    assert!(err.contains("WAITING was not applied"), "{d}");
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
    assert_eq!(
        event_types(&s, &id).last().map(String::as_str),
        Some("intent.delivered")
    );
}

#[test]
fn a_reply_body_that_is_not_json_is_kept_as_the_excerpt_only() {
    let (s, id, d) = handled_with(Reply::ok().body("<html>ok</html>"));
    assert_eq!(attempts(&d)[0]["response_excerpt"], "<html>ok</html>");
    assert_eq!(attempts(&d)[0]["error"], Value::Null);
    assert_eq!(intent(&s, &id)["status"], "DELIVERED");
}

#[test]
fn a_long_reply_is_cut_to_an_excerpt_of_at_most_2048_bytes() {
    // Byte 2048 falls inside a two-byte character, so the cut steps back one byte.
    let long = format!("x{}", "é".repeat(1500));
    let (_, _, d) = handled_with(Reply::ok().body(&long));
    let excerpt = attempts(&d)[0]["response_excerpt"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(excerpt.len(), 2047, "cut on a character boundary");
    assert!(long.starts_with(&excerpt));
}

#[test]
fn intents_to_other_bindings_make_no_deliveries() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok());
    let poll = address("poll");
    let r = s.post(
        "/v1/agents",
        &json!({"address": poll, "delivery_mode": "poll", "webhook_url": rx.url()}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let a = s.create_intent(&poll);
    let b = s.create_intent(&address("never-registered"));
    assert!(deliveries_of(&s, &a).is_empty());
    assert!(deliveries_of(&s, &b).is_empty());
    assert_eq!(intent(&s, &a)["status"], "SUBMITTED");
    assert!(rx.hits().is_empty());
}

#[test]
fn bad_push_settings_of_an_agent_are_422_naming_the_field() {
    let s = Server::start();
    let to = address("bad");
    let cases = [
        (
            json!({"address": to, "delivery_mode": "http"}),
            "webhook_url",
        ),
        (
            json!({"address": to, "delivery_mode": "push"}),
            "webhook_url",
        ),
        (
            json!({"address": to, "delivery_mode": "http", "webhook_url": "ftp://x/y"}),
            "webhook_url",
        ),
        (
            json!({"address": to, "delivery_mode": "http", "webhook_url": "http://"}),
            "webhook_url",
        ),
        (
            json!({"address": to, "delivery_mode": "http", "webhook_url": "http://a/b",
                   "webhook_secret": "not-a-secret"}),
            "webhook_secret",
        ),
        (
            json!({"address": to, "delivery_mode": "http", "webhook_url": "http://a/b",
                   "webhook_secret": "whsec_c2hvcnQ="}),
            "webhook_secret",
        ),
        (
            json!({"address": to, "delivery_mode": "http", "webhook_url": "http://a/b",
                   "max_delivery_attempts": 0}),
            "max_delivery_attempts",
        ),
    ];
    for (body, field) in cases {
        let r = s.post("/v1/agents", &body);
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    let r = s.get(&format!("/v1/agents/{}", &to["agent://".len()..]));
    assert_eq!(r.status, 404, "nothing was registered: {}", r.text);
}

#[test]
fn a_bad_retry_schedule_stops_the_binary_with_a_clear_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (schedule, says) in [("5x", "unknown unit"), ("", "number"), ("1s,,2s", "number")] {
        let out = Command::new(bin())
            .args(["serve", "--listen", "127.0.0.1:0", "--push-retry-schedule"])
            .arg(schedule)
            .arg("--data")
            .arg(dir.path().join("axme.db"))
            .env_remove("AXME_PUSH_RETRY_SCHEDULE")
            .stdin(Stdio::null())
            .output()
            .expect("run axme");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{schedule:?} was accepted");
        assert!(
            stderr.contains("--push-retry-schedule") && stderr.contains(says),
            "{schedule:?}: {stderr}"
        );
        assert!(
            !String::from_utf8_lossy(&out.stdout).contains("listening on"),
            "{schedule:?}: it must not start"
        );
    }
}

/// AXME's http agents register a `callback_url`, verify `X-Axme-Signature: sha256=<hex
/// HMAC-SHA256(secret, body)>` and read the intent id at the top of the body; the Standard
/// Webhooks headers come too. The signature is recomputed here with ring, independently of the
/// server's signer.
#[test]
fn an_axme_http_agent_gets_a_callback_it_can_verify_with_x_axme_signature() {
    let s = Server::start();
    let rx = Receiver::start(Reply::json(200, json!({"ack": true})));
    let to = address("axme-http");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let r = s.post(
        "/v1/agents",
        &json!({"address": to, "delivery_mode": "http", "callback_url": rx.url(),
                "webhook_secret": secret}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["agent"]["webhook_url"],
        rx.url(),
        "callback_url is webhook_url"
    );

    let id = s.create_intent(&to);
    let hit = rx.wait_hits(1).remove(0);
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, &hit.body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(
        hit.header("x-axme-signature"),
        Some(format!("sha256={hex}").as_str())
    );
    assert_signed(&hit, &key_of(secret));
    let body = hit.json();
    assert_eq!(body["intent_id"], id.as_str());
    assert_eq!(body["data"]["intent"]["intent_id"], id.as_str());
    // `{"ack": true}` carries no status: the intent is DELIVERED and waits for its result.
    let i = wait_intent_status(&s, &id, "DELIVERED");
    assert_eq!(i["lifecycle_status"], "DELIVERED");

    let r = s.post(
        "/v1/agents",
        &json!({"address": to, "delivery_mode": "http", "callback_url": rx.url(),
                "webhook_url": "http://127.0.0.1:9/other"}),
    );
    assert_eq!((r.status, r.field()), (422, "callback_url"), "{}", r.text);
    let r = s.post(
        "/v1/agents",
        &json!({"address": to, "delivery_mode": "http", "callback_url": "ftp://x"}),
    );
    assert_eq!((r.status, r.field()), (422, "callback_url"), "{}", r.text);
}
