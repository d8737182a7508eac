//! What every request meets before any intent logic: authentication (`x-api-key` or
//! `Authorization: Bearer`, `/health` open), routing (404 for unknown paths, 405 with `Allow`),
//! and the `X-Trace-Id` / `x-request-id` headers, echoed or generated on every response.

use crate::common;

use common::*;
use serde_json::json;

fn intent_count(s: &Server) -> usize {
    let r = s.get("/v1/intents?limit=200");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intents"].as_array().expect("intents").len()
}

#[test]
fn health_is_open_without_a_key() {
    let s = Server::start();
    let r = send(s.req_anon("GET", "/health"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["ok"], true);
    assert_eq!(r.json["status"], "ok");
    assert_eq!(r.json["version"], env!("CARGO_PKG_VERSION"));
    assert!(r.json["schema_version"].as_i64().is_some_and(|v| v >= 1));
}

#[test]
fn bearer_authorization_is_accepted_like_x_api_key() {
    let s = Server::start();
    let bearer = format!("Bearer {ADMIN_KEY}");
    let r = send(
        s.req_anon("POST", "/v1/intents")
            .set("Authorization", &bearer),
        Some(intent_body("agent://w").to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap();
    let r = send(
        s.req_anon("GET", &format!("/v1/intents/{id}"))
            .set("Authorization", &bearer),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["from_agent"], "agent://admin");
}

#[test]
fn trace_and_request_ids_are_echoed_or_generated_on_success() {
    let s = Server::start();
    let r = send(
        s.req("GET", "/v1/capabilities")
            .set("X-Trace-Id", "trace-abc-123")
            .set("x-request-id", "req-42"),
        None,
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-trace-id"), Some("trace-abc-123"));
    assert_eq!(r.header("x-request-id"), Some("req-42"));

    let a = s.post("/v1/intents", &intent_body("agent://w"));
    let b = send(s.req_anon("GET", "/health"), None);
    for r in [&a, &b] {
        assert_eq!(r.status, 200, "{}", r.text);
        let trace = r.header("x-trace-id").unwrap_or("");
        let request = r.header("x-request-id").unwrap_or("");
        assert!(!trace.is_empty() && !request.is_empty(), "{:?}", r.headers);
    }
    assert_ne!(a.header("x-request-id"), b.header("x-request-id"));
}

#[test]
fn requests_without_a_live_key_are_401_and_change_nothing() {
    let s = Server::start();
    let body = intent_body("agent://w").to_string();
    let no_key = send(s.req_anon("POST", "/v1/intents"), Some(body.clone()));
    assert_error(&no_key, 401, "auth_failed");
    let wrong = send(
        s.req_anon("POST", "/v1/intents")
            .set("x-api-key", "axme_wrong_key_000000000000"),
        Some(body.clone()),
    );
    assert_error(&wrong, 401, "auth_failed");
    let wrong_bearer = send(
        s.req_anon("GET", "/v1/intents")
            .set("Authorization", "Bearer nope-nope-nope-nope"),
        None,
    );
    assert_error(&wrong_bearer, 401, "auth_failed");
    let basic = send(
        s.req_anon("GET", "/v1/intents")
            .set("Authorization", &format!("Basic {ADMIN_KEY}")),
        None,
    );
    assert_error(&basic, 401, "auth_failed");
    for path in [
        "/v1/capabilities",
        "/v1/intents",
        &format!("/v1/intents/{}", uuid()),
    ] {
        assert_error(&send(s.req_anon("GET", path), None), 401, "auth_failed");
    }
    assert_eq!(intent_count(&s), 0);
}

#[test]
fn unknown_routes_are_404_and_wrong_methods_405_with_allow() {
    let s = Server::start();
    assert_error(&s.get("/v1/nope"), 404, "route_not_found");
    assert_error(&s.get("/v2/intents"), 404, "route_not_found");
    let id = uuid();
    let cases = [
        ("DELETE", "/v1/intents".to_string(), "POST, GET"),
        ("PUT", format!("/v1/intents/{id}"), "GET"),
        ("GET", format!("/v1/intents/{id}/resolve"), "POST"),
        ("POST", format!("/v1/intents/{id}/events"), "GET"),
        ("POST", "/health".to_string(), "GET"),
    ];
    for (method, path, allow) in cases {
        let r = send(s.req(method, &path), None);
        assert_error(&r, 405, "method_not_allowed");
        assert_eq!(r.header("allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn trace_and_request_ids_are_echoed_or_generated_on_errors() {
    let s = Server::start();
    let traced = |req: ureq::Request| req.set("X-Trace-Id", "t-1").set("x-request-id", "r-1");
    let echoed = [
        send(traced(s.req_anon("GET", "/v1/intents")), None),
        send(traced(s.req("GET", "/v1/intents/bad")), None),
        send(traced(s.req("GET", "/nowhere")), None),
    ];
    let statuses: Vec<u16> = echoed.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 422, 404]);
    for r in &echoed {
        assert_eq!(r.header("x-trace-id"), Some("t-1"), "{}", r.text);
        assert_eq!(r.header("x-request-id"), Some("r-1"), "{}", r.text);
    }
    let generated = [
        send(s.req_anon("GET", "/v1/intents"), None),
        s.post("/v1/intents", &json!({})),
        send(s.req("PATCH", "/v1/intents"), None),
    ];
    let statuses: Vec<u16> = generated.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [401, 422, 405]);
    for r in &generated {
        let trace = r.header("x-trace-id").unwrap_or("");
        let request = r.header("x-request-id").unwrap_or("");
        assert!(!trace.is_empty() && !request.is_empty(), "{:?}", r.headers);
    }
}
