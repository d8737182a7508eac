//! The inbox beyond one request: thread changes pushed to the owner's webhook subscriptions
//! (`inbox.thread_created`, `inbox.thread_updated`, `inbox.reply_received`, AXME's event
//! types), and threads with their messages surviving a restart.

use crate::claims_support;
use crate::common;
use crate::inbox_support;
use crate::receiver;

use claims_support::{ack, assert_ok, claim_one, token};
use common::*;
use inbox_support::*;
use receiver::{settle, Receiver, Reply};
use serde_json::{json, Value};

const INBOX_TYPES: [&str; 3] = [
    "inbox.thread_created",
    "inbox.thread_updated",
    "inbox.reply_received",
];

/// Subscribes `owner` to the inbox event types at `rx`; returns the subscription.
fn subscribe(s: &Server, owner: &str, rx: &Receiver) -> Value {
    let r = post_as(
        s,
        Some(owner),
        "/v1/webhooks/subscriptions",
        &json!({"callback_url": rx.url(), "event_types": INBOX_TYPES}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["subscription"]["owner_agent"], owner);
    r.json["subscription"].clone()
}

/// The push bodies a receiver got, as `(type, payload)`.
fn pushed(rx: &Receiver) -> Vec<(String, Value)> {
    rx.hits()
        .iter()
        .map(|h| {
            let b = h.json();
            (
                b["type"].as_str().expect("type").to_string(),
                b["data"]["payload"].clone(),
            )
        })
        .collect()
}

fn of_type<'a>(got: &'a [(String, Value)], t: &str) -> Vec<&'a Value> {
    got.iter().filter(|(k, _)| k == t).map(|(_, p)| p).collect()
}

#[test]
fn thread_changes_reach_the_owner_s_subscription_and_no_one_else_s() {
    let s = Server::start();
    let (worker, requester, stranger) = (addr("worker"), addr("requester"), addr("stranger"));
    register_inbox_agent(&s, &worker);
    let (wrx, rrx, srx) = (
        Receiver::start(Reply::ok()),
        Receiver::start(Reply::ok()),
        Receiver::start(Reply::ok()),
    );
    let sub = subscribe(&s, &worker, &wrx);
    let secret = sub["secret"]
        .as_str()
        .expect("a generated secret")
        .to_string();
    subscribe(&s, &requester, &rrx);
    subscribe(&s, &stranger, &srx);

    let id = create(&s, &worker, json!({"reply_to": requester}));
    let created = wrx.wait_hits(1).remove(0);
    receiver::assert_signed(&created, &receiver::key_of(&secret));
    let body = created.json();
    assert_eq!(body["type"], "inbox.thread_created");
    let p = &body["data"]["payload"];
    assert_eq!(p["thread_id"], id.as_str());
    assert_eq!(p["intent_id"], id.as_str());
    assert_eq!(p["owner_agent"], worker.as_str());
    assert_eq!(p["role"], "handler");
    assert_eq!(p["status"], "pending");
    assert_eq!(p["intent_status"], "SUBMITTED");
    assert_eq!(p["to_agent"], worker.as_str());

    let c = claim_one(&s, &worker, json!({"lease_seconds": 60}));
    assert_ok(&ack(
        &s,
        token(&c),
        json!({"status": "COMPLETED", "result": {"n": 1}}),
    ));
    reply(&s, Some(&requester), &id, "got it, thanks");
    settle(&s);

    let w = pushed(&wrx);
    assert_eq!(of_type(&w, "inbox.thread_created").len(), 1, "{w:?}");
    let updates = of_type(&w, "inbox.thread_updated");
    let by_event: Vec<(&Value, &Value)> = updates
        .iter()
        .filter(|p| p.get("event_type").is_some())
        .map(|p| (&p["event_type"], &p["status"]))
        .collect();
    assert!(
        by_event.contains(&(&json!("intent.delivered"), &json!("active"))),
        "{w:?}"
    );
    assert!(
        by_event.contains(&(&json!("intent.completed"), &json!("done"))),
        "{w:?}"
    );
    assert!(
        updates.iter().any(|p| p.get("event_type").is_none()),
        "the reply updates the handler's thread too: {w:?}"
    );
    let replies = of_type(&w, "inbox.reply_received");
    assert_eq!(replies.len(), 1, "{w:?}");
    assert_eq!(replies[0]["message"], "got it, thanks");
    assert_eq!(replies[0]["author"], requester.as_str());
    assert_eq!(replies[0]["thread_id"], id.as_str());
    let t = thread(&s, Some(&worker), &id);
    assert_eq!(json!([replies[0]["message_id"]]), json!(message_ids(&t)));

    let r = pushed(&rrx);
    let opened = of_type(&r, "inbox.thread_created");
    assert_eq!(opened.len(), 1, "{r:?}");
    assert_eq!(opened[0]["role"], "reply_to");
    assert_eq!(opened[0]["status"], "done");
    assert_eq!(opened[0]["owner_agent"], requester.as_str());
    assert!(
        of_type(&r, "inbox.reply_received").is_empty(),
        "no echo of one's own reply: {r:?}"
    );
    assert!(!of_type(&r, "inbox.thread_updated").is_empty());
    assert!(srx.hits().is_empty(), "another owner hears nothing");
}

