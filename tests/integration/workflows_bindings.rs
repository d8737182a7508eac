//! Workflow steps through the other bindings and the runtime: an http agent's step pushed to
//! its webhook (the answer completes it), a step's reminders mirrored onto the workflow's
//! intent, and a notification step posted by the built-in notify agent (the internal binding).

use crate::common;
use crate::receiver;
use crate::workflow_support;

use common::*;
use receiver::{Receiver, Reply};
use serde_json::json;
use workflow_support::*;

#[test]
fn an_http_agents_step_is_pushed_and_the_webhooks_answer_completes_it() {
    let s = Server::start();
    let rx = Receiver::start(Reply::json(
        200,
        json!({"status": "COMPLETED", "result": {"scored": 12}}),
    ));
    let hook = name("hook");
    let bundle = json!({
        "scenario_id": "test.push_step.v1",
        "agents": [{"role": "risk", "address": hook, "delivery_mode": "http",
                    "callback_url": rx.url(), "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "score", "tool_id": "tool.agent.task.v1",
                                "assigned_to": "risk"}]},
        "intent": {"type": "intent.demo.push.v1", "payload": {"change": 3}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let hit = rx.wait_hits(1).remove(0);
    let pushed = hit.json();
    assert_eq!(
        pushed["data"]["intent"]["payload"]["parent_payload"]["change"], 3,
        "{pushed}"
    );
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(done["result"]["steps"]["score"]["scored"], 12, "{done}");
}

#[test]
fn a_steps_reminders_show_on_the_workflows_intent() {
    let s = Server::start();
    let bundle = json!({
        "scenario_id": "test.reminders.v1",
        "humans": [{"role": "reviewer"}],
        "workflow": {"steps": [{"step_id": "review", "tool_id": "tool.approval.human_signoff",
            "assigned_to": "reviewer", "remind_after_seconds": 1, "remind_interval_seconds": 1,
            "max_reminders": 2, "human_task": {"title": "Review?"}}]},
        "intent": {"type": "intent.demo.remind.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = step_intent(&s, &id, "review");
    let reminders = poll_until(std::time::Duration::from_secs(20), "two reminders", || {
        let r: Vec<serde_json::Value> = events(&s, &id)
            .into_iter()
            .filter(|e| e["event_type"] == "intent.reminder")
            .collect();
        (r.len() == 2).then_some(r)
    });
    assert_eq!(
        reminders[0]["details"]["step_id"], "review",
        "{reminders:?}"
    );
    assert_eq!(reminders[0]["details"]["step_intent_id"], step);
    assert_eq!(intent(&s, &id)["status"], "WAITING");
    let evs = events(&s, &id);
    assert_gap_free(&evs);
    let r = resume(&s, &step, json!({"task_result": {"outcome": "approved"}}));
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "COMPLETED", None);
}

#[test]
fn a_notification_step_posts_through_the_built_in_notify_agent() {
    let s = Server::start();
    let rx = Receiver::start(Reply::ok());
    let bundle = json!({
        "scenario_id": "test.notify.v1",
        "workflow": {"steps": [{"step_id": "tell", "tool_id": "tool.internal.notification",
            "input": {"url": rx.url(), "body": {"hello": "ops"}}}]},
        "intent": {"type": "intent.demo.notify.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let hit = rx.wait_hits(1).remove(0);
    assert_eq!(hit.json(), json!({"hello": "ops"}));
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(done["result"]["steps"]["tell"]["delivered"], true, "{done}");
}
