//! `axme invite`: prints the one-time link (on stdout, alone, for scripts), which a newcomer
//! accepts into a user and a key; `--json` prints the server's answer; a refused owner fails.

use crate::common;

use common::*;
use serde_json::{json, Value};

#[test]
fn axme_invite_prints_a_link_a_newcomer_accepts() {
    let s = Server::start();
    let (code, out, err) = s.cli(
        ADMIN_KEY,
        &[
            "invite",
            "--owner",
            "team/lead",
            "--hint",
            "Bob",
            "--ttl",
            "600",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let link = out.trim();
    assert!(link.starts_with(&s.url("/v1/invites/")), "{link}");
    let path = link.trim_start_matches(&s.base).to_string();
    let r = send(s.req_anon("GET", &path), None);
    assert_eq!(
        (r.status, &r.json["recipient_hint"]),
        (200, &json!("Bob")),
        "{}",
        r.text
    );
    let r = send(
        s.req_anon("POST", &format!("{path}/accept")),
        Some(json!({"nick": "@bob"}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);

    let (code, out, _) = s.cli(ADMIN_KEY, &["invite", "--owner", "team/lead", "--json"]);
    let v: Value = serde_json::from_str(&out).expect("json");
    assert_eq!((code, &v["status"]), (0, &json!("pending")));

    let r = s.post(
        "/v1/keys",
        &json!({"name": "w", "role": "agent", "agents": ["team/w"]}),
    );
    let key = r.json["api_key"].as_str().unwrap().to_string();
    let (code, _, err) = s.cli(&key, &["invite", "--owner", "team/lead"]);
    assert!(code == 1 && err.contains("403"), "{code} {err}");
}
