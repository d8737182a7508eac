//! What AXME's own clients send and read, beyond the AXP schemas: `lifecycle_status` on every
//! intent shape, `from_agent` derived from the key (a sent value of any scheme accepted and
//! ignored), `reply_to` of any scheme, `/v1/health`, addresses typed with `agent://` in paths and
//! bare names as the same agent, and the bulk cancel of AXME's CLI (`intents cleanup`).

use crate::common;

use common::*;
use serde_json::{json, Value};

fn key_for(s: &Server, name: &str, agent: &str) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": name, "role": "agent", "agents": [agent]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().expect("api_key").to_string()
}

fn call(s: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let req = s.req_anon(method, path).set("x-api-key", key);
    send(req, body.map(|b| b.to_string()))
}

fn intent(s: &Server, id: &str) -> Value {
    let r = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent"].clone()
}

#[test]
fn every_intent_shape_carries_lifecycle_status() {
    let s = Server::start();
    let id = s.create_intent("agent://compat/ls");
    let got = intent(&s, &id);
    assert_eq!(got["lifecycle_status"], "SUBMITTED");
    assert_eq!(got["lifecycle_status"], got["status"]);
    let listed = s.get("/v1/intents?to_agent=agent://compat/ls");
    assert_eq!(listed.json["intents"][0]["lifecycle_status"], "SUBMITTED");
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {"ok": 1}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["lifecycle_status"], "COMPLETED");
    assert_eq!(intent(&s, &id)["lifecycle_status"], "COMPLETED");
}

/// Regression: AXME's model-a examples send `from_agent: "initiator://…"` and `reply_to:
/// "initiator://…"`, and both were 422 `invalid_agent_address`.
#[test]
fn r_an_initiator_from_agent_and_reply_to_are_accepted() {
    let s = Server::start();
    let mut body = intent_body("agent://compat/worker");
    body["from_agent"] = json!("initiator://simple-request");
    body["reply_to"] = json!("initiator://fire-and-forget");
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().expect("id").to_string();
    let got = intent(&s, &id);
    assert_eq!(
        got["from_agent"], "agent://admin",
        "the admin key's own address"
    );
    assert_eq!(got["reply_to"], "initiator://fire-and-forget");
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "COMPLETED", "result": {"done": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["completion_delivery"]["reply_to"],
        "initiator://fire-and-forget"
    );

    // An agent key sends as its own agent, whatever it says.
    let key = key_for(&s, "sender", "agent://compat/sender");
    let mut body = intent_body("agent://compat/worker");
    body["from_agent"] = json!("initiator://someone");
    let r = call(&s, &key, "POST", "/v1/intents", Some(body));
    assert_eq!(r.status, 200, "{}", r.text);
    let got = intent(&s, r.json["intent_id"].as_str().expect("id"));
    assert_eq!(got["from_agent"], "agent://compat/sender");

    // What is still refused names the field.
    for (field, value) in [
        ("reply_to", json!("initiator://")),
        ("reply_to", json!("Initiator://x")),
        ("reply_to", json!("a b")),
        ("from_agent", json!(["agent://x"])),
    ] {
        let mut body = intent_body("agent://compat/worker");
        body[field] = value.clone();
        let r = s.post("/v1/intents", &body);
        assert_eq!((r.status, r.field()), (422, field), "{value}: {}", r.text);
    }
}

#[test]
fn v1_health_answers_like_health_without_a_key() {
    let s = Server::start();
    let plain = send(s.req_anon("GET", "/health"), None);
    let v1 = send(s.req_anon("GET", "/v1/health"), None);
    assert_eq!((plain.status, v1.status), (200, 200), "{}", v1.text);
    assert_eq!(plain.json, v1.json);
    assert_eq!(v1.json["ok"], true);
    assert_eq!(v1.json["status"], "ok");
}

