//! The agent registry (`/v1/agents`, an extension of the AXME API): upsert by address, the
//! `push` synonym of `http`, webhook secrets generated and shown once, reads by bare or full
//! address, retirement, and 422s that name the field.

use crate::common;

use common::*;
use serde_json::json;

#[test]
fn agent_registry_upserts_reads_and_retires() {
    let s = Server::start();
    let body = json!({"address": "agent://team/s", "delivery_mode": "stream"});
    let r = s.post("/v1/agents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let agent = &r.json["agent"];
    assert_eq!(
        (&r.json["ok"], &agent["address"], &agent["delivery_mode"]),
        (&json!(true), &json!("agent://team/s"), &json!("stream"))
    );
    assert!(
        agent.get("webhook_secret").is_none() && agent.get("secret_hint").is_none(),
        "{agent}"
    );
    let created_at = agent["created_at"].clone();

    let r = s.post(
        "/v1/agents",
        &json!({"address": "team/s", "delivery_mode": "poll", "display_name": "S"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (
            &r.json["agent"]["delivery_mode"],
            &r.json["agent"]["display_name"]
        ),
        (&json!("poll"), &json!("S"))
    );
    assert_eq!(
        r.json["agent"]["created_at"], created_at,
        "an upsert keeps created_at"
    );

    let hook = json!({"address": "agent://team/h", "delivery_mode": "push", "webhook_url": "http://127.0.0.1:9/hook"});
    let r = s.post("/v1/agents", &hook);
    assert_eq!(r.status, 200, "{}", r.text);
    let agent = &r.json["agent"];
    assert_eq!(agent["delivery_mode"], "http", "push is a synonym of http");
    let secret = agent["webhook_secret"]
        .as_str()
        .expect("a generated secret")
        .to_string();
    assert!(
        secret.starts_with("whsec_") && secret.len() == 6 + 44,
        "{secret}"
    );
    assert_eq!(agent["secret_hint"], &secret[secret.len() - 4..]);
    let r = s.get("/v1/agents/agent%3A%2F%2Fteam%2Fh");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        r.json["agent"].get("webhook_secret").is_none(),
        "shown once only: {}",
        r.text
    );
    assert_eq!(r.json["agent"]["secret_hint"], &secret[secret.len() - 4..]);
    let r = s.post("/v1/agents", &hook);
    assert!(
        r.json["agent"].get("webhook_secret").is_none(),
        "kept, not regenerated: {}",
        r.text
    );
    assert_eq!(r.json["agent"]["secret_hint"], &secret[secret.len() - 4..]);

    let r = s.get("/v1/agents");
    let mut listed: Vec<&str> = r.json["agents"]
        .as_array()
        .expect("agents")
        .iter()
        .map(|a| a["address"].as_str().expect("a"))
        .collect();
    listed.sort_unstable();
    // The built-in internal agents are registered by the server itself.
    assert_eq!(
        listed,
        [
            "agent://internal/approval",
            "agent://internal/delay",
            "agent://internal/notify",
            "agent://team/h",
            "agent://team/s"
        ]
    );
    assert_eq!(
        s.get("/v1/agents/team/s").json["agent"]["display_name"],
        "S"
    );

    for (bad, field) in [
        (
            json!({"address": "agent://team/x", "delivery_mode": "http"}),
            "webhook_url",
        ),
        (
            json!({"address": "agent://team/x", "delivery_mode": "carrier-pigeon"}),
            "delivery_mode",
        ),
        (
            json!({"address": "http://team/x", "delivery_mode": "poll"}),
            "address",
        ),
        (json!({"delivery_mode": "poll"}), "address"),
        (
            json!({"address": "agent://team/x", "delivery_mode": "http", "webhook_url": "ftp://x"}),
            "webhook_url",
        ),
        (
            json!({"address": "agent://team/x", "delivery_mode": "http", "webhook_url": "http://x", "webhook_secret": "short"}),
            "webhook_secret",
        ),
        (
            json!({"address": "agent://team/x", "delivery_mode": "poll", "lease_seconds": 0}),
            "lease_seconds",
        ),
    ] {
        let r = s.post("/v1/agents", &bad);
        assert_eq!((r.status, r.field()), (422, field), "{bad}: {}", r.text);
    }
    assert_eq!(s.get("/v1/agents/team/x").code(), "agent_not_found");

    let r = send(s.req("DELETE", "/v1/agents/team/s"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json, json!({"ok": true, "address": "agent://team/s"}));
    let r = s.get("/v1/agents/team/s");
    assert_eq!((r.status, r.code()), (404, "agent_not_found"));
    let r = send(s.req("DELETE", "/v1/agents/team/s"), None);
    assert_eq!((r.status, r.code()), (404, "agent_not_found"));
    // A retired address still receives intents and can pull them.
    let id = s.create_intent("agent://team/s");
    let r = s.get("/v1/agents/team/s/intents");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intents"][0]["intent_id"], id.as_str(), "{}", r.text);
    assert_eq!(
        r.json["intents"].as_array().map(Vec::len),
        Some(1),
        "{}",
        r.text
    );
}
