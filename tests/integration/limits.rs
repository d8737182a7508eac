//! Limits: request rate and open streams per agent key, request-target length, request-head size,
//! JSON nesting, body size per route, and the slow-header (slowloris) timeout. Every refusal is a
//! precise 4xx in the AXME error shape and changes nothing.

use crate::common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use serde_json::{json, Value};

fn agent_key(s: &Server, agent: &str) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": "limited", "role": "agent", "agents": [agent]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().unwrap().to_string()
}

fn call(s: &Server, key: &str, method: &str, path: &str, body: Option<Value>) -> Resp {
    send(
        s.req_anon(method, path).set("x-api-key", key),
        body.map(|b| b.to_string()),
    )
}

fn count_intents(s: &Server) -> usize {
    s.get("/v1/intents?limit=200").json["intents"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn an_agent_key_is_rate_limited_with_headers_and_429_and_the_admin_is_not() {
    let s = Server::start_args(&["--rate-limit", "5"]);
    let key = agent_key(&s, "agent://lim/a");
    // A burst of twice the rate passes, with the quota in the headers.
    let mut last = None;
    for _ in 0..10 {
        let r = call(&s, &key, "GET", "/v1/agents", None);
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert!(r.header("x-ratelimit-remaining").is_some());
        assert!(r.header("x-ratelimit-reset").is_some());
        last = Some(r);
    }
    assert_eq!(last.unwrap().header("x-ratelimit-remaining"), Some("0"));
    // The next one is refused, says when to retry, and creates nothing.
    let before = count_intents(&s);
    let mut body = intent_body("agent://lim/b");
    body.as_object_mut().unwrap().remove("from_agent");
    let r = call(&s, &key, "POST", "/v1/intents", Some(body));
    assert_error(&r, 429, "rate_limited");
    let wait: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .unwrap();
    assert!((1..=2).contains(&wait), "{wait}");
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(count_intents(&s), before);
    // Tokens come back with time (5 a second), well within 1.2 s; a refused call takes none.
    poll_until(Duration::from_millis(1200), "a token back", || {
        (call(&s, &key, "GET", "/v1/agents", None).status == 200).then_some(())
    });
    // The admin key is not limited and gets no quota headers.
    for _ in 0..30 {
        let r = s.get("/v1/agents");
        assert_eq!(r.status, 200);
        assert!(r.header("x-ratelimit-limit").is_none());
    }
}

#[test]
#[allow(clippy::result_large_err)] // ureq's own error type, matched on below
fn an_agent_key_holds_a_limited_number_of_streams() {
    let s = Server::start_args(&["--max-streams-per-key", "2"]);
    let agent = "agent://lim/streamer";
    let key = agent_key(&s, agent);
    let open = || {
        s.req_anon("GET", "/v1/agents/lim/streamer/intents/stream")
            .set("x-api-key", &key)
            .call()
    };
    let first = open().expect("first stream");
    let _second = open().expect("second stream");
    match open() {
        Err(ureq::Error::Status(429, r)) => {
            assert!(r.header("retry-after").is_some());
            let text = r.into_string().unwrap();
            assert!(text.contains("rate_limited"), "{text}");
        }
        other => panic!(
            "a third stream should be refused, got {:?}",
            other.map(|r| r.status())
        ),
    }
    // Closing one frees its place (the server notices the closed connection).
    drop(first);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match open() {
            Ok(_) => break,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => panic!("the place of a closed stream was never freed: {e}"),
        }
    }
    // The admin key is held only to the global cap.
    let admin: Vec<_> = (0..4)
        .map(|_| {
            s.req("GET", "/v1/events/stream")
                .call()
                .expect("admin stream")
        })
        .collect();
    assert_eq!(admin.len(), 4);
}

#[test]
fn oversized_targets_heads_bodies_and_nesting_are_refused_precisely() {
    let s = Server::start();
    let before = count_intents(&s);

    let long = format!("/v1/intents?to_agent={}", "a".repeat(9000));
    assert_error(&send(s.req("GET", &long), None), 414, "uri_too_long");

    // A request head well over 64 KiB: hyper answers 431 and closes.
    let mut tcp = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    let head = format!(
        "GET /v1/agents HTTP/1.1\r\nhost: x\r\nx-api-key: {ADMIN_KEY}\r\nx-big: {}\r\n\r\n",
        "b".repeat(300 * 1024)
    );
    let _ = tcp.write_all(head.as_bytes());
    let mut answer = String::new();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = tcp.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:.80}");

    // Nesting beyond 32 levels.
    let mut deep = json!({});
    for _ in 0..40 {
        deep = json!({"x": deep});
    }
    let mut body = intent_body("agent://lim/w");
    body["payload"] = deep;
    assert_error(&s.post("/v1/intents", &body), 400, "invalid_json");

    // A route that carries no payload takes at most 64 KiB.
    let big = json!({"address": "agent://lim/w", "delivery_mode": "poll", "display_name": "n".repeat(70 * 1024)});
    let r = s.post("/v1/agents", &big);
    assert_error(&r, 413, "payload_too_large");
    // ... while an intent may carry its full payload.
    let mut body = intent_body("agent://lim/w");
    body["payload"] = json!({"blob": "p".repeat(100 * 1024)});
    assert_eq!(s.post("/v1/intents", &body).status, 200);
    assert_eq!(count_intents(&s), before + 1);
    assert_eq!(s.get("/v1/agents/lim/w").status, 404);
}

