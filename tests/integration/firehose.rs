//! The dashboards' binding: the firehose of every event of every intent (`/v1/events/stream`), by
//! global event id, in commit order, across pages of the store, live, and filtered by intent,
//! handler address or correlation id.

use crate::common;
use crate::sse_client;

use common::*;
use serde_json::json;
use sse_client::{ids_and_types, open, resolve, settle, Block};

#[test]
fn firehose_streams_every_event_of_every_intent_in_order_and_filters() {
    let s = Server::start();
    let a = s.create_intent("agent://team/a");
    let b = s.create_intent("agent://team/b");
    resolve(&s.base, &a, "COMPLETED");
    // Enough events for more than one page of the store (200).
    for _ in 0..110 {
        s.create_intent("agent://team/bulk");
    }
    let mut all = open(&s, "/v1/events/stream?wait_seconds=1", &[]);
    all.expect_retry();
    let blocks = all.rest();
    let (events, tail) = blocks.split_at(blocks.len() - 1);
    assert_eq!(tail[0].event(), "stream.timeout");
    let ids: Vec<i64> = events.iter().map(Block::seq).collect();
    assert_eq!(
        ids,
        (1..=(3 + 2 + 220)).collect::<Vec<i64>>(),
        "every event, by global id"
    );
    for e in events {
        let data = e.json();
        assert_eq!(data["event_id"], e.seq());
        assert_eq!(data["event_type"], e.event());
    }
    let of = |id: &str| -> Vec<(i64, String)> {
        events
            .iter()
            .map(Block::json)
            .filter(|d| d["intent_id"] == id)
            .map(|d| {
                (
                    d["seq"].as_i64().expect("seq"),
                    d["event_type"].as_str().expect("t").to_string(),
                )
            })
            .collect()
    };
    let a_flow = [
        (1, "intent.created"),
        (2, "intent.submitted"),
        (3, "intent.completed"),
    ];
    let a_flow: Vec<(i64, String)> = a_flow.iter().map(|(n, t)| (*n, t.to_string())).collect();
    assert_eq!(of(&a), a_flow);

    let filtered = |query: &str| -> Vec<(String, i64)> {
        let mut sse = open(
            &s,
            &format!("/v1/events/stream?wait_seconds=1&{query}"),
            &[],
        );
        sse.expect_retry();
        let blocks = sse.rest();
        assert_eq!(
            blocks.last().map(Block::event),
            Some("stream.timeout"),
            "{query}"
        );
        blocks[..blocks.len() - 1]
            .iter()
            .map(|b| {
                (
                    b.json()["intent_id"].as_str().expect("id").to_string(),
                    b.seq(),
                )
            })
            .collect()
    };
    let a_ids: Vec<(String, i64)> = events
        .iter()
        .filter(|e| e.json()["intent_id"] == a.as_str())
        .map(|e| (a.clone(), e.seq()))
        .collect();
    assert_eq!(filtered(&format!("intent_id={a}")), a_ids);
    let correlation = s.get(&format!("/v1/intents/{a}")).json["intent"]["correlation_id"].clone();
    let correlation = correlation.as_str().expect("correlation_id");
    assert_eq!(filtered(&format!("correlation_id={correlation}")), a_ids);
    let to_b = filtered("to_agent=agent%3A%2F%2Fteam%2Fb");
    assert_eq!(
        to_b.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(),
        [b.as_str(); 2]
    );
    assert_eq!(
        filtered("to_agent=team/b"),
        to_b,
        "a bare address is read as agent://"
    );
    let after = filtered("since=220");
    assert_eq!(
        after.iter().map(|(_, n)| *n).collect::<Vec<_>>(),
        (221..=225).collect::<Vec<_>>()
    );

    // Live: a commit after the subscriber connected.
    let mut live = open(&s, "/v1/events/stream?since=225", &[]);
    live.expect_retry();
    settle();
    let c = s.create_intent("agent://team/c");
    let got = live.events(2);
    assert_eq!(
        ids_and_types(&got),
        [
            (226, "intent.created".into()),
            (227, "intent.submitted".into())
        ]
    );
    assert_eq!(got[0].json()["intent_id"], c.as_str());

    let r = open(&s, "/v1/events/stream?intent_id=nope", &[]);
    assert_eq!(
        (r.status, &r.json()["error"]["details"]["field"]),
        (422, &json!("intent_id"))
    );
    let r = open(&s, "/v1/events/stream?correlation_id=nope", &[]);
    assert_eq!(
        (r.status, &r.json()["error"]["details"]["field"]),
        (422, &json!("correlation_id"))
    );
}