#[test]
fn a_task_s_assignees_hear_of_it_and_of_its_decision() {
    let s = Server::start();
    let (owner, helper) = (addr("owner"), addr("helper"));
    let (orx, hrx) = (Receiver::start(Reply::ok()), Receiver::start(Reply::ok()));
    subscribe(&s, &owner, &orx);
    subscribe(&s, &helper, &hrx);
    let id = create_task(&s, &owner, json!({"title": "Sign", "assignees": [helper]}));
    act(
        &s,
        Some(&helper),
        &id,
        "approve",
        json!({"comment": "signed"}),
    );
    settle(&s);
    for (rx, who) in [(&orx, &owner), (&hrx, &helper)] {
        let got = pushed(rx);
        let created = of_type(&got, "inbox.thread_created");
        assert_eq!(created.len(), 1, "{got:?}");
        assert_eq!(created[0]["role"], "task");
        assert_eq!(created[0]["status"], "pending");
        assert_eq!(created[0]["owner_agent"], who.as_str());
        let done: Vec<&Value> = of_type(&got, "inbox.thread_updated")
            .into_iter()
            .filter(|p| p["event_type"] == "intent.completed")
            .collect();
        assert_eq!(done.len(), 1, "{got:?}");
        assert_eq!(done[0]["status"], "done");
        assert_eq!(done[0]["intent_status"], "COMPLETED");
    }
}

#[test]
fn threads_messages_and_the_feed_survive_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("axme.db");
    let mut s = Server::start_on(&data, &[]);
    let (x, y, d, worker, requester) = (
        addr("x"),
        addr("y"),
        addr("d"),
        addr("worker"),
        addr("requester"),
    );
    let task = create_task(&s, &x, json!({"title": "Keep", "assignees": [y]}));
    reply(&s, Some(&y), &task, "on it");
    reply(&s, Some(&x), &task, "thanks");
    act(
        &s,
        Some(&x),
        &task,
        "delegate",
        json!({"delegate_to": d, "note": "over to you"}),
    );
    act(&s, Some(&x), &task, "read", json!({}));
    let hidden = message_ids(&thread(&s, Some(&y), &task))[0].clone();
    delete_messages(
        &s,
        Some(&y),
        &task,
        json!({"mode": "self", "message_ids": [hidden]}),
    );
    register_inbox_agent(&s, &worker);
    let work = create(&s, &worker, json!({"reply_to": requester}));
    claim_and_complete(&s, &worker, &work, json!({"v": 1}));
    reply(&s, Some(&requester), &work, "received");

    let owners = [&x, &y, &d, &worker, &requester];
    let view = |s: &Server| {
        let mut v = Vec::new();
        for o in owners {
            v.push(json!(list(s, Some(o.as_str()), "")));
            v.push(changes(s, Some(o.as_str()), None, 50));
            v.push(json!(tasks(s, Some(o.as_str()))));
        }
        v.push(json!(list(s, None, "")));
        v
    };
    let before = view(&s);
    assert_eq!(message_ids(&thread(&s, Some(&y), &task)).len(), 2);
    assert_eq!(message_ids(&thread(&s, Some(&x), &task)).len(), 3);
    let cursor = changes(&s, Some(&d), None, 50)["next_cursor"]
        .as_str()
        .expect("d's cursor")
        .to_string();
    assert_eq!(s.terminate(), Some(0), "graceful shutdown");

    let s2 = Server::start_on(&data, &[]);
    assert_eq!(
        view(&s2),
        before,
        "every thread, message, read mark and cursor is kept"
    );
    // And they go on: a decision after the restart shows in the feed after the old cursor.
    let t = act(&s2, Some(&d), &task, "approve", json!({}));
    assert_eq!(t["intent_status"], "COMPLETED");
    let page = changes(&s2, Some(&d), Some(&cursor), 50);
    let moved = page["changes"].as_array().unwrap();
    assert_eq!(moved.len(), 1, "{page}");
    assert_eq!(moved[0]["thread"]["thread_id"], task.as_str());
    assert_eq!(moved[0]["thread"]["status"], "done");
    assert!(tasks(&s2, Some(&d)).is_empty());
}
