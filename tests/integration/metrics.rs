//! `GET /metrics`: who may read it, and that its values follow what the server does — requests
//! by route and status, intents by status, events written, claim queues, open streams and
//! waiting long polls, push outcomes and the retry queue, commits. (The text format itself is
//! checked by an independent parser in `tests/interop/test_metrics.py`.)

use crate::claims_support;
use crate::common;
use crate::receiver;
use crate::sse_client;

use std::collections::HashMap;

use claims_support::{claim, create_n, inbox, register_inbox};
use common::*;
use receiver::{closed_port, eventually, register, Receiver, Reply};
use serde_json::json;

/// The samples of a scrape, by their name and labels as written (`name{a="b"}`).
struct Scrape(HashMap<String, f64>);

impl Scrape {
    fn of(s: &Server) -> Scrape {
        let r = s.get("/metrics");
        assert_eq!(r.status, 200, "{}", r.text);
        Scrape::parse(&r.text)
    }

    fn parse(text: &str) -> Scrape {
        let samples = text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .map(|l| {
                let (key, value) = l.rsplit_once(' ').expect("a sample line");
                let value = match value {
                    "+Inf" => f64::INFINITY,
                    v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
                };
                (key.to_string(), value)
            })
            .collect();
        Scrape(samples)
    }

    /// A sample's value; absent counters are zero.
    fn get(&self, key: &str) -> f64 {
        self.0.get(key).copied().unwrap_or(0.0)
    }

    fn requests(&self, route: &str, status: u16) -> f64 {
        self.get(&format!(
            "axme_http_requests_total{{route=\"{route}\",status=\"{status}\"}}"
        ))
    }

    fn intents(&self, status: &str) -> f64 {
        self.get(&format!("axme_intents{{status=\"{status}\"}}"))
    }

    fn claimable(&self, agent: &str) -> Option<f64> {
        self.0
            .get(&format!("axme_claim_queue_depth{{agent=\"{agent}\"}}"))
            .copied()
    }

    fn pushes(&self, outcome: &str) -> f64 {
        self.get(&format!(
            "axme_push_attempts_total{{outcome=\"{outcome}\"}}"
        ))
    }
}

