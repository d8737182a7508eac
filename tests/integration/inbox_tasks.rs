//! Human tasks in the inbox (AXME's `/v1/inbox/{id}/approve|reject|delegate`,
//! `/v1/approvals/{id}/decision`, `/v1/me/tasks`): an intent with a `human_task` waits as
//! WAITING_FOR_HUMAN from its creation, in the threads of its owner and its `agent://`
//! assignees; approve completes it with the decision as its result, reject fails it with
//! `rejected`, delegate re-addresses it. The task's `allowed_outcomes` and `required_comment`
//! hold (422), and only an intent waiting for a person can be decided (409). Every response is
//! checked against its AXP shape (see `inbox_support`).

use crate::claims_support;
use crate::common;
use crate::inbox_support;

use claims_support::{event_types, events, events_of, intent};
use common::*;
use inbox_support::*;
use serde_json::{json, Value};

#[test]
fn a_human_task_waits_from_creation_with_threads_for_its_owner_and_agent_assignees() {
    let s = Server::start();
    let (owner, bob, from) = (addr("owner"), addr("bob"), addr("asker"));
    let task = json!({
        "title": "Approve the refund",
        "description": "Order 42",
        "task_type": "approval",
        "allowed_outcomes": ["approve", "reject"],
        "assignees": [bob, "carol@example.com", owner],
    });
    let r = create_raw(
        &s,
        &owner,
        json!({"human_task": task, "from_agent": from, "deadline_at": "2099-01-01T00:00:00Z"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["status"], "WAITING", "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap().to_string();
    let i = intent(&s, &id);
    assert_eq!(i["waiting_reason"], "WAITING_FOR_HUMAN");
    let evs = events(&s, &id);
    let seen: Vec<(i64, &str, &str)> = evs
        .iter()
        .map(|e| {
            (
                e["seq"].as_i64().unwrap(),
                e["event_type"].as_str().unwrap(),
                e["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (1, "intent.created", "CREATED"),
            (2, "intent.submitted", "SUBMITTED"),
            (3, "intent.waiting", "WAITING"),
        ]
    );
    assert_eq!(evs[2]["waiting_reason"], "WAITING_FOR_HUMAN");

    for who in [&owner, &bob] {
        let t = thread(&s, Some(who), &id);
        assert_eq!(t["role"], "task");
        assert_eq!(t["status"], "pending");
        assert_eq!(t["waiting_reason"], "WAITING_FOR_HUMAN");
        assert_eq!(t["human_task"], task);
        assert_timeline_has_every_event(&s, &t);
        let mine = tasks(&s, Some(who));
        assert_eq!(task_ids(&mine), [id.as_str()]);
        let item = &mine[0];
        assert_eq!(item["intent_type"], "demo.task.v1");
        assert_eq!(item["from_agent"], from.as_str());
        assert_eq!(item["human_task"], task);
        assert_eq!(item["due_at"], i["deadline_at"]);
        assert_eq!(item["assigned_at"], t["created_at"]);
    }
    // Only `agent://` assignees get a thread; nobody else sees the task.
    assert!(list(&s, Some("agent://carol@example.com"), "").is_empty());
    assert!(tasks(&s, Some(&from)).is_empty());
    assert!(list(&s, Some(&from), "").is_empty());
    // The admin sees the task once, though two owners hold it.
    assert_eq!(task_ids(&tasks(&s, None)), [id.as_str()]);
    let all = list(&s, None, "");
    assert_eq!(all.len(), 2, "{all:?}");
}

#[test]
fn me_tasks_lists_exactly_the_waiting_tasks_of_the_scope_and_drops_decided_ones() {
    let s = Server::start();
    let (x, y) = (addr("x"), addr("y"));
    let t1 = create_task(&s, &x, json!({"title": "one"}));
    let t2 = create_task(&s, &x, json!({"title": "two"}));
    let t3 = create_task(&s, &x, json!({"title": "three"}));
    let t4 = create_task(&s, &y, json!({"title": "four"}));
    // Threads that are not tasks are not listed: an inbox agent's work, and a task no longer
    // waiting for a person (resumed by its handler).
    let worker = addr("worker");
    register_inbox_agent(&s, &worker);
    create(&s, &worker, json!({}));
    let resumed = create_task(&s, &x, json!({"title": "five"}));
    let r = s.post(
        &format!("/v1/intents/{resumed}/progress"),
        &json!({"status": "IN_PROGRESS"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(thread(&s, Some(&x), &resumed)["status"], "active");

    assert_eq!(
        task_ids(&tasks(&s, Some(&x))),
        [t1.clone(), t2.clone(), t3.clone()]
    );
    assert_eq!(task_ids(&tasks(&s, Some(&y))), [t4.as_str()]);
    assert!(tasks(&s, Some(&worker)).is_empty());
    let titles: Vec<Value> = tasks(&s, Some(&x))
        .iter()
        .map(|t| t["human_task"]["title"].clone())
        .collect();
    assert_eq!(titles, [json!("one"), json!("two"), json!("three")]);

    act(&s, Some(&x), &t1, "approve", json!({}));
    assert_eq!(task_ids(&tasks(&s, Some(&x))), [t2.clone(), t3.clone()]);
    act(&s, Some(&x), &t2, "reject", json!({"comment": "no"}));
    assert_eq!(task_ids(&tasks(&s, Some(&x))), [t3.as_str()]);
    decide(&s, Some(&y), &t4, json!({"decision": "approve"}));
    assert!(tasks(&s, Some(&y)).is_empty());
    assert_eq!(task_ids(&tasks(&s, None)), [t3]);
}

#[test]
fn approve_completes_the_task_with_the_decision_as_its_result() {
    let s = Server::start();
    let owner = addr("approver");
    let id = create_task(
        &s,
        &owner,
        json!({"title": "Ship it?", "allowed_outcomes": ["approved", "rejected"]}),
    );
    let t = act(
        &s,
        Some(&owner),
        &id,
        "approve",
        json!({"comment": "looks right"}),
    );
    let want = json!({"decision": "approve", "decided_by": owner, "approval_id": id, "comment": "looks right"});
    assert_eq!(t["status"], "done");
    assert_eq!(t["intent_status"], "COMPLETED");
    assert_eq!(t["result"], want);
    let i = intent(&s, &id);
    assert_eq!(i["status"], "COMPLETED");
    assert_eq!(i["result"], want);
    let completed = events_of(&s, &id, "intent.completed");
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["actor"], owner.as_str());
    let msgs = assert_timeline_has_every_event(&s, &t);
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert_eq!(msgs[0]["event_type"], "inbox.decision");
    assert_eq!(msgs[0]["actor"], owner.as_str());
    assert_eq!(msgs[0]["details"], want);
    assert_eq!(
        t,
        thread(&s, Some(&owner), &id),
        "the response is the thread"
    );

    // Decided once: every further decision is 409 and changes nothing.
    let before = snapshot(&s, &id);
    for (path, body) in [
        ("approve", json!({})),
        ("reject", json!({"comment": "too late"})),
    ] {
        let r = post_as(&s, Some(&owner), &format!("/v1/inbox/{id}/{path}"), &body);
        assert_error(&r, 409, "intent_terminal");
    }
    let r = post_as(
        &s,
        Some(&owner),
        &format!("/v1/approvals/{id}/decision"),
        &json!({"decision": "reject"}),
    );
    assert_error(&r, 409, "intent_terminal");
    assert_eq!(snapshot(&s, &id), before);
}

#[test]
fn reject_fails_the_task_with_code_rejected() {
    let s = Server::start();
    let owner = addr("rejecter");
    let id = create_task(&s, &owner, json!({"title": "Pay?"}));
    let t = act(
        &s,
        Some(&owner),
        &id,
        "reject",
        json!({"comment": "wrong amount"}),
    );
    assert_eq!(t["status"], "done");
    assert_eq!(t["intent_status"], "FAILED");
    let record = json!({"decision": "reject", "decided_by": owner, "approval_id": id, "comment": "wrong amount"});
    let want = json!({"code": "rejected", "message": "wrong amount", "details": record});
    assert_eq!(t["error"], want);
    assert_eq!(intent(&s, &id)["error"], want);
    assert_eq!(intent(&s, &id)["status"], "FAILED");
    let msgs = assert_timeline_has_every_event(&s, &t);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["details"], record);
    assert_eq!(
        event_types(&s, &id).last().map(String::as_str),
        Some("intent.failed")
    );

    // Without a comment the failure still says why.
    let other = create_task(&s, &owner, json!({"title": "Pay again?"}));
    let t = act(&s, Some(&owner), &other, "reject", json!({}));
    assert_eq!(t["error"]["code"], "rejected");
    assert_eq!(t["error"]["message"], "the task was rejected");
    assert!(t["error"]["details"].get("comment").is_none());
}

#[test]
fn the_decision_endpoint_approves_and_rejects_in_the_approval_shape() {
    let s = Server::start();
    let owner = addr("decider");
    let yes = create_task(&s, &owner, json!({"title": "Yes?"}));
    let a = decide(
        &s,
        Some(&owner),
        &yes,
        json!({"decision": "approve", "comment": "fine"}),
    );
    assert_eq!(a["comment"], "fine");
    let i = intent(&s, &yes);
    assert_eq!(i["status"], "COMPLETED");
    assert_eq!(i["result"]["decision"], "approve");
    assert_eq!(i["result"]["decided_by"], owner.as_str());
    let t = thread(&s, Some(&owner), &yes);
    let msgs = assert_timeline_has_every_event(&s, &t);
    assert_eq!(msgs.len(), 1);
    assert_eq!(
        msgs[0]["at"], a["decided_at"],
        "decided_at is when the decision was posted"
    );

    let no = create_task(&s, &owner, json!({"title": "No?"}));
    let a = decide(&s, None, &no, json!({"decision": "reject"}));
    assert_eq!(a["comment"], Value::Null);
    let i = intent(&s, &no);
    assert_eq!(i["status"], "FAILED");
    assert_eq!(i["error"]["code"], "rejected");
    assert_eq!(
        i["error"]["details"]["decided_by"],
        owner.as_str(),
        "the admin decides as the task's owner"
    );

    // Refusals.
    let open = create_task(&s, &owner, json!({"title": "Open"}));
    let path = format!("/v1/approvals/{open}/decision");
    let before = snapshot(&s, &open);
    for (body, field) in [
        (json!({}), "decision"),
        (json!({"decision": "maybe"}), "decision"),
        (json!({"decision": "approved"}), "decision"),
        (json!({"decision": 1}), "decision"),
        (
            json!({"decision": "approve", "comment": "x".repeat(1001)}),
            "comment",
        ),
        (json!({"decision": "approve", "why": "x"}), "why"),
    ] {
        assert_invalid_field(&post_as(&s, Some(&owner), &path, &body), field);
    }
    assert_eq!(snapshot(&s, &open), before);
    assert_error(
        &post_as(
            &s,
            Some(&owner),
            "/v1/approvals/not-a-uuid/decision",
            &json!({"decision": "approve"}),
        ),
        404,
        "not_found",
    );
    assert_error(
        &post_as(
            &s,
            Some(&owner),
            &format!("/v1/approvals/{}/decision", uuid()),
            &json!({"decision": "approve"}),
        ),
        404,
        "thread_not_found",
    );
    assert_error(
        &post_as(
            &s,
            Some(&addr("stranger")),
            &path,
            &json!({"decision": "approve"}),
        ),
        404,
        "thread_not_found",
    );
    // Not waiting (an inbox agent's work not yet taken): 409.
    let worker = addr("worker");
    register_inbox_agent(&s, &worker);
    let work = create(&s, &worker, json!({}));
    let r = post_as(
        &s,
        None,
        &format!("/v1/approvals/{work}/decision"),
        &json!({"decision": "approve"}),
    );
    assert_error(&r, 409, "invalid_transition");
    assert_eq!(intent(&s, &work)["status"], "SUBMITTED");
}

#[test]
fn deciding_an_intent_that_waits_for_something_other_than_a_person_is_409() {
    // Regression: approve completed any WAITING intent, even one its handler was still working
    // on (waiting for a tool), with a decision nobody was asked for.
    let s = Server::start();
    let worker = addr("tooling");
    register_inbox_agent(&s, &worker);
    let id = create(&s, &worker, json!({}));
    let r = s.post(
        &format!("/v1/intents/{id}/progress"),
        &json!({"status": "WAITING", "waiting_reason": "WAITING_FOR_TOOL"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let before = snapshot(&s, &id);
    for (path, body) in [
        (format!("/v1/inbox/{id}/approve"), json!({})),
        (format!("/v1/inbox/{id}/reject"), json!({})),
        (
            format!("/v1/approvals/{id}/decision"),
            json!({"decision": "approve"}),
        ),
    ] {
        let r = post_as(&s, Some(&worker), &path, &body);
        assert_error(&r, 409, "invalid_transition");
    }
    assert_eq!(snapshot(&s, &id), before);
    assert_eq!(intent(&s, &id)["waiting_reason"], "WAITING_FOR_TOOL");
}

#[test]
fn a_task_s_allowed_outcomes_and_required_comment_hold_for_every_decision() {
    let s = Server::start();
    let owner = addr("strict");
    let only_approve = create_task(
        &s,
        &owner,
        json!({"title": "A", "allowed_outcomes": ["approved"], "required_comment": true}),
    );
    let only_reject = create_task(
        &s,
        &owner,
        json!({"title": "B", "allowed_outcomes": ["reject"]}),
    );
    let neither = create_task(
        &s,
        &owner,
        json!({"title": "C", "allowed_outcomes": ["escalate"]}),
    );

    let refused = |id: &str, path: &str, body: Value, field: &str| {
        let before = snapshot(&s, id);
        let r = post_as(&s, Some(&owner), &format!("/v1/{path}"), &body);
        assert_invalid_field(&r, field);
        assert_eq!(
            snapshot(&s, id),
            before,
            "a refused decision changes nothing"
        );
    };
    let a = only_approve.as_str();
    refused(
        a,
        &format!("inbox/{a}/reject"),
        json!({"comment": "no"}),
        "decision",
    );
    refused(
        a,
        &format!("approvals/{a}/decision"),
        json!({"decision": "reject", "comment": "no"}),
        "decision",
    );
    refused(a, &format!("inbox/{a}/approve"), json!({}), "comment");
    refused(
        a,
        &format!("inbox/{a}/approve"),
        json!({"comment": "  "}),
        "comment",
    );
    refused(
        a,
        &format!("approvals/{a}/decision"),
        json!({"decision": "approve"}),
        "comment",
    );
    let b = only_reject.as_str();
    refused(b, &format!("inbox/{b}/approve"), json!({}), "decision");
    refused(
        b,
        &format!("approvals/{b}/decision"),
        json!({"decision": "approve"}),
        "decision",
    );
    let c = neither.as_str();
    refused(c, &format!("inbox/{c}/approve"), json!({}), "decision");
    refused(c, &format!("inbox/{c}/reject"), json!({}), "decision");
    // Bodies are checked too.
    refused(
        a,
        &format!("inbox/{a}/approve"),
        json!({"comment": "x".repeat(2001)}),
        "comment",
    );
    refused(
        a,
        &format!("inbox/{a}/approve"),
        json!({"comment": 5}),
        "comment",
    );
    refused(
        a,
        &format!("inbox/{a}/approve"),
        json!({"note": "x"}),
        "note",
    );

    let t = act(
        &s,
        Some(&owner),
        a,
        "approve",
        json!({"comment": "checked"}),
    );
    assert_eq!(t["intent_status"], "COMPLETED");
    let t = act(&s, Some(&owner), b, "reject", json!({}));
    assert_eq!(t["intent_status"], "FAILED");
    assert_eq!(thread(&s, Some(&owner), c)["status"], "pending");
}

#[test]
fn delegate_readdresses_the_intent_and_gives_the_delegate_the_task() {
    let s = Server::start();
    let (x, d) = (addr("delegator"), addr("delegate"));
    let id = create_task(
        &s,
        &x,
        json!({"title": "Review", "allowed_outcomes": ["approve"]}),
    );
    let t = act(
        &s,
        Some(&x),
        &id,
        "delegate",
        json!({"delegate_to": d, "note": "you know this one"}),
    );
    assert_eq!(t["owner_agent"], x.as_str());
    assert_eq!(t["to_agent"], d.as_str());
    let msgs = assert_timeline_has_every_event(&s, &t);
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0]["event_type"], "inbox.delegation");
    assert_eq!(msgs[0]["actor"], x.as_str());
    assert_eq!(
        msgs[0]["details"],
        json!({"delegate_to": d, "note": "you know this one"})
    );
    let transfer = events_of(&s, &id, "intent.transfer");
    assert_eq!(transfer.len(), 1);
    assert_eq!(
        transfer[0]["details"],
        json!({"from": x, "to": d, "delegated_by": x, "note": "you know this one"})
    );
    assert_eq!(intent(&s, &id)["to_agent"], d.as_str());
    assert_eq!(intent(&s, &id)["status"], "WAITING");

    let dt = thread(&s, Some(&d), &id);
    assert_eq!(dt["role"], "delegate");
    assert_eq!(dt["status"], "pending");
    assert_eq!(message_ids(&dt), message_ids(&t));
    assert_eq!(task_ids(&tasks(&s, Some(&d))), [id.as_str()]);
    // The task is handed off: gone from the delegator's tasks, and the delegator's key may no
    // longer decide it.
    assert!(tasks(&s, Some(&x)).is_empty());
    let xt = thread(&s, Some(&x), &id);
    assert_eq!(xt["role"], "delegated");
    assert_eq!(xt["status"], "active");
    let delegator = agent_key(&s, &x);
    for (path, body) in [
        (format!("/v1/inbox/{id}/approve"), "{}"),
        (
            format!("/v1/approvals/{id}/decision"),
            r#"{"decision": "approve"}"#,
        ),
    ] {
        let r = send(
            s.req_anon("POST", &path)
                .set("authorization", &format!("Bearer {delegator}")),
            Some(body.into()),
        );
        assert_error(&r, 403, "forbidden");
    }
    assert_eq!(intent(&s, &id)["status"], "WAITING");
    let t = act(&s, Some(&d), &id, "approve", json!({}));
    assert_eq!(t["result"]["decided_by"], d.as_str());
    assert_eq!(thread(&s, Some(&x), &id)["status"], "done");
    assert!(tasks(&s, Some(&d)).is_empty());
    assert!(tasks(&s, Some(&x)).is_empty());

    // Refusals.
    let open = create_task(&s, &x, json!({"title": "Another"}));
    let path = format!("/v1/inbox/{open}/delegate");
    let before = snapshot(&s, &open);
    for (body, field) in [
        (json!({}), "delegate_to"),
        (json!({"delegate_to": x}), "delegate_to"),
        (
            json!({"delegate_to": "https://example.com/someone"}),
            "delegate_to",
        ),
        (json!({"delegate_to": d, "note": "x".repeat(2001)}), "note"),
        (json!({"delegate_to": d, "urgent": true}), "urgent"),
    ] {
        assert_invalid_field(&post_as(&s, Some(&x), &path, &body), field);
    }
    assert_eq!(snapshot(&s, &open), before);
    let r = post_as(
        &s,
        Some(&x),
        &format!("/v1/inbox/{id}/delegate"),
        &json!({"delegate_to": addr("late")}),
    );
    assert_error(&r, 409, "intent_terminal");
}

/// An admin key under the delegator's scope got 403 like the delegator's own key (AXME's
/// conformance `inbox_decision` approves the thread its `inbox_delegate` just handed off).
#[test]
fn r_an_admin_under_the_delegators_scope_decides_a_delegated_task() {
    let s = Server::start();
    let (x, d) = (addr("delegator"), addr("delegate"));
    let id = create_task(&s, &x, json!({"title": "Review"}));
    act(&s, Some(&x), &id, "delegate", json!({"delegate_to": d}));
    let t = act(&s, Some(&x), &id, "approve", json!({"comment": "done"}));
    assert_eq!(t["owner_agent"], x.as_str());
    assert_eq!(t["intent_status"], "COMPLETED");
    assert_eq!(t["result"]["decided_by"], x.as_str());
    assert_eq!(intent(&s, &id)["status"], "COMPLETED");
}

/// An agent key bound to `agent`.
fn agent_key(s: &Server, agent: &str) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": "delegator", "role": "agent", "agents": [agent]}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().expect("api_key").to_string()
}

#[test]
fn delegating_an_inbox_agent_s_work_moves_it_to_the_other_agent_s_queue() {
    let s = Server::start();
    let (a, b) = (addr("busy"), addr("free"));
    register_inbox_agent(&s, &a);
    register_inbox_agent(&s, &b);
    let id = create(&s, &a, json!({}));
    act(&s, Some(&a), &id, "delegate", json!({"delegate_to": b}));
    let bt = thread(&s, Some(&b), &id);
    assert_eq!(
        (bt["role"].as_str(), bt["status"].as_str()),
        (Some("handler"), Some("pending"))
    );
    assert!(
        claims_support::claim(&s, &a, json!({})).is_empty(),
        "no longer a's"
    );
    claim_and_complete(&s, &b, &id, json!({"by": "b"}));
    assert_eq!(thread(&s, Some(&a), &id)["status"], "done");
    assert_eq!(thread(&s, Some(&b), &id)["result"], json!({"by": "b"}));
}
