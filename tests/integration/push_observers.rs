//! Observer pushes (SPEC.md, "Observer subscriptions"): AXME's `/v1/webhooks/subscriptions`
//! extended with the `intent.*` event types and the `intent_id`, `correlation_id` and `to_agent`
//! filters, and AXME's published events (`/v1/webhooks/events`). One signed push per matching
//! event, with body `{"type", "timestamp", "data": {"event", "intent"}}`.

use crate::common;
use crate::receiver;

use std::collections::HashSet;

use common::*;
use receiver::*;
use serde_json::{json, Value};

fn subscribe(s: &Server, body: Value) -> Value {
    let r = s.post("/v1/webhooks/subscriptions", &body);
    assert_eq!(r.status, 200, "{body}: {}", r.text);
    assert_eq!(r.json["ok"], true);
    r.json["subscription"].clone()
}

/// Acks an intent (recording the hand-over) and completes it.
fn ack_and_complete(s: &Server, id: &str) {
    let r = s.post(&format!("/v1/intents/{id}/ack"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {"ok": 1}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

/// `(intent_id, event_type)` of each push, sorted by event seq.
fn seen(rx: &Receiver) -> Vec<(String, String)> {
    let mut bodies: Vec<Value> = rx.hits().iter().map(|h| h.json()).collect();
    bodies.sort_by_key(|b| b["data"]["event"]["seq"].as_i64());
    bodies
        .iter()
        .map(|b| {
            let e = &b["data"]["event"];
            (
                e["intent_id"].as_str().unwrap().into(),
                e["event_type"].as_str().unwrap().into(),
            )
        })
        .collect()
}

#[test]
fn every_lifecycle_event_is_pushed_once_and_signed() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok());
    let sub = subscribe(
        &s,
        json!({"callback_url": rx.url(), "event_types": ["intent.*"], "description": "all"}),
    );
    let secret = sub["secret"]
        .as_str()
        .expect("the generated secret, once")
        .to_string();
    assert!(secret.starts_with("whsec_"));
    assert_eq!(sub["secret_hint"], &secret[secret.len() - 4..]);
    assert_eq!(sub["event_types"], json!(["intent.*"]));
    assert_eq!(sub["active"], true);
    assert_eq!(sub["revoked_at"], Value::Null);
    assert_eq!(sub["callback_url"], rx.url());

    let id = s.create_intent(&address("observed"));
    ack_and_complete(&s, &id);
    let evs = events(&s, &id);
    assert!(evs.len() >= 4, "{evs:?}");
    let hits = rx.wait_hits(evs.len());
    settle(&s);
    assert_eq!(rx.hits().len(), evs.len(), "one push per event");
    let ids: HashSet<&str> = hits.iter().map(|h| h.id()).collect();
    assert_eq!(ids.len(), hits.len(), "each push has its own webhook-id");
    for h in &hits {
        assert_signed(h, &key_of(&secret));
        assert_eq!(h.header("content-type"), Some("application/json"));
        let body = h.json();
        let event = &body["data"]["event"];
        let want = evs
            .iter()
            .find(|e| e["seq"] == event["seq"])
            .unwrap_or_else(|| panic!("pushed an unknown event {event}"));
        assert_eq!(event, want, "the pushed event is the logged one");
        assert_eq!(body["type"], event["event_type"]);
        assert!(body["timestamp"].is_string());
        assert_eq!(body["data"]["intent"]["intent_id"], id.as_str());
        let d = wait_delivery(&s, h.id(), "delivered");
        assert_eq!(d["kind"], "subscription");
        assert_eq!(d["subscription_id"], sub["subscription_id"]);
        assert_eq!(d["event_type"], event["event_type"]);
    }
    assert_eq!(deliveries_of(&s, &id).len(), evs.len());
}

#[test]
fn event_types_and_filters_choose_what_each_subscription_gets() {
    let s = Server::start();
    let (p, q) = (address("p"), address("q"));
    let mut body = intent_body(&p);
    let corr = uuid();
    body["correlation_id"] = json!(corr);
    let one = s.post("/v1/intents", &body).json["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let two = s.create_intent(&q);
    let before = |id: &str| events(&s, id).len();
    let (one_before, two_before) = (before(&one), before(&two));

    let completed = Receiver::start(Reply::ok());
    let by_intent = Receiver::start(Reply::ok());
    let by_corr = Receiver::start(Reply::ok());
    let by_agent = Receiver::start(Reply::ok());
    let all = ["intent.*"];
    subscribe(
        &s,
        json!({"callback_url": completed.url(), "event_types": ["intent.completed"]}),
    );
    let sub = subscribe(
        &s,
        json!({"callback_url": by_intent.url(), "event_types": all, "intent_id": two}),
    );
    assert_eq!(sub["intent_id"], two.as_str());
    subscribe(
        &s,
        json!({"callback_url": by_corr.url(), "event_types": all, "correlation_id": corr}),
    );
    subscribe(
        &s,
        json!({"callback_url": by_agent.url(), "event_types": all, "to_agent": q}),
    );

    ack_and_complete(&s, &one);
    ack_and_complete(&s, &two);
    settle(&s);
    let after = |id: &str, from: usize| -> Vec<(String, String)> {
        events(&s, id)[from..]
            .iter()
            .map(|e| {
                (
                    id.to_string(),
                    e["event_type"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let (one_new, two_new) = (after(&one, one_before), after(&two, two_before));
    assert_eq!(
        seen(&completed),
        [
            (one.clone(), "intent.completed".to_string()),
            (two.clone(), "intent.completed".to_string())
        ]
    );
    assert_eq!(seen(&by_intent), two_new, "intent_id filter");
    assert_eq!(seen(&by_corr), one_new, "correlation_id filter");
    assert_eq!(seen(&by_agent), two_new, "to_agent filter");
}

#[test]
fn a_deleted_subscription_gets_nothing_more() {
    let s = Server::start();
    let gone = Receiver::start(Reply::ok());
    let witness = Receiver::start(Reply::ok());
    let types = json!(["intent.created"]);
    let sub = subscribe(
        &s,
        json!({"callback_url": gone.url(), "event_types": types}),
    );
    let kept = subscribe(
        &s,
        json!({"callback_url": witness.url(), "event_types": types}),
    );
    s.create_intent(&address("o"));
    gone.wait_hits(1);

    let sid = sub["subscription_id"].as_str().unwrap();
    let list = s.get("/v1/webhooks/subscriptions");
    assert_eq!(list.status, 200, "{}", list.text);
    let listed = list.json["subscriptions"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{}", list.text);
    assert!(
        listed.iter().all(|x| x.get("secret").is_none()),
        "{}",
        list.text
    );
    assert!(listed.iter().any(|x| x["subscription_id"] == sid));

    let del = send(
        s.req("DELETE", &format!("/v1/webhooks/subscriptions/{sid}")),
        None,
    );
    assert_eq!(del.status, 200, "{}", del.text);
    assert_eq!(del.json["subscription_id"], sid);
    assert!(del.json["revoked_at"].is_string());
    let again = send(
        s.req("DELETE", &format!("/v1/webhooks/subscriptions/{sid}")),
        None,
    );
    assert_eq!(again.status, 404, "{}", again.text);

    let id = s.create_intent(&address("o"));
    witness.wait_hits(2);
    let made = deliveries_of(&s, &id);
    assert_eq!(made.len(), 1, "{made:?}");
    assert_eq!(made[0]["subscription_id"], kept["subscription_id"]);
    settle(&s);
    assert_eq!(gone.hits().len(), 1, "nothing after the delete");
}

#[test]
fn a_given_secret_signs_with_its_own_bytes_and_is_not_echoed() {
    let s = Server::start();
    let raw = Receiver::start(Reply::ok());
    let whsec = Receiver::start(Reply::ok());
    let types = json!(["intent.submitted"]);
    let plain = "a-plain-secret-of-my-own";
    let sub = subscribe(
        &s,
        json!({"callback_url": raw.url(), "event_types": types, "secret": plain}),
    );
    assert!(sub.get("secret").is_none(), "{sub}");
    let key: Vec<u8> = (100u8..132).collect();
    let given = format!(
        "whsec_{}",
        base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &key)
    );
    subscribe(
        &s,
        json!({"callback_url": whsec.url(), "event_types": types, "secret": given}),
    );
    s.create_intent(&address("o"));
    assert_signed(&raw.wait_hits(1)[0], plain.as_bytes());
    assert_signed(&whsec.wait_hits(1)[0], &key);
}

#[test]
fn a_subscription_is_updated_by_its_callback_url() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok());
    let first = subscribe(
        &s,
        json!({"callback_url": rx.url(), "event_types": ["intent.created"]}),
    );
    let secret = first["secret"].as_str().unwrap().to_string();
    let second = subscribe(
        &s,
        json!({"callback_url": rx.url(), "event_types": ["intent.completed"]}),
    );
    assert_eq!(second["subscription_id"], first["subscription_id"]);
    assert!(
        second.get("secret").is_none(),
        "the kept secret is not shown again"
    );
    assert_eq!(second["secret_hint"], first["secret_hint"]);
    let id = s.create_intent(&address("o"));
    ack_and_complete(&s, &id);
    let hit = rx.wait_hits(1).remove(0);
    settle(&s);
    assert_eq!(rx.hits().len(), 1);
    assert_eq!(hit.json()["type"], "intent.completed");
    assert_signed(&hit, &key_of(&secret));
}

#[test]
fn a_published_event_is_pushed_to_its_owner_s_subscriptions_and_replayed() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok());
    let other = Receiver::start(Reply::ok());
    let sub = subscribe(
        &s,
        json!({"callback_url": rx.url(), "event_types": ["inbox.thread_created"]}),
    );
    let secret = sub["secret"].as_str().unwrap().to_string();
    subscribe(
        &s,
        json!({"callback_url": other.url(), "event_types": ["inbox.reply_received"]}),
    );
    let payload = json!({"thread_id": "t-1", "n": [1, 2]});
    let r = s.post(
        "/v1/webhooks/events",
        &json!({"event_type": "inbox.thread_created", "source": "tests", "payload": payload}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let p = &r.json;
    assert_eq!(
        (p["queued_deliveries"].as_i64(), p["pending"].as_i64()),
        (Some(1), Some(1))
    );
    assert_eq!(
        (p["processed_deliveries"].as_i64(), p["delivered"].as_i64()),
        (Some(0), Some(0))
    );
    assert_eq!(p["dead_lettered"], 0);
    assert_eq!(p["event_type"], "inbox.thread_created");
    assert_eq!(p["source"], "tests");
    assert_eq!(p["owner_agent"], sub["owner_agent"]);
    let event_id = p["event_id"].as_str().unwrap().to_string();

    let hit = rx.wait_hits(1).remove(0);
    assert_signed(&hit, &key_of(&secret));
    let body = hit.json();
    assert_eq!(body["type"], "inbox.thread_created");
    assert_eq!(body["data"]["payload"], payload);
    assert_eq!(body["data"]["event_id"], event_id.as_str());
    assert_eq!(body["data"]["source"], "tests");
    let d = wait_delivery(&s, hit.id(), "delivered");
    assert_eq!(d["event_id"], event_id.as_str());

    let r = s.post(
        &format!("/v1/webhooks/events/{event_id}/replay"),
        &json!({}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            r.json["queued_deliveries"].as_i64(),
            r.json["pending"].as_i64()
        ),
        (Some(1), Some(1))
    );
    assert!(r.json["replayed_at"].is_string());
    let again = rx.wait_hits(2).remove(1);
    assert_eq!(again.id(), hit.id(), "the replay keeps the webhook-id");
    assert_eq!(again.json()["data"]["payload"], payload);
    settle(&s);
    assert!(other.hits().is_empty(), "another event type");
    let missing = s.post(
        &format!("/v1/webhooks/events/{}/replay", uuid()),
        &json!({}),
    );
    assert_eq!(missing.status, 404, "{}", missing.text);
}

#[test]
fn bad_subscriptions_and_events_are_422_naming_the_field() {
    let s = Server::start();
    let url = "http://127.0.0.1:9/hook";
    let cases = [
        (
            json!({"callback_url": url, "event_types": ["intent.*", "intent.nope"]}),
            "event_types[1]",
        ),
        (
            json!({"callback_url": url, "event_types": []}),
            "event_types",
        ),
        (json!({"callback_url": url}), "event_types"),
        (
            json!({"callback_url": "ftp://host/x", "event_types": ["intent.*"]}),
            "callback_url",
        ),
        (
            json!({"callback_url": url, "event_types": ["intent.*"], "secret": "short"}),
            "secret",
        ),
        (
            json!({"callback_url": url, "event_types": ["intent.*"], "intent_id": "x"}),
            "intent_id",
        ),
        (
            json!({"callback_url": url, "event_types": ["intent.*"], "to_agent": "http://x"}),
            "to_agent",
        ),
        (
            json!({"callback_url": url, "event_types": ["intent.*"], "extra": 1}),
            "extra",
        ),
    ];
    for (body, field) in cases {
        let r = s.post("/v1/webhooks/subscriptions", &body);
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    let list = s.get("/v1/webhooks/subscriptions");
    assert_eq!(list.json["subscriptions"], json!([]), "nothing was created");
    let events = [
        (
            json!({"event_type": "intent.created", "source": "t", "payload": {}}),
            "event_type",
        ),
        (
            json!({"event_type": "inbox.thread_created", "source": "tt"}),
            "payload",
        ),
    ];
    for (body, field) in events {
        let r = s.post("/v1/webhooks/events", &body);
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    let r = send(
        s.req("DELETE", "/v1/webhooks/subscriptions/not-a-uuid"),
        None,
    );
    assert_eq!(
        (r.status, r.field()),
        (422, "subscription_id"),
        "{}",
        r.text
    );
}
