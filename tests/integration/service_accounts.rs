//! `/v1/service-accounts`, as AXME's SDKs and CLI call them: a service account is the agent
//! `agent://<name>` with keys of its own; its keys see only that agent's work; deleting it
//! revokes them. `GET /v1/agents` shows every account as an agent with `status`,
//! `service_account_id` and `service_account_name`.

use crate::common;

use std::collections::BTreeSet;

use common::*;
use serde_json::{json, Value};

fn call(s: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    let req = s.req_anon(method, path).set("x-api-key", key);
    send(req, body.map(|b| b.to_string()))
}

fn keys_of(v: &Value) -> BTreeSet<&str> {
    v.as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect()
}

fn create(s: &Server, name: &str) -> Value {
    let r = s.post(
        "/v1/service-accounts",
        &json!({"name": name, "org_id": "6f1c9a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f",
                "workspace_id": "7a2b3c4d-5e6f-4a1b-9c8d-7e6f5a4b3c2d",
                "description": "checks things", "display_name": "Checker",
                "created_by_actor_id": "ops"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["service_account"].clone()
}

/// Mints a key of an account: `(key_id, token)`.
fn mint(s: &Server, id: &str) -> (String, String) {
    let r = s.post(&format!("/v1/service-accounts/{id}/keys"), &json!({}));
    assert_eq!(r.status, 200, "{}", r.text);
    let k = &r.json["key"];
    assert_eq!(
        keys_of(k),
        BTreeSet::from([
            "key_id",
            "service_account_id",
            "key_hint",
            "status",
            "created_at",
            "expires_at",
            "token"
        ])
    );
    assert_eq!(
        (&k["service_account_id"], &k["status"]),
        (&json!(id), &json!("active"))
    );
    let token = k["token"].as_str().expect("token").to_string();
    assert_eq!(k["key_hint"], &token[token.len() - 4..]);
    (k["key_id"].as_str().expect("key_id").to_string(), token)
}

#[test]
fn a_service_account_is_an_agent_with_keys_of_its_own() {
    let s = Server::start();
    let sa = create(&s, "checker");
    let id = sa["service_account_id"].as_str().expect("id").to_string();
    assert!(id.starts_with("sa_") && id.len() == 35, "{id}");
    assert_eq!(sa["agent_address"], "agent://checker");
    assert_eq!(
        (&sa["name"], &sa["status"], &sa["created_by_actor_id"]),
        (&json!("checker"), &json!("active"), &json!("ops"))
    );
    assert_eq!(sa["org_id"], "6f1c9a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f");
    let r = s.post("/v1/service-accounts", &json!({"name": "checker"}));
    assert_error(&r, 409, "service_account_exists");

    // Read back, alone and listed, with exactly AXME's fields.
    let got = s.get(&format!("/v1/service-accounts/{id}"));
    assert_eq!(got.status, 200, "{}", got.text);
    let listed = s.get("/v1/service-accounts?org_id=6f1c9a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f");
    assert_eq!(
        listed.json["service_accounts"][0],
        got.json["service_account"]
    );
    assert_eq!(
        keys_of(&got.json["service_account"]),
        BTreeSet::from([
            "service_account_id",
            "org_id",
            "workspace_id",
            "name",
            "description",
            "status",
            "created_by_actor_id",
            "created_at",
            "updated_at"
        ])
    );

    // It is an agent: a pull agent until it registers a binding, which keeps the account.
    let agents = s.get("/v1/agents");
    let a = agents.json["agents"]
        .as_array()
        .and_then(|all| all.iter().find(|a| a["address"] == "agent://checker"))
        .expect("the account is listed as an agent");
    assert_eq!(
        (&a["address"], &a["status"], &a["delivery_mode"]),
        (
            &json!("agent://checker"),
            &json!("active"),
            &json!("stream")
        )
    );
    assert_eq!(
        (&a["service_account_id"], &a["service_account_name"]),
        (&json!(id), &json!("checker"))
    );
    let r = s.post(
        "/v1/agents",
        &json!({"address": "checker", "delivery_mode": "poll"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["agent"]["service_account_id"], id.as_str());
    let a = s.get("/v1/agents/agent://checker").json["agent"].clone();
    assert_eq!(
        (&a["delivery_mode"], &a["service_account_name"]),
        (&json!("poll"), &json!("checker"))
    );
    // An agent registered without an account says so.
    let r = s.post(
        "/v1/agents",
        &json!({"address": "plain", "delivery_mode": "poll"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["agent"]["service_account_id"], Value::Null);
    assert_eq!(r.json["agent"]["status"], "active");
    let all = s.get("/v1/agents").json["agents"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(all >= 2, "{all}");
    let r = s.get("/v1/agents?org_id=6f1c9a4e-1d2b-4c3d-8e9f-0a1b2c3d4e5f&limit=1");
    assert_eq!(
        r.json["agents"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
    assert_eq!(s.get("/v1/agents?limit=0").field(), "limit");

    // Its key sees only its agent's work.
    let (key_id, token) = mint(&s, &id);
    let to_it = s.create_intent("agent://checker");
    let elsewhere = s.create_intent("agent://plain");
    assert_eq!(
        call(&s, &token, "GET", &format!("/v1/intents/{to_it}"), None).status,
        200
    );
    assert_error(
        &call(&s, &token, "GET", &format!("/v1/intents/{elsewhere}"), None),
        404,
        "intent_not_found",
    );
    let feed = call(&s, &token, "GET", "/v1/agents/checker/intents", None);
    assert_eq!(
        feed.json["intents"][0]["intent_id"],
        to_it.as_str(),
        "{}",
        feed.text
    );
    assert_error(
        &call(&s, &token, "GET", "/v1/agents/plain/intents", None),
        403,
        "forbidden",
    );
    let mine = call(&s, &token, "GET", "/v1/service-accounts", None);
    assert_eq!(
        mine.json["service_accounts"].as_array().map(Vec::len),
        Some(1)
    );
    let listed = call(&s, &token, "GET", "/v1/agents", None);
    assert_eq!(
        listed.json["agents"].as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text
    );
    // It manages nothing.
    assert_error(
        &call(
            &s,
            &token,
            "POST",
            "/v1/service-accounts",
            Some(json!({"name": "mine"})),
        ),
        403,
        "forbidden",
    );
    assert_error(
        &call(
            &s,
            &token,
            "POST",
            &format!("/v1/service-accounts/{id}/keys"),
            Some(json!({})),
        ),
        403,
        "forbidden",
    );
    let r = call(
        &s,
        &token,
        "POST",
        "/v1/intents",
        Some(intent_body("agent://plain")),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let sent = r.json["intent_id"].as_str().expect("id");
    let got = call(&s, &token, "GET", &format!("/v1/intents/{sent}"), None);
    assert_eq!(got.json["intent"]["from_agent"], "agent://checker");

    // Revoked: refused from the next request on; revoking again changes nothing.
    let path = format!("/v1/service-accounts/{id}/keys/{key_id}/revoke");
    let r = send(s.req("POST", &path), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.json["key"]["key_id"], &r.json["key"]["status"]),
        (&json!(key_id), &json!("revoked"))
    );
    assert!(r.json["key"]["revoked_at"].as_str().is_some(), "{}", r.text);
    assert_error(
        &call(&s, &token, "GET", "/v1/agents", None),
        401,
        "auth_failed",
    );
    assert_eq!(send(s.req("POST", &path), None).json["key"], r.json["key"]);
}

#[test]
fn deleting_a_service_account_revokes_its_keys_and_keeps_its_intents() {
    let s = Server::start();
    let id = create(&s, "doomed")["service_account_id"]
        .as_str()
        .expect("id")
        .to_string();
    let other = create(&s, "keeper")["service_account_id"]
        .as_str()
        .expect("id")
        .to_string();
    let (_, first) = mint(&s, &id);
    let (_, second) = mint(&s, &id);
    let (other_key_id, other_token) = mint(&s, &other);
    let work = s.create_intent("agent://doomed");
    // Another account's key is not this one's to revoke.
    let r = send(
        s.req(
            "POST",
            &format!("/v1/service-accounts/{id}/keys/{other_key_id}/revoke"),
        ),
        None,
    );
    assert_error(&r, 404, "key_not_found");

    let r = send(s.req("DELETE", &format!("/v1/service-accounts/{id}")), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["agent_address"], "agent://doomed");
    assert_eq!(r.json["revoked_key_ids"].as_array().map(Vec::len), Some(2));
    for token in [&first, &second] {
        assert_error(
            &call(&s, token, "GET", "/v1/agents", None),
            401,
            "auth_failed",
        );
    }
    assert_eq!(
        call(&s, &other_token, "GET", "/v1/agents", None).status,
        200
    );
    assert_error(
        &s.get(&format!("/v1/service-accounts/{id}")),
        404,
        "service_account_not_found",
    );
    assert_error(&s.get("/v1/agents/doomed"), 404, "agent_not_found");
    assert_eq!(s.get(&format!("/v1/intents/{work}")).status, 200);
    let again = send(s.req("DELETE", &format!("/v1/service-accounts/{id}")), None);
    assert_error(&again, 404, "service_account_not_found");
}

#[test]
fn bad_service_account_requests_name_what_is_wrong() {
    let s = Server::start();
    let id = create(&s, "strict")["service_account_id"]
        .as_str()
        .expect("id")
        .to_string();
    for (body, field) in [
        (json!({}), "name"),
        (json!({"name": "a"}), "name"),
        (json!({"name": "no spaces"}), "name"),
        (json!({"name": "ok", "org_id": "acme"}), "org_id"),
        (json!({"name": "ok", "owner": "me"}), "owner"),
    ] {
        let r = s.post("/v1/service-accounts", &body);
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    let r = s.post(
        &format!("/v1/service-accounts/{id}/keys"),
        &json!({"expires_at": "2030-01-01T00:00:00Z"}),
    );
    assert_eq!((r.status, r.field()), (422, "expires_at"), "{}", r.text);
    let r = send(
        s.req("POST", &format!("/v1/service-accounts/{id}/keys"))
            .set("idempotency-key", "k1"),
        Some("{}".into()),
    );
    assert_eq!(
        (r.status, r.field()),
        (400, "Idempotency-Key"),
        "{}",
        r.text
    );
    for path in [
        "/v1/service-accounts/42",
        "/v1/service-accounts/sa_xyz/keys",
    ] {
        let r = s.get(path);
        assert!(matches!(r.status, 405 | 422), "{path}: {}", r.text);
    }
    let r = s.get("/v1/service-accounts/42");
    assert_eq!(
        (r.status, r.field()),
        (422, "service_account_id"),
        "{}",
        r.text
    );
    let missing = "sa_00000000000000000000000000000000";
    assert_error(
        &s.get(&format!("/v1/service-accounts/{missing}")),
        404,
        "service_account_not_found",
    );
    // Creating is idempotent with a key: the same answer, one account.
    let body = json!({"name": "once"});
    let first = send(
        s.req("POST", "/v1/service-accounts")
            .set("idempotency-key", "sa-once"),
        Some(body.to_string()),
    );
    let again = send(
        s.req("POST", "/v1/service-accounts")
            .set("idempotency-key", "sa-once"),
        Some(body.to_string()),
    );
    assert_eq!((first.status, again.status), (200, 200), "{}", again.text);
    assert_eq!(first.json, again.json);
}