#[test]
fn a_client_that_never_finishes_its_headers_is_cut_off() {
    let s = Server::start();
    let mut tcp = TcpStream::connect(s.base.trim_start_matches("http://")).unwrap();
    tcp.write_all(b"GET /v1/agents HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = tcp.read_to_end(&mut buf);
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(25),
        "the connection was held {waited:?} without a complete request head"
    );
    // The server still serves everyone else.
    assert_eq!(s.get("/health").status, 200);
}

/// The `axme_long_polls_waiting` gauge from /metrics.
fn waiting_long_polls(s: &Server) -> u64 {
    let text = s.get("/metrics").text;
    text.lines()
        .find_map(|l| l.strip_prefix("axme_long_polls_waiting "))
        .expect("the long-poll gauge")
        .trim()
        .parse::<f64>()
        .expect("a number") as u64
}

fn wait_for_waiting(s: &Server, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while waiting_long_polls(s) != n {
        assert!(Instant::now() < deadline, "never {n} long polls waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn an_agent_key_holds_a_limited_number_of_waiting_long_polls() {
    let s = Server::start_args(&["--max-waiters-per-key", "2"]);
    let poller = "agent://lim/poller";
    let key = agent_key(&s, poller);
    let claim_path = "/v1/agents/lim/poller/inbox/claim";
    let waiting_claim = || {
        let (url, key) = (s.url(claim_path), key.clone());
        std::thread::spawn(move || {
            let r = send(
                common::agent().post(&url).set("x-api-key", &key),
                Some(json!({"max": 1, "wait_seconds": 30}).to_string()),
            );
            assert_eq!(r.status, 200, "{}", r.text);
            let claims = r.json["claims"].as_array().unwrap().clone();
            assert_eq!(claims.len(), 1, "a woken claim takes the new intent");
            claims[0]["intent"]["intent_id"]
                .as_str()
                .expect("the claimed intent id")
                .to_string()
        })
    };
    let first = waiting_claim();
    let second = waiting_claim();
    wait_for_waiting(&s, 2);

    // A third request that would wait is refused at once, whichever pull it is.
    let r = call(
        &s,
        &key,
        "POST",
        claim_path,
        Some(json!({"max": 1, "wait_seconds": 30})),
    );
    assert_error(&r, 429, "rate_limited");
    assert!(r.header("retry-after").is_some());
    assert!(r.text.contains("long polls"), "{}", r.text);
    let r = call(
        &s,
        &key,
        "GET",
        "/v1/agents/lim/poller/intents?wait_seconds=30",
        None,
    );
    assert_error(&r, 429, "rate_limited");
    // Requests that do not wait, and the admin key's long polls, are not counted.
    assert_eq!(
        call(&s, &key, "POST", claim_path, Some(json!({"max": 1}))).status,
        200
    );
    let started = Instant::now();
    let r = s.get("/v1/agents/lim/poller/intents?wait_seconds=1");
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "the admin poll waited"
    );
    wait_for_waiting(&s, 2);

    // Work wakes one waiter; its place is free again for the key.
    let a = s.create_intent(poller);
    let b = s.create_intent(poller);
    let mut got = vec![first.join().unwrap(), second.join().unwrap()];
    wait_for_waiting(&s, 0);
    let third = waiting_claim();
    wait_for_waiting(&s, 1);
    let c = s.create_intent(poller);
    got.push(third.join().unwrap());
    got.sort();
    let mut want = vec![a, b, c];
    want.sort();
    assert_eq!(
        got, want,
        "each intent claimed once, by a waiter that was let in"
    );
}
