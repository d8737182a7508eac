//! Helpers shared by the workflow tests (`tests/workflows*.rs`): bundles as AXME writes them,
//! applying one, reading the workflow's intent, its events and the step intents its agents
//! receive.

#![allow(dead_code)]

use std::time::Duration;

use serde_json::{json, Value};

use crate::common::{poll_until, uuid, Resp, Server};

/// A unique short agent name (bundles name agents without `agent://`).
pub fn name(prefix: &str) -> String {
    format!("{prefix}-{}", &uuid()[..8])
}

/// An agent step then a human sign-off: the shape of AXME's `human/cli` example.
pub fn agent_then_human(checker: &str) -> Value {
    json!({
        "scenario_id": "test.agent_then_human.v1",
        "title": "readiness check then approval",
        "agents": [{"role": "checker", "address": checker, "delivery_mode": "stream",
                    "create_if_missing": true}],
        "humans": [{"role": "operator", "display_name": "Ops"}],
        "workflow": {"steps": [
            {"step_id": "readiness_check", "tool_id": "tool.agent.task.v1",
             "assigned_to": "checker", "step_deadline_seconds": 60},
            {"step_id": "ops_approval", "tool_id": "tool.approval.human_signoff",
             "assigned_to": "operator", "requires_approval": true,
             "human_task": {"title": "Deploy?", "description": "approve or reject"}}
        ]},
        "intent": {"type": "intent.deployment.approval.v1",
                   "payload": {"service": "api", "version": "1.2.3"},
                   "max_delivery_attempts": 3}
    })
}

/// Applies a bundle and returns the answer (asserting 200).
pub fn apply(s: &Server, bundle: &Value) -> Value {
    let r = s.post("/v1/scenarios/apply", bundle);
    assert_eq!(r.status, 200, "{}", r.text);
    r.json
}

pub fn intent(s: &Server, id: &str) -> Value {
    let r = s.get(&format!("/v1/intents/{id}"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intent"].clone()
}

pub fn events(s: &Server, id: &str) -> Vec<Value> {
    let r = s.get(&format!("/v1/intents/{id}/events?since=0"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["events"].as_array().cloned().unwrap_or_default()
}

pub fn workflow(s: &Server, id: &str) -> Value {
    let r = s.get(&format!("/v1/intents/{id}/workflow"));
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["workflow"].clone()
}

/// Waits until the workflow's intent is in `status` (and, when given, waits for `reason`).
pub fn wait_status(s: &Server, id: &str, status: &str, reason: Option<&str>) -> Value {
    poll_until(
        Duration::from_secs(20),
        &format!("{id} to be {status}"),
        || {
            let i = intent(s, id);
            let ok = i["status"] == status
                && reason.is_none_or(|r| i["waiting_reason"].as_str() == Some(r));
            ok.then_some(i)
        },
    )
}

/// The intent carrying the running step `step_id` of the workflow `id`.
pub fn step_intent(s: &Server, id: &str, step_id: &str) -> String {
    poll_until(
        Duration::from_secs(20),
        &format!("step {step_id} to run"),
        || {
            let w = workflow(s, id);
            w["runs"].as_array().and_then(|runs| {
                runs.iter()
                    .rev()
                    .find(|r| r["step_id"] == step_id && r["status"] == "running")
                    .and_then(|r| r["step_intent_id"].as_str().map(str::to_string))
            })
        },
    )
}

/// The steps' `(step_id, step_status)` as the workflow's events record them, in order.
pub fn step_trail(events: &[Value]) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| {
            let d = &e["details"];
            Some((
                d["step_id"].as_str()?.to_string(),
                d["step_status"].as_str()?.to_string(),
            ))
        })
        .collect()
}

/// The seqs of an event list are 1, 2, 3, … with no gap and no repeat.
pub fn assert_gap_free(events: &[Value]) {
    let seqs: Vec<i64> = events.iter().filter_map(|e| e["seq"].as_i64()).collect();
    let want: Vec<i64> = (1..=seqs.len() as i64).collect();
    assert_eq!(seqs, want, "{events:?}");
}

/// The agent's result, as AXME agents send it.
pub fn resume(s: &Server, id: &str, body: Value) -> Resp {
    s.post(&format!("/v1/intents/{id}/resume"), &body)
}