/// Regression: `/v1/agents/agent://a/b` (the address typed as written) was 404, and AXME's
/// example agents listen on a bare name their initiators may spell `agent://name`.
#[test]
fn r_addresses_typed_in_paths_and_bare_names_name_the_same_agent() {
    let s = Server::start();
    let r = s.post(
        "/v1/agents",
        &json!({"address": "checker", "delivery_mode": "poll", "display_name": "Checker"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["agent"]["address"], "agent://checker");
    for path in [
        "/v1/agents/checker",
        "/v1/agents/agent://checker",
        "/v1/agents/agent%3A%2F%2Fchecker",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert_eq!(r.json["agent"]["address"], "agent://checker", "{path}");
    }
    let bare = s.create_intent("checker");
    let full = s.create_intent("agent://checker");
    assert_eq!(intent(&s, &bare)["to_agent"], "agent://checker");
    for path in [
        "/v1/agents/checker/intents",
        "/v1/agents/agent://checker/intents",
    ] {
        let r = s.get(&format!("{path}?status=SUBMITTED,DELIVERED"));
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let ids: Vec<&str> = r.json["intents"]
            .as_array()
            .expect("intents")
            .iter()
            .map(|i| i["intent_id"].as_str().expect("id"))
            .collect();
        assert_eq!(ids, [bare.as_str(), full.as_str()], "{path}");
    }
    let listed = s.get("/v1/intents?to_agent=checker");
    assert_eq!(listed.json["intents"].as_array().map(Vec::len), Some(2));
    let r = send(s.req("DELETE", "/v1/agents/agent://checker"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_error(&s.get("/v1/agents/checker"), 404, "agent_not_found");
    let r = s.get("/v1/agents/http://x/intents");
    assert_error(&r, 422, "invalid_agent_address");
}

fn bulk_cancel(s: &Server, key: &str, body: Value) -> Resp {
    call(s, key, "POST", "/v1/intents/bulk-cancel", Some(body))
}

/// `axme intents cleanup` as AXME's CLI sends it.
#[test]
fn bulk_cancel_previews_then_cancels_the_inactive_intents_a_key_may_cancel() {
    let s = Server::start();
    let key = key_for(&s, "owner", "agent://compat/owner");
    let mine = s.create_intent("agent://compat/owner");
    let waiting = s.create_intent("agent://compat/owner");
    let r = s.post(
        &format!("/v1/intents/{waiting}/progress"),
        &json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_TOOL"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let theirs = s.create_intent("agent://compat/stranger");
    let done = s.create_intent("agent://compat/owner");
    let r = s.post(
        &format!("/v1/intents/{done}/resolve"),
        &json!({"status": "COMPLETED", "result": {}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let cli = |dry_run: bool, statuses: Value| {
        json!({"older_than_hours": 0, "dry_run": dry_run, "reason": "zombie cleanup via CLI",
               "limit": 500, "status_filter": statuses})
    };

    // Nothing is older than a day yet.
    let r = bulk_cancel(&s, ADMIN_KEY, json!({"older_than_hours": 24}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.json["would_cancel"], &r.json["dry_run"]),
        (&json!(0), &json!(true))
    );

    // A dry run names them and changes nothing; the agent key sees only its own.
    let r = bulk_cancel(&s, &key, cli(true, json!(["SUBMITTED", "WAITING"])));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["would_cancel"], 2);
    assert_eq!(r.json["intent_ids"], json!([mine, waiting]));
    assert_eq!(intent(&s, &mine)["status"], "SUBMITTED");
    let r = bulk_cancel(&s, &key, cli(true, json!(["WAITING"])));
    assert_eq!(r.json["intent_ids"], json!([waiting]));

    let r = bulk_cancel(&s, &key, cli(false, json!([])));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.json["canceled"], &r.json["dry_run"]),
        (&json!(2), &json!(false))
    );
    for id in [&mine, &waiting] {
        let got = intent(&s, id);
        assert_eq!(got["status"], "CANCELED");
        let events = s.get(&format!("/v1/intents/{id}/events")).json["events"].clone();
        let last = events.as_array().and_then(|e| e.last()).expect("an event");
        assert_eq!(last["event_type"], "intent.canceled");
        assert_eq!(last["details"]["reason"], "zombie cleanup via CLI");
    }
    assert_eq!(intent(&s, &theirs)["status"], "SUBMITTED");
    assert_eq!(intent(&s, &done)["status"], "COMPLETED");

    // The admin key reaches everyone's.
    let r = bulk_cancel(&s, ADMIN_KEY, cli(false, json!(["SUBMITTED"])));
    assert_eq!(r.json["intent_ids"], json!([theirs]));
    assert_eq!(intent(&s, &theirs)["status"], "CANCELED");

    for (body, field) in [
        (json!({"status_filter": ["COMPLETED"]}), "status_filter[0]"),
        (json!({"older_than_hours": -1}), "older_than_hours"),
        (json!({"limit": 5000}), "limit"),
        (json!({"dry": true}), "dry"),
    ] {
        let r = bulk_cancel(&s, ADMIN_KEY, body.clone());
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    // Not an intent id.
    let r = s.get("/v1/intents/bulk-cancel");
    assert_eq!((r.status, r.field()), (422, "intent_id"), "{}", r.text);
}
