//! Bad requests to the intents API: every rejection has the right status, the AXME error body,
//! names exactly the field, parameter or header at fault, and changes nothing — no intent is
//! created, no event appended.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// Why `r` is not the error `status`/`code` naming `field`, if it is not.
fn mismatch(r: &Resp, status: u16, code: &str, field: &str) -> Option<String> {
    let ok = r.status == status && r.code() == code && r.field() == field && r.has_error_shape();
    (!ok).then(|| {
        format!(
            "want {status} {code} field {field}, got {} {}",
            r.status, r.text
        )
    })
}

fn intent_count(s: &Server) -> usize {
    let r = s.get("/v1/intents?limit=200");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intents"].as_array().expect("intents").len()
}

/// The intent and its whole event log, to compare before and after a refused request.
fn snapshot(s: &Server, id: &str) -> (Value, Value) {
    let i = s.get(&format!("/v1/intents/{id}"));
    let e = s.get(&format!("/v1/intents/{id}/events"));
    assert_eq!((i.status, e.status), (200, 200), "{} {}", i.text, e.text);
    (i.json, e.json)
}

fn post_raw(s: &Server, path: &str, body: &str) -> Resp {
    send(s.req("POST", path), Some(body.to_string()))
}

#[test]
fn each_bad_create_field_is_422_naming_it_and_creates_nothing() {
    let s = Server::start();
    let long = format!("agent://{}", "x".repeat(380));
    let (bad, addr) = ("schema_invalid", "invalid_agent_address");
    // [the field the error names, fields merged into a valid body (null removes one), code]
    let cases = json!([
        ["intent_type", {"intent_type": "Demo.Task.v1"}, bad],
        ["intent_type", {"intent_type": "demo.task"}, bad],
        ["intent_type", {"intent_type": null}, bad],
        ["intent_type", {"intent_type": 5}, bad],
        ["correlation_id", {"correlation_id": "not-a-uuid"}, bad],
        ["correlation_id", {"correlation_id": "0f8fad5bd9cb469fa16570867728950e"}, bad],
        ["correlation_id", {"correlation_id": null}, bad],
        ["to_agent", {"to_agent": null}, bad],
        ["to_agent", {"to_agent": 7}, bad],
        ["to_agent", {"to_agent": long}, addr],
        ["to_agent", {"to_agent": "http://x"}, addr],
        ["to_agent", {"to_agent": ""}, addr],
        ["to_agent", {"to_agent": "agent://"}, addr],
        ["to_agent", {"to_agent": "agent://a b"}, addr],
        ["from_agent", {"from_agent": 7}, bad],
        ["reply_to", {"reply_to": "initiator://a b"}, addr],
        ["reply_to", {"reply_to": long}, addr],
        ["payload", {"payload": "text"}, bad],
        ["payload", {"payload": [1]}, bad],
        ["payload", {"payload": null}, bad],
        ["deadline_at", {"deadline_at": "tomorrow"}, bad],
        ["deadline_at", {"deadline_at": "2030-01-01 00:00:00"}, bad],
        ["deadline_at", {"deadline_at": "2030-01-01T00:00:00"}, bad],
        ["remind_after_seconds", {"remind_after_seconds": 0}, bad],
        ["remind_after_seconds", {"remind_after_seconds": 1.5}, bad],
        ["remind_after_seconds", {"remind_after_seconds": "10"}, bad],
        ["remind_interval_seconds", {"remind_interval_seconds": -5}, bad],
        ["max_reminders", {"max_reminders": 0}, bad],
        ["max_delivery_attempts", {"max_delivery_attempts": 0}, bad],
        ["max_delivery_attempts", {"max_delivery_attempts": 2.5}, bad],
        ["escalate_to", {"escalate_to": "http://x"}, addr],
        ["human_task", {"human_task": "do it"}, bad],
        ["human_task.title", {"human_task": {"description": "d"}}, bad],
        ["human_task.title", {"human_task": {"title": "t".repeat(256)}}, bad],
        ["human_task.task_type", {"human_task": {"title": "t", "task_type": "bogus"}}, bad],
        ["human_task.allowed_outcomes", {"human_task": {"title": "t", "allowed_outcomes": []}}, bad],
        ["human_task.allowed_outcomes[1]",
            {"human_task": {"title": "t", "allowed_outcomes": ["ok", ""]}}, bad],
        ["human_task.required_comment", {"human_task": {"title": "t", "required_comment": 1}}, bad],
        ["human_task.color", {"human_task": {"title": "t", "color": "red"}}, bad],
        ["colour", {"colour": "red"}, bad],
    ]);
    let mut failures = Vec::new();
    for case in cases.as_array().unwrap() {
        let (field, patch, code) = (
            case[0].as_str().unwrap(),
            &case[1],
            case[2].as_str().unwrap(),
        );
        let mut body = intent_body("agent://w");
        for (k, v) in patch.as_object().unwrap() {
            match v {
                Value::Null => body.as_object_mut().unwrap().remove(k),
                _ => body.as_object_mut().unwrap().insert(k.clone(), v.clone()),
            };
        }
        let r = s.post("/v1/intents", &body);
        failures.extend(mismatch(&r, 422, code, field).map(|m| format!("{patch}: {m}")));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!(
        intent_count(&s),
        0,
        "a refused create left an intent behind"
    );
}

#[test]
fn malformed_json_and_non_object_bodies_are_400() {
    let s = Server::start();
    for body in [r#"{"intent_type": "#, "not json", "{\"a\":1}}", ""] {
        assert_error(&post_raw(&s, "/v1/intents", body), 400, "invalid_json");
    }
    for body in ["[1, 2]", "\"text\"", "42", "null"] {
        let r = post_raw(&s, "/v1/intents", body);
        assert_error(&r, 400, "invalid_json");
    }
    assert_eq!(intent_count(&s), 0);
}

#[test]
fn a_payload_at_the_limit_is_accepted_and_one_byte_more_is_413() {
    let s = Server::start();
    let limit = 128 * 1024;
    // `{"b":"…"}` is 8 bytes of JSON around the string.
    let mut body = intent_body("agent://w");
    body["payload"] = json!({"b": "x".repeat(limit - 8)});
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", &r.text[..r.text.len().min(300)]);

    body["payload"] = json!({"b": "x".repeat(limit - 7)});
    let r = s.post("/v1/intents", &body);
    assert_error(&r, 413, "payload_too_large");
    assert_eq!(r.field(), "payload");
    assert_eq!(r.json["error"]["details"]["limit_bytes"], limit);
    assert_eq!(intent_count(&s), 1);
}

/// Sends only the head of a request over a raw socket and reads the whole response: a client
/// that sends the full body before reading sees the connection closed instead (see the report).
fn head_only(s: &Server, head: &str) -> String {
    use std::io::{Read, Write};
    let addr = s.base.trim_start_matches("http://");
    let mut conn = std::net::TcpStream::connect(addr).expect("connect");
    conn.set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .expect("timeout");
    conn.write_all(head.as_bytes()).expect("write head");
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if out.is_empty() => panic!("read: {e}"),
            Err(_) => break,
        }
        if response_complete(&out) {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether `out` holds a whole response with a `content-length` body.
fn response_complete(out: &[u8]) -> bool {
    let text = String::from_utf8_lossy(out);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    head.lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .is_some_and(|n| body.len() >= n)
}

#[test]
fn a_declared_body_over_the_hard_limit_is_413_before_it_is_sent() {
    let s = Server::start();
    // The hard limit is the payload limit plus 64 KiB for the other fields.
    let declared = 128 * 1024 + 64 * 1024 + 1;
    let raw = head_only(
        &s,
        &format!(
            "POST /v1/intents HTTP/1.1\r\nhost: x\r\nx-api-key: {ADMIN_KEY}\r\n\
             content-type: application/json\r\ncontent-length: {declared}\r\n\r\n"
        ),
    );
    assert!(raw.starts_with("HTTP/1.1 413"), "{raw}");
    let body = raw.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let r = Resp {
        status: 413,
        json: serde_json::from_str(body).unwrap_or(Value::Null),
        text: body.to_string(),
        headers: vec![],
    };
    assert_error(&r, 413, "payload_too_large");
    assert_eq!(r.field(), "body");
    assert_eq!(r.json["error"]["details"]["limit_bytes"], declared - 1);
    assert_eq!(intent_count(&s), 0);
}

#[test]
fn bad_change_bodies_are_422_naming_the_field_and_change_nothing() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let waiting = s.create_intent("agent://w");
    let r = s.post(
        &format!("/v1/intents/{waiting}/progress"),
        &json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_TOOL"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    // [endpoint, body, the field the 422 names]
    let cases = json!([
        ["resolve", {"status": "COMPLETED"}, "result"],
        ["resolve", {"status": "FAILED"}, "error"],
        ["resolve", {"status": "CANCELED"}, "reason"],
        ["resolve", {"status": "DONE", "result": {}}, "status"],
        ["resolve", {"status": "TIMED_OUT"}, "status"],
        ["resolve", {"result": {}}, "status"],
        ["resolve", {"status": "COMPLETED", "result": 5}, "result"],
        ["resolve", {"status": "FAILED", "error": "x"}, "error"],
        ["resolve", {"status": "COMPLETED", "result": {}, "actor": "ab"}, "actor"],
        ["resolve", {"status": "COMPLETED", "result": {}, "x": 1}, "x"],
        ["progress", {"status": "WAITING"}, "waiting_reason"],
        ["progress", {"status": "IN_PROGRESS", "waiting_reason": "WAITING_FOR_TOOL"}, "waiting_reason"],
        ["progress", {"status": "WAITING", "waiting_reason": "LUNCH"}, "waiting_reason"],
        ["progress", {"status": "COMPLETED"}, "status"],
        ["progress", {}, "status"],
        ["progress", {"status": "IN_PROGRESS", "details": [1]}, "details"],
        ["progress", {"status": "IN_PROGRESS", "pct": 5}, "pct"],
        ["ack", {"actor": 5}, "actor"],
        ["ack", {"status": "ACKNOWLEDGED"}, "status"],
        ["resume", {"task_result": "ok"}, "task_result"],
        ["resume", {"task_result": {"outcome": 1}}, "task_result.outcome"],
        ["resume", {"approve_current_step": "yes"}, "approve_current_step"],
        // Unknown fields are a handler's result (AXME agents resume with any fields).
        ["resume", {"action": "explode"}, "action"],
        ["resume", {"result": [1]}, "result"],
    ]);
    let before = (snapshot(&s, &id), snapshot(&s, &waiting));
    let mut failures = Vec::new();
    for case in cases.as_array().unwrap() {
        let (action, body, field) = (
            case[0].as_str().unwrap(),
            &case[1],
            case[2].as_str().unwrap(),
        );
        let target = if action == "resume" { &waiting } else { &id };
        let r = s.post(&format!("/v1/intents/{target}/{action}"), body);
        let m = mismatch(&r, 422, "schema_invalid", field);
        failures.extend(m.map(|m| format!("{action} {body}: {m}")));
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    assert_eq!((snapshot(&s, &id), snapshot(&s, &waiting)), before);
}

#[test]
fn change_bodies_that_are_not_json_objects_are_400() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let before = snapshot(&s, &id);
    for action in ["resolve", "resume", "progress", "ack"] {
        let path = format!("/v1/intents/{id}/{action}");
        assert_error(&post_raw(&s, &path, "{oops"), 400, "invalid_json");
        assert_error(&post_raw(&s, &path, "[]"), 400, "invalid_json");
    }
    assert_eq!(snapshot(&s, &id), before);
}

#[test]
fn human_task_outcome_and_comment_are_enforced_on_resume() {
    let s = Server::start();
    let mut body = intent_body("agent://w");
    body["human_task"] = json!({"title": "Ship it?", "allowed_outcomes": ["approve", "reject"],
        "required_comment": true});
    let r = s.post("/v1/intents", &body);
    let id = r.json["intent_id"].as_str().expect(&r.text).to_string();
    // A human task waits for a person from its creation.
    assert_eq!(r.json["status"], "WAITING", "{}", r.text);
    let before = snapshot(&s, &id);
    let cases = [
        (json!({}), "task_result.outcome"),
        (
            json!({"task_result": {"comment": "fine"}}),
            "task_result.outcome",
        ),
        (
            json!({"task_result": {"outcome": "maybe", "comment": "hm"}}),
            "task_result.outcome",
        ),
        (
            json!({"task_result": {"outcome": "approve"}}),
            "task_result.comment",
        ),
        (
            json!({"task_result": {"outcome": "approve", "comment": "  "}}),
            "task_result.comment",
        ),
    ];
    for (body, field) in cases {
        let r = s.post(&format!("/v1/intents/{id}/resume"), &body);
        assert_error(&r, 422, "schema_invalid");
        assert_eq!(r.field(), field, "{body}: {}", r.text);
    }
    assert_eq!(snapshot(&s, &id), before);
    let r = s.post(
        &format!("/v1/intents/{id}/resume"),
        &json!({"task_result": {"outcome": "reject", "comment": "not yet"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn bad_query_parameters_are_422_naming_the_parameter() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let (bad, addr) = ("schema_invalid", "invalid_agent_address");
    let events = format!("/v1/intents/{id}/events");
    // [path and query, the parameter the error names, code]
    let cases = json!([
        ["/v1/intents?limit=0", "limit", bad],
        ["/v1/intents?limit=201", "limit", bad],
        ["/v1/intents?limit=ten", "limit", bad],
        ["/v1/intents?limit=-1", "limit", bad],
        ["/v1/intents?cursor=0", "cursor", bad],
        ["/v1/intents?cursor=abc", "cursor", bad],
        ["/v1/intents?status=DONE", "status", bad],
        ["/v1/intents?status=submitted", "status", bad],
        ["/v1/intents?to_agent=http://x", "to_agent", addr],
        ["/v1/intents?from_agent=http://x", "from_agent", addr],
        ["/v1/intents?correlation_id=nope", "correlation_id", bad],
        [format!("{events}?since=-1"), "since", bad],
        [format!("{events}?since=x"), "since", bad],
        [format!("{events}?since=1.5"), "since", bad],
        [format!("{events}?since=%2B1"), "since", bad],
        ["/v1/intents?limit=%2B5", "limit", bad],
    ]);
    let mut failures = Vec::new();
    for case in cases.as_array().unwrap() {
        let path = case[0].as_str().unwrap();
        let (field, code) = (case[1].as_str().unwrap(), case[2].as_str().unwrap());
        let m = mismatch(&s.get(path), 422, code, field);
        failures.extend(m.map(|m| format!("{path}: {m}")));
    }
    let m = mismatch(&s.get("/v1/intents?limit=%zz"), 400, "bad_request", "limit");
    failures.extend(m.map(|m| format!("bad percent-encoding: {m}")));
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn a_bad_path_id_is_422_and_an_unknown_one_404() {
    let s = Server::start();
    let missing = uuid();
    let gets = ["", "/events"];
    let posts = [
        ("resolve", json!({"status": "COMPLETED", "result": {}})),
        ("resume", json!({})),
        ("ack", json!({})),
        ("progress", json!({"status": "IN_PROGRESS"})),
    ];
    for suffix in gets {
        let r = s.get(&format!("/v1/intents/not-a-uuid{suffix}"));
        assert_error(&r, 422, "schema_invalid");
        assert_eq!(r.field(), "intent_id", "{suffix}");
        let r = s.get(&format!("/v1/intents/{missing}{suffix}"));
        assert_error(&r, 404, "intent_not_found");
        assert_eq!(r.json["error"]["details"]["id"], missing.as_str());
    }
    for (action, body) in &posts {
        let r = s.post(&format!("/v1/intents/12345/{action}"), body);
        assert_error(&r, 422, "schema_invalid");
        assert_eq!(r.field(), "intent_id", "{action}");
        let r = s.post(&format!("/v1/intents/{missing}/{action}"), body);
        assert_error(&r, 404, "intent_not_found");
    }
    assert_eq!(intent_count(&s), 0);
}

#[test]
fn owner_agent_header_and_query_that_disagree_are_400() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let before = snapshot(&s, &id);
    let r = send(
        s.req(
            "POST",
            &format!("/v1/intents/{id}/ack?owner_agent=agent://alice"),
        )
        .set("x-owner-agent", "agent://bob"),
        Some("{}".into()),
    );
    assert_error(&r, 400, "bad_request");
    assert_eq!(r.field(), "owner_agent");
    assert_eq!(snapshot(&s, &id), before);

    // The same owner spelled both ways is fine.
    let r = send(
        s.req("POST", &format!("/v1/intents/{id}/ack?owner_agent=alice"))
            .set("x-owner-agent", "agent://alice"),
        Some("{}".into()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}
