//! Request logs: one line per request at info level with method, route, path, status,
//! latency_ms, trace id and request id — as JSON objects with `--log-format json` — and never
//! the API key or the request body.

use crate::common;

use common::*;
use serde_json::{json, Value};

/// A payload value that must never reach the log.
const BODY_MARKER: &str = "body-marker-7f3a9c";
/// A wrong key a client sends: it must not be logged either.
const WRONG_KEY: &str = "wrong_key_never_logged_0123456789";

/// Makes a known set of requests and returns the log of the server after a graceful stop.
fn requests_then_log(extra: &[&str]) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("stderr.log");
    let mut s = Server::start_logging_to(&log, extra);
    let mut body = intent_body("agent://logs/worker");
    body["payload"] = json!({"secret": BODY_MARKER});
    let r = send(
        s.req("POST", "/v1/intents")
            .set("x-request-id", "req-logged-1")
            .set("x-trace-id", "trace-logged-1"),
        Some(body.to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().expect("intent_id").to_string();
    let r = send(
        s.req_anon("GET", &format!("/v1/intents/{id}"))
            .set("authorization", &format!("Bearer {ADMIN_KEY}")),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let r = send(
        s.req_anon("GET", "/v1/intents").set("x-api-key", WRONG_KEY),
        None,
    );
    assert_error(&r, 401, "auth_failed");
    let r = s.get("/v1/no/such/route");
    assert_error(&r, 404, "route_not_found");
    assert_eq!(s.terminate(), Some(0));
    std::fs::read_to_string(&log).expect("read the log")
}

#[test]
fn json_request_logs_carry_the_request_fields_and_never_the_key_or_body() {
    let log = requests_then_log(&["--log-format", "json"]);
    let lines: Vec<Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let requests: Vec<&Value> = lines.iter().filter(|l| l["message"] == "request").collect();
    assert_eq!(requests.len(), 4, "one line per request:\n{log}");
    for r in &requests {
        assert_eq!(r["level"], "INFO", "{r}");
        for field in ["method", "route", "path", "trace_id", "request_id"] {
            assert!(
                r[field].as_str().is_some_and(|v| !v.is_empty()),
                "{field} in {r}"
            );
        }
        assert!(r["status"].is_u64(), "{r}");
        assert!(r["latency_ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{r}");
        assert!(
            r.get("query").is_none() && r.get("headers").is_none(),
            "{r}"
        );
    }
    let summary: Vec<(&str, &str, &str, u64)> = requests
        .iter()
        .map(|r| {
            (
                r["method"].as_str().unwrap_or(""),
                r["route"].as_str().unwrap_or(""),
                r["path"].as_str().unwrap_or(""),
                r["status"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(summary[0], ("POST", "CreateIntent", "/v1/intents", 200));
    assert_eq!(summary[1].0, "GET");
    assert_eq!((summary[1].1, summary[1].3), ("GetIntent", 200));
    assert!(summary[1].2.starts_with("/v1/intents/"), "{summary:?}");
    assert_eq!(summary[2], ("GET", "ListIntents", "/v1/intents", 401));
    assert_eq!(summary[3], ("GET", "unmatched", "/v1/no/such/route", 404));
    // The ids a client sent are the ones logged (and echoed).
    assert_eq!(requests[0]["request_id"], "req-logged-1");
    assert_eq!(requests[0]["trace_id"], "trace-logged-1");

    for secret in [ADMIN_KEY, WRONG_KEY, BODY_MARKER] {
        assert!(!log.contains(secret), "{secret} appears in the log:\n{log}");
    }
}

#[test]
fn text_request_logs_are_one_line_each_with_the_same_fields() {
    let log = requests_then_log(&[]);
    let requests: Vec<&str> = log.lines().filter(|l| l.contains(" request ")).collect();
    assert_eq!(requests.len(), 4, "{log}");
    let first = requests[0];
    for part in [
        "INFO",
        "method=\"POST\"",
        "route=\"CreateIntent\"",
        "path=\"/v1/intents\"",
        "status=200",
        "latency_ms=",
        "trace_id=\"trace-logged-1\"",
        "request_id=\"req-logged-1\"",
    ] {
        assert!(first.contains(part), "{part} missing in {first}");
    }
    assert!(serde_json::from_str::<Value>(first).is_err(), "{first}");
    for secret in [ADMIN_KEY, WRONG_KEY, BODY_MARKER] {
        assert!(!log.contains(secret), "{secret} appears in the log:\n{log}");
    }
}