#[test]
fn metrics_need_the_admin_key_unless_served_publicly() {
    let s = Server::start();
    let r = send(s.req_anon("GET", "/metrics"), None);
    assert_error(&r, 401, "auth_failed");
    let r = send(
        s.req_anon("GET", "/metrics")
            .set("authorization", &format!("Bearer {ADMIN_KEY}")),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(r.text.contains("# TYPE axme_intents gauge\n"), "{}", r.text);

    let open = Server::start_args(&["--metrics-public"]);
    let r = send(open.req_anon("GET", "/metrics"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.text.contains("# TYPE axme_http_requests_total counter\n"));
    // Only /metrics is opened: the rest of the API still needs the key.
    assert_error(
        &send(open.req_anon("GET", "/v1/intents"), None),
        401,
        "auth_failed",
    );
}

#[test]
fn requests_intents_events_and_claim_queues_move_with_the_work() {
    let s = Server::start();
    let worker = inbox("metrics");
    register_inbox(&s, &worker, json!({}));
    let before = Scrape::of(&s);
    assert_eq!(before.claimable(&worker), Some(0.0));
    assert_eq!(before.intents("SUBMITTED"), 0.0);

    let ids = create_n(&s, &worker, 3);
    s.create_intent("agent://metrics/elsewhere");
    let missing = s.get(&format!("/v1/intents/{}", uuid()));
    assert_eq!(missing.status, 404, "{}", missing.text);
    let nowhere = s.get("/v1/no/such/route");
    assert_eq!(nowhere.status, 404, "{}", nowhere.text);

    let after = Scrape::of(&s);
    assert_eq!(after.requests("CreateIntent", 200), 4.0);
    assert_eq!(after.requests("GetIntent", 404), 1.0);
    assert_eq!(after.requests("unmatched", 404), 1.0);
    assert_eq!(after.requests("Metrics", 200), 1.0, "the first scrape");
    assert_eq!(
        after.get("axme_http_request_duration_seconds_count{route=\"CreateIntent\"}"),
        4.0
    );
    assert_eq!(
        after.get("axme_http_request_duration_seconds_bucket{route=\"CreateIntent\",le=\"+Inf\"}"),
        4.0
    );
    assert_eq!(after.intents("SUBMITTED"), 4.0);
    assert_eq!(after.claimable(&worker), Some(3.0));
    // Each create writes intent.created and intent.submitted.
    assert_eq!(
        after.get("axme_events_written_total") - before.get("axme_events_written_total"),
        8.0
    );
    // The four creates were committed, in one transaction or several.
    let delta = |key: &str| after.get(key) - before.get(key);
    assert!(delta("axme_store_commit_duration_seconds_count") >= 1.0);
    assert!(delta("axme_store_commit_batch_size_sum") >= 4.0);
    assert_eq!(
        delta("axme_store_commit_batch_size_count"),
        delta("axme_store_commit_duration_seconds_count")
    );
    assert_eq!(after.get("axme_store_failed_batches_total"), 0.0);

    let claimed = claim(&s, &worker, json!({"max": 2}));
    assert_eq!(claimed.len(), 2);
    let after_claim = Scrape::of(&s);
    assert_eq!(after_claim.claimable(&worker), Some(1.0));
    assert_eq!(after_claim.intents("DELIVERED"), 2.0);
    assert_eq!(after_claim.intents("SUBMITTED"), 2.0);
    assert_eq!(after_claim.requests("Claim", 200), 1.0);

    let r = s.post(
        &format!("/v1/intents/{}/resolve", ids[2]),
        &json!({"status": "CANCELED", "reason": "not needed"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let end = Scrape::of(&s);
    assert_eq!(end.claimable(&worker), Some(0.0));
    assert_eq!(end.intents("CANCELED"), 1.0);
    assert_eq!(
        end.get("axme_events_written_total") - after_claim.get("axme_events_written_total"),
        1.0
    );
}

#[test]
fn open_streams_and_waiting_long_polls_are_gauged() {
    let s = Server::start();
    let id = s.create_intent("agent://metrics/streamed");
    assert_eq!(Scrape::of(&s).get("axme_streams_open"), 0.0);

    let mut stream = sse_client::open(&s, &format!("/v1/intents/{id}/events/stream"), &[]);
    assert_eq!(stream.status, 200, "{}", stream.body);
    stream.expect_retry();
    assert_eq!(Scrape::of(&s).get("axme_streams_open"), 1.0);
    // The stream ends after the terminal event; its place is given back.
    sse_client::resolve(&s.base, &id, "COMPLETED");
    let rest = stream.rest();
    assert!(
        rest.iter().any(|b| b.event() == "intent.completed"),
        "{rest:?}"
    );
    eventually("the stream gauge to drop", || {
        (Scrape::of(&s).get("axme_streams_open") == 0.0).then_some(())
    });

    let polled = s.create_intent("agent://metrics/polled");
    let (base, id2) = (s.base.clone(), polled.clone());
    let poll = std::thread::spawn(move || {
        let req = agent()
            .get(&format!(
                "{base}/v1/intents/{id2}/events?since=2&wait_seconds=30"
            ))
            .set("x-api-key", ADMIN_KEY);
        send(req, None)
    });
    eventually("the long poll to wait", || {
        (Scrape::of(&s).get("axme_long_polls_waiting") == 1.0).then_some(())
    });
    sse_client::resolve(&s.base, &polled, "COMPLETED");
    let answered = poll.join().expect("poll thread");
    assert_eq!(answered.status, 200, "{}", answered.text);
    assert_eq!(answered.json["events"][0]["event_type"], "intent.completed");
    assert_eq!(Scrape::of(&s).get("axme_long_polls_waiting"), 0.0);
}

#[test]
fn push_outcomes_and_the_retry_queue_are_counted() {
    let s = Server::start_args(&["--push-retry-schedule", "100ms"]);
    let ok = Receiver::start(Reply::ok());
    register(&s, "agent://metrics/hook-ok", &ok.url(), json!({}));
    let dead = format!("http://127.0.0.1:{}/hook", closed_port());
    register(
        &s,
        "agent://metrics/hook-dead",
        &dead,
        json!({"max_delivery_attempts": 2}),
    );

    s.create_intent("agent://metrics/hook-ok");
    ok.wait_hits(1);
    let scrape = eventually("the delivered push to be counted", || {
        let m = Scrape::of(&s);
        (m.pushes("delivered") == 1.0).then_some(m)
    });
    assert_eq!(scrape.get("axme_deliveries_pending"), 0.0);

    s.create_intent("agent://metrics/hook-dead");
    let scrape = eventually("the dead push to be dead-lettered", || {
        let m = Scrape::of(&s);
        (m.pushes("dead_lettered") == 1.0).then_some(m)
    });
    assert_eq!(scrape.pushes("retry"), 1.0, "attempt 1 of 2 is retried");
    assert_eq!(scrape.pushes("delivered"), 1.0);
    assert_eq!(scrape.get("axme_deliveries_pending"), 0.0);
    assert_eq!(
        scrape.intents("FAILED"),
        1.0,
        "the dead push fails its intent"
    );
}

#[test]
fn a_pending_push_is_in_the_retry_queue() {
    // A long first retry keeps the failed push pending for the whole test.
    let s = Server::start_args(&["--push-retry-schedule", "1h"]);
    let dead = format!("http://127.0.0.1:{}/hook", closed_port());
    register(&s, "agent://metrics/hook-later", &dead, json!({}));
    s.create_intent("agent://metrics/hook-later");
    let scrape = eventually("the first attempt to fail", || {
        let m = Scrape::of(&s);
        (m.pushes("retry") == 1.0).then_some(m)
    });
    assert_eq!(scrape.get("axme_deliveries_pending"), 1.0);
    assert_eq!(scrape.pushes("dead_lettered"), 0.0);
}
