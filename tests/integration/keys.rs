//! API key management (`/v1/keys`, an extension of the AXME API): admin-only, keys shown once
//! and never listed, roles and agent bindings recorded (and kept across a restart), revocation
//! effective from the next request, the last live admin key protected, 4xx that name the field.

use crate::common;

use common::*;
use serde_json::{json, Value};

fn with_key(s: &Server, key: &str, method: &str, path: &str, body: Option<&Value>) -> Resp {
    let req = s.req_anon(method, path).set("x-api-key", key);
    send(req, body.map(Value::to_string))
}

#[test]
fn keys_are_created_listed_without_secrets_and_work_at_once() {
    let s = Server::start();
    let r = s.post("/v1/keys", &json!({"name": "ci"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let key = &r.json["key"];
    assert_eq!(
        (&r.json["ok"], &key["role"], &key["agents"]),
        (&json!(true), &json!("admin"), &json!([]))
    );
    let api_key = r.json["api_key"].as_str().expect("api_key").to_string();
    assert!(api_key.starts_with("axme_"), "{api_key}");
    let key_id = key["key_id"].as_str().unwrap().to_string();

    // The new key authenticates right away, through both header spellings.
    assert_eq!(with_key(&s, &api_key, "GET", "/v1/keys", None).status, 200);
    let bearer = s
        .req_anon("GET", "/v1/agents")
        .set("authorization", &format!("Bearer {api_key}"));
    assert_eq!(send(bearer, None).status, 200);

    let r = s.post(
        "/v1/keys",
        &json!({"name": "billing-worker", "role": "agent", "agents": ["team/b", "agent://team/a", "team/b"]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.json["key"]["agents"],
        json!(["agent://team/a", "agent://team/b"])
    );

    let list = s.get("/v1/keys");
    assert_eq!(list.status, 200, "{}", list.text);
    let keys = list.json["keys"].as_array().unwrap();
    assert_eq!(
        keys.iter()
            .map(|k| k["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["admin", "ci", "billing-worker"]
    );
    for k in keys {
        let mut fields: Vec<&str> = k.as_object().unwrap().keys().map(String::as_str).collect();
        fields.sort();
        assert_eq!(
            fields,
            vec![
                "agents",
                "created_at",
                "key_id",
                "name",
                "revoked_at",
                "role"
            ],
            "a listed key shows no hash and no key"
        );
    }
    assert!(!list.text.contains(&api_key));
    assert_eq!(keys[1]["key_id"], json!(key_id));
}

#[test]
fn only_admin_keys_manage_keys() {
    let s = Server::start();
    let r = s.post(
        "/v1/keys",
        &json!({"name": "w", "role": "agent", "agents": ["team/w"]}),
    );
    let agent_key = r.json["api_key"].as_str().unwrap().to_string();
    let admin_id = s.get("/v1/keys").json["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();
    for (method, path, body) in [
        ("GET", "/v1/keys".to_string(), None),
        ("POST", "/v1/keys".to_string(), Some(json!({"name": "x"}))),
        (
            "POST",
            format!("/v1/keys/{admin_id}/revoke"),
            Some(json!({})),
        ),
        ("GET", "/v1/admin/backup".to_string(), None),
    ] {
        let r = with_key(&s, &agent_key, method, &path, body.as_ref());
        assert_error(&r, 403, "forbidden");
    }
    assert_eq!(
        s.get("/v1/keys").json["keys"].as_array().unwrap().len(),
        2,
        "nothing was created"
    );
    assert_error(
        &send(s.req_anon("GET", "/v1/keys"), None),
        401,
        "auth_failed",
    );
}

#[test]
fn revoking_takes_effect_on_the_next_request_and_spares_the_last_admin() {
    let s = Server::start();
    let r = s.post("/v1/keys", &json!({"name": "second"}));
    let (second, second_id) = (
        r.json["api_key"].as_str().unwrap().to_string(),
        r.json["key"]["key_id"].as_str().unwrap().to_string(),
    );
    let first_id = s.get("/v1/keys").json["keys"][0]["key_id"]
        .as_str()
        .unwrap()
        .to_string();

    // The second admin revokes the first (the key every test request uses).
    let r = with_key(
        &s,
        &second,
        "POST",
        &format!("/v1/keys/{first_id}/revoke"),
        Some(&json!({})),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.json["key"]["revoked_at"].is_string(), "{}", r.text);
    assert_error(&s.get("/v1/keys"), 401, "auth_failed");

    // Revoking again changes nothing.
    let again = with_key(
        &s,
        &second,
        "POST",
        &format!("/v1/keys/{first_id}/revoke"),
        None,
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["key"]["revoked_at"], r.json["key"]["revoked_at"]);

    // The last live admin key cannot go.
    let r = with_key(
        &s,
        &second,
        "POST",
        &format!("/v1/keys/{second_id}/revoke"),
        None,
    );
    assert_error(&r, 409, "last_admin_key");
    assert_eq!(with_key(&s, &second, "GET", "/v1/keys", None).status, 200);

    // Agent keys do not count as admins, and can be revoked.
    let r = with_key(
        &s,
        &second,
        "POST",
        "/v1/keys",
        Some(&json!({"name": "w", "role": "agent", "agents": ["team/w"]})),
    );
    let (w, w_id) = (
        r.json["api_key"].as_str().unwrap().to_string(),
        r.json["key"]["key_id"].as_str().unwrap().to_string(),
    );
    assert_eq!(with_key(&s, &w, "GET", "/v1/agents", None).status, 200);
    let r = with_key(
        &s,
        &second,
        "POST",
        &format!("/v1/keys/{w_id}/revoke"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_error(
        &with_key(&s, &w, "GET", "/v1/agents", None),
        401,
        "auth_failed",
    );

    let r = with_key(
        &s,
        &second,
        "POST",
        "/v1/keys/8d7c3f43-5d1c-4a57-9a43-7e4f1f5a1b2c/revoke",
        None,
    );
    assert_error(&r, 404, "key_not_found");
    let r = with_key(&s, &second, "POST", "/v1/keys/not-a-uuid/revoke", None);
    assert_error(&r, 422, "schema_invalid");
    assert_eq!(r.field(), "key_id");
}

#[test]
fn bad_key_requests_name_the_field_and_create_nothing() {
    let s = Server::start();
    let cases = [
        (json!({}), "name"),
        (json!({"name": "has space"}), "name"),
        (json!({"name": "x", "role": "owner"}), "role"),
        (json!({"name": "x", "role": "agent"}), "agents"),
        (
            json!({"name": "x", "role": "agent", "agents": []}),
            "agents",
        ),
        (json!({"name": "x", "agents": ["team/a"]}), "agents"),
        (
            json!({"name": "x", "role": "agent", "agents": ["team/a", "http://x"]}),
            "agents[1]",
        ),
        (
            json!({"name": "x", "role": "agent", "agents": "team/a"}),
            "agents",
        ),
        (json!({"name": "x", "key_hash": "00"}), "key_hash"),
    ];
    for (body, field) in cases {
        let r = s.post("/v1/keys", &body);
        assert_eq!(r.status, 422, "{body}: {}", r.text);
        assert!(r.has_error_shape(), "{}", r.text);
        assert_eq!(r.field(), field, "{body}: {}", r.text);
    }
    let r = send(
        s.req("POST", "/v1/keys").set("idempotency-key", "k1"),
        Some(json!({"name": "x"}).to_string()),
    );
    assert_error(&r, 400, "bad_request");
    assert_eq!(r.field(), "Idempotency-Key");
    let r = send(s.req("POST", "/v1/keys"), Some("{".into()));
    assert_error(&r, 400, "invalid_json");
    assert_eq!(s.get("/v1/keys").json["keys"].as_array().unwrap().len(), 1);
}

#[test]
fn keys_roles_and_revocations_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("axme.db");
    let (agent_key, revoked_key) = {
        let s = Server::start_on(&data, &[]);
        let r = s.post(
            "/v1/keys",
            &json!({"name": "w", "role": "agent", "agents": ["team/w", "team/v"]}),
        );
        let agent_key = r.json["api_key"].as_str().unwrap().to_string();
        let r = s.post("/v1/keys", &json!({"name": "gone"}));
        let revoked = r.json["api_key"].as_str().unwrap().to_string();
        let id = r.json["key"]["key_id"].as_str().unwrap();
        assert_eq!(
            s.post(&format!("/v1/keys/{id}/revoke"), &json!({})).status,
            200
        );
        (agent_key, revoked)
    };
    let s = Server::start_on(&data, &[]);
    assert_eq!(
        with_key(&s, &agent_key, "GET", "/v1/agents", None).status,
        200
    );
    assert_error(
        &with_key(&s, &agent_key, "GET", "/v1/keys", None),
        403,
        "forbidden",
    );
    assert_error(
        &with_key(&s, &revoked_key, "GET", "/v1/agents", None),
        401,
        "auth_failed",
    );
    let keys = s.get("/v1/keys").json["keys"].clone();
    assert_eq!(
        keys[1]["agents"],
        json!(["agent://team/v", "agent://team/w"])
    );
    assert_eq!(keys[1]["role"], "agent");
    assert!(keys[2]["revoked_at"].is_string(), "{keys}");
}

/// Regression: a restart with `--api-key` set to a key that had been revoked stored it again and
/// failed on the UNIQUE hash, so the server did not start; it now starts and the key stays revoked.
#[test]
fn restart_with_a_revoked_api_key_flag_starts_and_keeps_it_revoked() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("axme.db");
    let second = {
        let s = Server::start_on(&data, &[]);
        let r = s.post("/v1/keys", &json!({"name": "second"}));
        let second = r.json["api_key"].as_str().unwrap().to_string();
        let first_id = s.get("/v1/keys").json["keys"][0]["key_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = with_key(
            &s,
            &second,
            "POST",
            &format!("/v1/keys/{first_id}/revoke"),
            None,
        );
        assert_eq!(r.status, 200, "{}", r.text);
        second
    };
    // Started again with the same --api-key (the helper always passes ADMIN_KEY).
    let s = Server::start_on(&data, &[]);
    assert_error(&s.get("/v1/keys"), 401, "auth_failed");
    let r = with_key(&s, &second, "GET", "/v1/keys", None);
    assert_eq!(r.json["keys"].as_array().unwrap().len(), 2, "{}", r.text);
}
