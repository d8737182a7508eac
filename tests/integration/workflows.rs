//! The workflow engine through the HTTP API: a scenario's steps run one after another on its
//! intent, each carried to its agent or human by a step intent; the step's outcome and the
//! next step's start land in the workflow intent's one event log (step ids in the details),
//! in the transaction of the event that ended the step.

use crate::common;
use crate::workflow_support;

use common::*;
use serde_json::{json, Value};
use workflow_support::*;

#[test]
fn an_agent_step_then_a_human_signoff_run_in_order_and_complete_the_workflow() {
    let s = Server::start();
    let checker = name("checker");
    let applied = apply(&s, &agent_then_human(&checker));
    let id = applied["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    assert_eq!(applied["status"], "WAITING", "{applied}");
    assert_eq!(applied["pending_with"], format!("agent://{checker}"));
    assert!(applied["compile_id"]
        .as_str()
        .is_some_and(|c| c.len() == 36));
    assert_eq!(
        applied["agents_provisioned"],
        json!([format!("agent://{checker}")])
    );
    let i = intent(&s, &id);
    assert_eq!(i["waiting_reason"], "WAITING_FOR_AGENT");

    // The agent was provisioned with its binding and receives the step on its feed.
    let agent = s.get(&format!("/v1/agents/{checker}"));
    assert_eq!(
        agent.json["agent"]["delivery_mode"], "stream",
        "{}",
        agent.text
    );
    let step = step_intent(&s, &id, "readiness_check");
    let feed = s.get(&format!("/v1/agents/{checker}/intents?since=0"));
    let items = feed.json["intents"].as_array().expect("feed").clone();
    assert_eq!(items.len(), 1, "{}", feed.text);
    assert_eq!(items[0]["intent_id"], step);
    assert_eq!(items[0]["payload"]["parent_payload"]["service"], "api");
    assert_eq!(items[0]["payload"]["parent_intent_id"], id);

    // The agent's result, as AXME agents send it, completes the step with the body as result.
    let r = resume(
        &s,
        &step,
        json!({"action": "complete", "passed": true, "reason": "ok"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "COMPLETED");
    assert_eq!(r.json["applied"], true);
    assert_eq!(r.json["policy_generation"], 1);
    let i = wait_status(&s, &id, "WAITING", Some("WAITING_FOR_HUMAN"));
    assert_eq!(i["status"], "WAITING");

    // The human's task is in the tasks list; its task_result decides the step.
    let human = step_intent(&s, &id, "ops_approval");
    let tasks = s.get("/v1/me/tasks");
    let listed: Vec<&str> = tasks.json["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .filter_map(|t| t["intent_id"].as_str())
        .collect();
    assert!(listed.contains(&human.as_str()), "{}", tasks.text);
    let r = resume(
        &s,
        &id,
        json!({"task_result": {"outcome": "approved", "comment": "go"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(done["result"]["last_step"], "ops_approval", "{done}");
    assert_eq!(done["result"]["steps"]["readiness_check"]["passed"], true);
    assert_eq!(
        done["result"]["steps"]["ops_approval"]["outcome"],
        "approved"
    );

    let evs = events(&s, &id);
    assert_gap_free(&evs);
    let types: Vec<&str> = evs
        .iter()
        .filter_map(|e| e["event_type"].as_str())
        .collect();
    assert_eq!(
        types,
        [
            "intent.created",
            "intent.submitted",
            "intent.waiting",
            "intent.in_progress",
            "intent.waiting",
            "intent.in_progress",
            "intent.completed"
        ]
    );
    let trail = step_trail(&evs);
    let want: Vec<(String, String)> = [
        ("readiness_check", "started"),
        ("readiness_check", "completed"),
        ("ops_approval", "started"),
        ("ops_approval", "completed"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(trail[..4], want[..]);
    assert_eq!(evs[3]["details"]["result"]["passed"], true);
    assert_eq!(evs[3]["details"]["step_intent_id"], step);
}

#[test]
fn a_human_signoff_is_decided_through_the_inbox_approve_api() {
    let s = Server::start();
    let bundle = json!({
        "scenario_id": "test.inbox_approve.v1",
        "humans": [{"role": "approver"}],
        "workflow": {"steps": [{"step_id": "gate", "tool_id": "tool.approval.human_signoff",
                                "assigned_to": "approver", "human_task": {"title": "OK?"}}]},
        "intent": {"type": "intent.infra.direct_approval.v1", "payload": {"n": 1}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let task = step_intent(&s, &id, "gate");
    let r = s
        .req("POST", &format!("/v1/inbox/{task}/approve"))
        .set("x-owner-agent", "agent://human/approver");
    let r = send(r, Some(json!({"comment": "fine"}).to_string()));
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(
        done["result"]["steps"]["gate"]["decision"], "approve",
        "{done}"
    );
}

#[test]
fn a_rejected_signoff_fails_the_workflow_and_a_failure_takes_on_failure() {
    let s = Server::start();
    let worker = name("worker");
    let bundle = json!({
        "scenario_id": "test.on_failure.v1",
        "agents": [{"role": "w", "address": worker, "create_if_missing": true,
                    "delivery_mode": "poll"}],
        "humans": [{"role": "boss"}],
        "workflow": {"steps": [
            {"step_id": "work", "tool_id": "tool.agent.task.v1", "assigned_to": "w",
             "on_failure": "escalate"},
            {"step_id": "approve", "tool_id": "tool.approval.human_signoff", "assigned_to": "boss"},
            {"step_id": "escalate", "tool_id": "tool.internal.escalation", "escalate_to": "boss",
             "on_success": "approve"}
        ]},
        "intent": {"type": "intent.demo.route.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = step_intent(&s, &id, "work");
    let r = resume(
        &s,
        &step,
        json!({"action": "fail", "passed": false, "reason": "bad input"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "FAILED");
    assert_eq!(r.json["intent"]["error"]["code"], "agent_failed");
    // on_failure: the escalation step ran (and ended at once), then its on_success.
    let human = step_intent(&s, &id, "approve");
    let evs = events(&s, &id);
    let trail = step_trail(&evs);
    let steps: Vec<String> = trail.iter().map(|(a, b)| format!("{a}:{b}")).collect();
    assert_eq!(
        steps,
        [
            "work:started",
            "work:failed",
            "escalate:started",
            "escalate:completed",
            "approve:started"
        ],
        "{evs:?}"
    );
    assert!(evs.iter().any(|e| e["event_type"] == "intent.escalated"
        && e["details"]["escalated_to"] == "agent://human/boss"));
    // A rejecting outcome fails the step, and with no on_failure the workflow.
    let r = resume(&s, &human, json!({"task_result": {"outcome": "rejected"}}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "FAILED");
    let failed = wait_status(&s, &id, "FAILED", None);
    assert_eq!(failed["error"]["code"], "step_failed", "{failed}");
    assert_eq!(failed["error"]["step_id"], "approve");
    assert_eq!(failed["error"]["details"]["code"], "rejected");
}

#[test]
fn a_step_past_its_deadline_times_the_workflow_out() {
    let s = Server::start();
    let slow = name("slow");
    let bundle = json!({
        "scenario_id": "test.step_timeout.v1",
        "agents": [{"role": "v", "address": slow, "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "validate_window", "tool_id": "tool.agent.task.v1",
                                "assigned_to": "v", "step_deadline_seconds": 1}]},
        "intent": {"type": "intent.demo.timeout.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = step_intent(&s, &id, "validate_window");
    let out = wait_status(&s, &id, "TIMED_OUT", None);
    assert_eq!(out["error"]["code"], "step_timeout", "{out}");
    assert_eq!(intent(&s, &step)["status"], "TIMED_OUT");
    let w = workflow(&s, &id);
    assert_eq!(w["runs"][0]["status"], "timed_out", "{w}");
    assert_eq!(w["current_step"], Value::Null);
}

#[test]
fn a_step_whose_agent_was_retired_fails_instead_of_waiting_forever() {
    let s = Server::start();
    let (a, b) = (name("first"), name("second"));
    let bundle = json!({
        "scenario_id": "test.retired.v1",
        "agents": [{"role": "a", "address": a, "create_if_missing": true},
                   {"role": "b", "address": b, "create_if_missing": true}],
        "workflow": {"steps": [
            {"step_id": "one", "tool_id": "tool.agent.task.v1", "assigned_to": "a"},
            {"step_id": "two", "tool_id": "tool.agent.task.v1", "assigned_to": "b"}
        ]},
        "intent": {"type": "intent.demo.retired.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let r = send(s.req("DELETE", &format!("/v1/agents/{b}")), None);
    assert_eq!(r.status, 200, "{}", r.text);
    let one = step_intent(&s, &id, "one");
    let r = resume(&s, &one, json!({"action": "complete"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let failed = wait_status(&s, &id, "FAILED", None);
    assert_eq!(failed["error"]["step_id"], "two", "{failed}");
    assert_eq!(failed["error"]["details"]["code"], "agent_not_found");
    let w = workflow(&s, &id);
    assert_eq!(w["runs"][1]["step_intent_id"], Value::Null, "{w}");
}

#[test]
fn canceling_the_workflow_cancels_its_running_step() {
    let s = Server::start();
    let id = apply(&s, &agent_then_human(&name("c")))["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = step_intent(&s, &id, "readiness_check");
    let r = s.post(
        &format!("/v1/intents/{id}/resolve"),
        &json!({"status": "CANCELED", "reason": "changed my mind"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(intent(&s, &step)["status"], "CANCELED");
    assert_eq!(workflow(&s, &id)["runs"][0]["status"], "canceled");
    // The agent's late result finds a terminal intent.
    assert_error(
        &resume(&s, &step, json!({"action": "complete"})),
        409,
        "intent_terminal",
    );
}

#[test]
fn delay_and_notification_steps_run_on_the_built_in_agents() {
    let s = Server::start();
    let bundle = json!({
        "scenario_id": "test.delay.v1",
        "workflow": {"steps": [{"step_id": "pause", "tool_id": "tool.internal.delay",
                                "input": {"seconds": 0}}]},
        "intent": {"type": "intent.demo.delay.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(
        done["result"]["steps"]["pause"]["waited_seconds"], 0,
        "{done}"
    );
    let evs = events(&s, &id);
    assert_eq!(evs[2]["waiting_reason"], "WAITING_FOR_TIME");
}

#[test]
fn a_sigkill_between_steps_loses_nothing_and_doubles_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("axme.db");
    let mut s = Server::start_on(&data, &[]);
    let id = apply(&s, &agent_then_human(&name("k")))["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = step_intent(&s, &id, "readiness_check");
    let r = resume(&s, &step, json!({"action": "complete", "passed": true}));
    assert_eq!(r.status, 200, "{}", r.text);
    s.kill();
    let s = Server::start_on(&data, &[]);
    let before = events(&s, &id);
    assert_gap_free(&before);
    let i = intent(&s, &id);
    assert_eq!(i["waiting_reason"], "WAITING_FOR_HUMAN", "{i}");
    let w = workflow(&s, &id);
    let runs = w["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2, "{w}");
    assert_eq!(
        (runs[0]["status"].as_str(), runs[1]["status"].as_str()),
        (Some("completed"), Some("running"))
    );
    // Resuming the finished step again changes nothing; the human's decision ends it once.
    assert_error(
        &resume(&s, &step, json!({"action": "complete"})),
        409,
        "intent_terminal",
    );
    assert_eq!(events(&s, &id).len(), before.len());
    let r = resume(&s, &id, json!({"task_result": {"outcome": "approved"}}));
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "COMPLETED", None);
    let after = events(&s, &id);
    assert_gap_free(&after);
    assert_eq!(after.len(), before.len() + 2);
}

#[test]
fn the_intents_own_deadline_times_the_workflow_out_and_cancels_its_step() {
    let s = Server::start();
    let mut bundle = agent_then_human(&name("late"));
    let soon = time_in(1);
    bundle["intent"]["deadline_at"] = json!(soon);
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let step = step_intent(&s, &id, "readiness_check");
    let out = wait_status(&s, &id, "TIMED_OUT", None);
    assert_eq!(out["error"]["code"], "intent_timeout", "{out}");
    assert_eq!(intent(&s, &step)["status"], "CANCELED");
    assert_eq!(workflow(&s, &id)["runs"][0]["status"], "canceled");
}

#[test]
fn a_step_whose_delivery_attempts_run_out_fails_the_workflow() {
    let s = Server::start();
    let worker = name("flaky");
    let bundle = json!({
        "scenario_id": "test.attempts.v1",
        "agents": [{"role": "w", "address": worker, "delivery_mode": "inbox",
                    "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "work", "tool_id": "tool.agent.task.v1",
                                "assigned_to": "w"}]},
        "intent": {"type": "intent.demo.attempts.v1", "payload": {}, "max_delivery_attempts": 1}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = s.post(&format!("/v1/agents/{worker}/inbox/claim"), &json!({}));
    let token = c.json["claims"][0]["lease_token"]
        .as_str()
        .expect(&c.text)
        .to_string();
    let r = s.post(
        &format!("/v1/claims/{token}/nack"),
        &json!({"error": {"code": "busy"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let failed = wait_status(&s, &id, "FAILED", None);
    assert_eq!(
        failed["error"]["details"]["code"], "delivery_failed",
        "{failed}"
    );
}

/// An RFC 3339 time `secs` seconds from now (UTC), as `date` spells it.
fn time_in(secs: u64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let out = std::process::Command::new("date")
        .args([
            "-u",
            "-d",
            &format!("@{}", now + secs),
            "+%Y-%m-%dT%H:%M:%SZ",
        ])
        .output()
        .expect("date");
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
}
