//! Authorization: what an agent key may do. Three agent keys (A acts for `agent://authz/a`, B for
//! `agent://authz/b`, C for `agent://authz/c`) and the admin key. A sends work to B; C is a
//! stranger to it and must learn nothing about it through any door: reads, listings, feeds,
//! streams, the firehose, claims, subscriptions, the delivery log, the inbox, the registry. A
//! refused request changes nothing. A revoked key is refused at once and its open streams end
//! within seconds.

use crate::common;

use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

const A: &str = "agent://authz/a";
const B: &str = "agent://authz/b";
const C: &str = "agent://authz/c";

struct Keys {
    a: String,
    b: String,
    c: String,
    b_id: String,
}

fn agent_key(s: &Server, name: &str, agent: &str) -> (String, String) {
    let r = s.post(
        "/v1/keys",
        &json!({"name": name, "role": "agent", "agents": [agent]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    (
        r.json["api_key"].as_str().unwrap().to_string(),
        r.json["key"]["key_id"].as_str().unwrap().to_string(),
    )
}

fn setup(s: &Server) -> Keys {
    let (a, _) = agent_key(s, "key-a", A);
    let (b, b_id) = agent_key(s, "key-b", B);
    let (c, _) = agent_key(s, "key-c", C);
    for (addr, mode) in [(A, "poll"), (B, "inbox"), (C, "poll")] {
        let r = s.post(
            "/v1/agents",
            &json!({"address": addr, "delivery_mode": mode}),
        );
        assert_eq!(r.status, 200, "{}", r.text);
    }
    Keys { a, b, c, b_id }
}

fn call(s: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let req = s.req_anon(method, path).set("x-api-key", key);
    send(req, body.map(|b| b.to_string()))
}

/// A fresh server with the three keys and one intent A sent to B.
fn a_sent_to_b() -> (Server, Keys, String) {
    let s = Server::start();
    let k = setup(&s);
    let id = send_a_to_b(&s, &k);
    (s, k, id)
}

fn post_with(s: &Server, key: &str, path: &str, body: Value) -> Resp {
    call(s, key, "POST", path, Some(body))
}

fn get_with(s: &Server, key: &str, path: &str) -> Resp {
    call(s, key, "GET", path, None)
}

fn call_as(
    s: &Server,
    key: &str,
    owner: &str,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Resp {
    let req = s
        .req_anon(method, path)
        .set("x-api-key", key)
        .set("x-owner-agent", owner);
    send(req, body.map(|b| b.to_string()))
}

fn snapshot(s: &Server, id: &str) -> (Value, Value) {
    let i = s.get(&format!("/v1/intents/{id}")).json["intent"].clone();
    let e = s.get(&format!("/v1/intents/{id}/events")).json["events"].clone();
    (i, e)
}

/// A sends an intent to B (from_agent derived from A's key).
fn send_a_to_b(s: &Server, k: &Keys) -> String {
    let mut body = intent_body(B);
    body.as_object_mut().unwrap().remove("from_agent");
    let r = post_with(s, &k.a, "/v1/intents", body);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent_id"].as_str().unwrap().to_string()
}

#[test]
fn an_agent_key_sends_only_as_its_own_agents() {
    let (s, k, id) = a_sent_to_b();
    let i = s.get(&format!("/v1/intents/{id}")).json["intent"].clone();
    assert_eq!(i["from_agent"], A, "from_agent is derived from the key");

    // Another agent's address is ignored, as AXME ignores a sent from_agent.
    let mut body = intent_body(B);
    body["from_agent"] = json!(C);
    let r = post_with(&s, &k.a, "/v1/intents", body);
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = r.json["intent_id"].as_str().unwrap();
    let i = s.get(&format!("/v1/intents/{sent}")).json["intent"].clone();
    assert_eq!(i["from_agent"], A, "sent as its own agent");
    // Admin may send as anyone.
    let mut body = intent_body(B);
    body["from_agent"] = json!(C);
    assert_eq!(s.post("/v1/intents", &body).status, 200);
}

#[test]
fn a_stranger_learns_nothing_about_another_agents_intent() {
    let (s, k, id) = a_sent_to_b();
    let before = snapshot(&s, &id);

    // The sender and the handler see it.
    for key in [&k.a, &k.b] {
        assert_eq!(get_with(&s, key, &format!("/v1/intents/{id}")).status, 200);
        assert_eq!(
            get_with(&s, key, &format!("/v1/intents/{id}/events")).status,
            200
        );
    }
    // The stranger gets 404 on every door that names the intent, as if it did not exist.
    for (method, path, body) in [
        ("GET", format!("/v1/intents/{id}"), None),
        ("GET", format!("/v1/intents/{id}/events"), None),
        (
            "GET",
            format!("/v1/intents/{id}/events?wait_seconds=1"),
            None,
        ),
        ("GET", format!("/v1/intents/{id}/events/stream"), None),
        (
            "POST",
            format!("/v1/intents/{id}/resolve"),
            Some(json!({"status": "CANCELED", "reason": "x"})),
        ),
        ("POST", format!("/v1/intents/{id}/ack"), Some(json!({}))),
        (
            "POST",
            format!("/v1/intents/{id}/progress"),
            Some(json!({"status": "IN_PROGRESS"})),
        ),
        ("POST", format!("/v1/intents/{id}/redrive"), Some(json!({}))),
        ("GET", format!("/v1/events/stream?intent_id={id}"), None),
        ("GET", format!("/v1/deliveries?intent_id={id}"), None),
    ] {
        let r = call(&s, &k.c, method, &path, body);
        assert_eq!(r.status, 404, "{method} {path}: {}", r.text);
        assert_eq!(r.code(), "intent_not_found", "{method} {path}: {}", r.text);
    }
    // Listings and streams that would show it are refused unless filtered to the caller's own.
    for path in [
        "/v1/intents".to_string(),
        format!("/v1/intents?to_agent={B}"),
        format!("/v1/intents?from_agent={A}"),
        "/v1/events/stream".to_string(),
        format!("/v1/events/stream?to_agent={B}"),
        "/v1/agents/authz/b/intents".to_string(),
        "/v1/agents/authz/b/intents/stream".to_string(),
        "/v1/deliveries".to_string(),
    ] {
        let r = get_with(&s, &k.c, &path);
        assert_error(&r, 403, "forbidden");
    }
    let r = get_with(&s, &k.c, &format!("/v1/intents?to_agent={C}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intents"], json!([]));
    // Nothing changed.
    assert_eq!(snapshot(&s, &id), before);
}

#[test]
fn only_the_handler_handles_and_the_sender_may_cancel() {
    let (s, k, id) = a_sent_to_b();
    let before = snapshot(&s, &id);
    // The sender may read but not complete the work.
    let r = post_with(
        &s,
        &k.a,
        &format!("/v1/intents/{id}/resolve"),
        json!({"status": "COMPLETED", "result": {}}),
    );
    assert_error(&r, 403, "forbidden");
    let r = post_with(&s, &k.a, &format!("/v1/intents/{id}/ack"), json!({}));
    assert_error(&r, 403, "forbidden");
    assert_eq!(snapshot(&s, &id), before);
    // The handler does.
    let r = post_with(&s, &k.b, &format!("/v1/intents/{id}/ack"), json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["event"]["actor"], B, "the actor is the key's agent");
    // The sender cancels its own request.
    let id2 = send_a_to_b(&s, &k);
    let r = post_with(
        &s,
        &k.a,
        &format!("/v1/intents/{id2}/resolve"),
        json!({"status": "CANCELED", "reason": "changed my mind"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn claims_belong_to_the_claiming_agents_key() {
    let (s, k, id) = a_sent_to_b();
    let claim = json!({"max": 1, "lease_seconds": 60});
    let r = post_with(&s, &k.c, "/v1/agents/authz/b/inbox/claim", claim.clone());
    assert_error(&r, 403, "forbidden");
    let r = post_with(&s, &k.b, "/v1/agents/authz/b/inbox/claim", claim);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["claims"][0]["intent"]["intent_id"], json!(id));
    let token = r.json["claims"][0]["lease_token"]
        .as_str()
        .unwrap()
        .to_string();
    let before = snapshot(&s, &id);
    for action in ["ack", "nack", "extend"] {
        let body = if action == "extend" {
            json!({"lease_seconds": 30})
        } else {
            json!({})
        };
        let r = post_with(&s, &k.c, &format!("/v1/claims/{token}/{action}"), body);
        assert_eq!(r.status, 404, "{action}: {}", r.text);
    }
    assert_eq!(snapshot(&s, &id), before);
    let r = post_with(
        &s,
        &k.b,
        &format!("/v1/claims/{token}/ack"),
        json!({"status": "COMPLETED", "result": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn the_registry_subscriptions_deliveries_and_inbox_are_scoped() {
    let (s, k, id) = a_sent_to_b();

    // Registry: a key sees and changes only its own agents.
    let r = get_with(&s, &k.c, "/v1/agents");
    let listed: Vec<&str> = r.json["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["address"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [C]);
    assert_eq!(get_with(&s, &k.c, "/v1/agents/authz/b").status, 404);
    let r = post_with(
        &s,
        &k.c,
        "/v1/agents",
        json!({"address": B, "delivery_mode": "poll"}),
    );
    assert_error(&r, 403, "forbidden");
    assert_error(
        &call(&s, &k.c, "DELETE", "/v1/agents/authz/b", None),
        403,
        "forbidden",
    );
    assert_eq!(
        s.get("/v1/agents/authz/b").json["agent"]["delivery_mode"],
        "inbox"
    );

    // Subscriptions: lifecycle events only of one's own agents or of an intent one may see.
    let sub = |types: Value, filter: Value| {
        let mut b = json!({"callback_url": "http://127.0.0.1:9/hook", "event_types": types});
        for (k2, v) in filter.as_object().unwrap() {
            b[k2] = v.clone();
        }
        b
    };
    let r = post_with(
        &s,
        &k.c,
        "/v1/webhooks/subscriptions",
        sub(json!(["intent.*"]), json!({})),
    );
    assert_error(&r, 403, "forbidden");
    let r = post_with(
        &s,
        &k.c,
        "/v1/webhooks/subscriptions",
        sub(json!(["intent.*"]), json!({"to_agent": B})),
    );
    assert_error(&r, 403, "forbidden");
    let r = post_with(
        &s,
        &k.c,
        "/v1/webhooks/subscriptions",
        sub(json!(["intent.*"]), json!({"intent_id": id})),
    );
    assert_eq!(r.status, 404, "{}", r.text);
    let r = post_with(
        &s,
        &k.b,
        "/v1/webhooks/subscriptions",
        sub(json!(["intent.*"]), json!({"to_agent": B})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["subscription"]["owner_agent"], B);
    let r = s.post(
        "/v1/webhooks/subscriptions",
        &sub(json!(["intent.*"]), json!({})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = get_with(&s, &k.c, "/v1/webhooks/subscriptions");
    assert_eq!(r.json["subscriptions"], json!([]), "{}", r.text);
    let r = call_as(&s, &k.c, B, "GET", "/v1/webhooks/subscriptions", None);
    assert_error(&r, 403, "forbidden");

    // The inbox: only one's own threads and tasks.
    let r = call_as(&s, &k.c, B, "GET", "/v1/inbox", None);
    assert_error(&r, 403, "forbidden");
    assert_eq!(get_with(&s, &k.c, &format!("/v1/inbox/{id}")).status, 404);
    let r = get_with(&s, &k.b, &format!("/v1/inbox/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["thread"]["owner_agent"], B);
    let r = get_with(&s, &k.c, "/v1/inbox");
    assert_eq!(r.json["threads"], json!([]), "{}", r.text);
    let r = get_with(&s, &k.c, "/v1/me/tasks");
    assert_eq!(r.json["tasks"], json!([]), "{}", r.text);

    // Keys and backups are the admin's.
    assert_error(&get_with(&s, &k.c, "/v1/keys"), 403, "forbidden");
    assert_error(&get_with(&s, &k.c, "/v1/admin/backup"), 403, "forbidden");
}

#[test]
fn a_revoked_key_is_refused_at_once_and_its_streams_end_within_seconds() {
    let s = Server::start();
    let k = setup(&s);
    let resp = s
        .req_anon("GET", &format!("/v1/events/stream?to_agent={B}"))
        .set("x-api-key", &k.b)
        .call()
        .expect("stream opens");
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(resp.into_reader()).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
        let _ = tx.send("<closed>".into());
    });
    let r = s.post(&format!("/v1/keys/{}/revoke", k.b_id), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_error(&get_with(&s, &k.b, "/v1/agents"), 401, "auth_failed");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut saw_error = false;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("the stream of a revoked key did not end within 10 s");
        if line.contains("auth_failed") {
            saw_error = true;
        }
        if line == "<closed>" {
            break;
        }
    }
    assert!(saw_error, "the stream ended without saying why");
}

/// An admin key naming another owner scope got 404 deleting the subscription it had just
/// created without one (AXME's conformance `webhooks_subscriptions` sends its `owner_agent` on
/// the delete only); an agent key still reaches only its own owners' subscriptions.
#[test]
fn r_an_admin_deletes_a_subscription_by_id_under_any_owner_scope() {
    let s = Server::start();
    let k = setup(&s);
    let r = s.post(
        "/v1/webhooks/subscriptions",
        &json!({"callback_url": "https://hooks.example/axme", "event_types": ["inbox.thread_created"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["subscription"]["owner_agent"], "agent://admin");
    let id = r.json["subscription"]["subscription_id"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/v1/webhooks/subscriptions/{id}");
    let r = call(&s, &k.b, "DELETE", &path, None);
    assert_error(&r, 404, "not_found");
    let r = call_as(&s, &k.b, B, "DELETE", &path, None);
    assert_error(&r, 404, "not_found");
    let r = send(
        s.req(
            "DELETE",
            &format!("{path}?owner_agent=agent://someone/else"),
        ),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["subscription_id"], id.as_str());
    assert!(r.json["revoked_at"].is_string(), "{}", r.text);
    let r = send(s.req("DELETE", &path), None);
    assert_error(&r, 404, "not_found");
}
