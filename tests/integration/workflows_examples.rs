//! What AXME's example agents rely on beyond the step engine itself, each pinned by the flow
//! that broke: an agent reading the work's fields straight off `get_intent(id)["payload"]`
//! (delivery/poll, delivery/http, delivery/inbox), the workflow's outcome waiting in the
//! initiator's inbox (delivery/inbox's `check_inbox`), and a human's form given on the CLI as
//! `axme tasks approve ID --result JSON` (internal/notification).

use crate::common;
use crate::workflow_support;

use common::*;
use serde_json::{json, Value};
use workflow_support::*;

fn one_agent_step(agent: &str, payload: Value) -> Value {
    json!({
        "scenario_id": "test.examples.v1",
        "agents": [{"role": "worker", "address": agent, "delivery_mode": "poll",
                    "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "work", "tool_id": "tool.agent.task.v1",
                                "assigned_to": "worker"}]},
        "intent": {"type": "intent.demo.examples.v1", "payload": payload}
    })
}

/// delivery/poll failed its step with "batch_id is required": the agent read `batch_id` from
/// the top of the GET answer's `payload`, which held only the step's envelope.
#[test]
fn an_agent_step_shows_the_works_fields_at_the_top_of_get_intents_payload() {
    let s = Server::start();
    let agent = name("batch");
    let payload = json!({"batch_id": "b-1", "record_type": "orders", "step_id": "mine"});
    let id = apply(&s, &one_agent_step(&agent, payload.clone()))["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    let step = step_intent(&s, &id, "work");

    let got = s.get(&format!("/v1/intents/{step}"));
    assert_eq!(got.status, 200, "{}", got.text);
    let top = &got.json["payload"];
    assert_eq!(top, &got.json["intent"]["payload"], "{}", got.text);
    assert_eq!(top["batch_id"], "b-1", "{}", got.text);
    assert_eq!(top["record_type"], "orders");
    // The envelope stays, and its keys win over the work's own on a clash.
    assert_eq!(top["parent_payload"], payload);
    assert_eq!(top["parent_intent_id"], id);
    assert_eq!(top["step_id"], "work");
    assert_eq!(top["tool_id"], "tool.agent.task.v1");

    let r = resume(&s, &step, json!({"action": "complete", "records": 3}));
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(done["result"]["steps"]["work"]["records"], 3, "{done}");
}

/// delivery/inbox's initiator found its inbox empty: the engine's end of a workflow never
/// reached `reply_to`, and an applied bundle had none.
#[test]
fn a_workflows_outcome_lands_in_the_initiators_inbox() {
    let s = Server::start();
    let agent = name("fulfil");
    let id = apply(&s, &one_agent_step(&agent, json!({"order_id": "o-7"})))["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    assert_eq!(intent(&s, &id)["reply_to"], "agent://admin");
    let step = step_intent(&s, &id, "work");
    let r = resume(&s, &step, json!({"action": "complete", "tracking": "T-1"}));
    assert_eq!(r.status, 200, "{}", r.text);
    wait_status(&s, &id, "COMPLETED", None);

    let inbox = s.get("/v1/inbox");
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    let threads = inbox.json["threads"].as_array().expect("threads");
    let mine: Vec<&Value> = threads.iter().filter(|t| t["intent_id"] == id).collect();
    assert_eq!(mine.len(), 1, "{}", inbox.text);
    assert_eq!(mine[0]["owner_agent"], "agent://admin");
    assert_eq!(mine[0]["status"], "done");
    let thread = s.get(&format!("/v1/inbox/{id}"));
    assert_eq!(thread.status, 200, "{}", thread.text);
    let ended = thread.json["thread"]["timeline"]
        .as_array()
        .expect("timeline")
        .iter()
        .any(|e| e["event_type"] == "intent.completed");
    assert!(ended, "{}", thread.text);
}

#[test]
fn a_bundles_reply_to_names_the_inbox_and_a_bad_one_is_a_422_at_its_path() {
    let s = Server::start();
    let agent = name("fulfil");
    let back = format!("agent://{}", name("back"));
    let mut bundle = one_agent_step(&agent, json!({}));
    bundle["intent"]["reply_to"] = json!(back);
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    assert_eq!(intent(&s, &id)["reply_to"], back);
    let step = step_intent(&s, &id, "work");
    assert_eq!(resume(&s, &step, json!({"action": "fail"})).status, 200);
    wait_status(&s, &id, "FAILED", None);
    let r = s.req("GET", "/v1/inbox").set("x-owner-agent", &back);
    let inbox = send(r, None);
    assert_eq!(inbox.status, 200, "{}", inbox.text);
    assert_eq!(inbox.json["threads"][0]["intent_id"], id, "{}", inbox.text);

    bundle["intent"]["reply_to"] = json!("agent://has space");
    let r = s.post("/v1/scenarios/apply", &bundle);
    assert_error(&r, 422, "schema_invalid");
    assert_eq!(r.field(), "intent.reply_to", "{}", r.text);
    assert!(!r.text.contains("reply_to: intent.reply_to"), "{}", r.text);
}

/// internal/notification tells its owner to `axme tasks approve ID --result '{...}'`; the
/// flag did not exist.
#[test]
fn tasks_approve_result_sends_the_form_checked_against_its_schema() {
    let s = Server::start();
    let bundle = json!({
        "scenario_id": "test.notify_owner.v1",
        "humans": [{"role": "owner"}],
        "workflow": {"steps": [{"step_id": "ack", "tool_id": "tool.notification.notify_owner",
            "assigned_to": "owner", "human_task": {"title": "Ack?", "form_schema": {
                "type": "object", "required": ["acknowledged"],
                "properties": {"acknowledged": {"type": "boolean"}}}}}]},
        "intent": {"type": "intent.demo.ack.v1", "payload": {}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .expect("intent_id")
        .to_string();
    let task = step_intent(&s, &id, "ack");
    wait_status(&s, &task, "WAITING", Some("WAITING_FOR_HUMAN"));

    let (code, out, err) = s.cli(&s.api_key, &["tasks", "approve", &task, "--result", "[1]"]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(err.contains("--result must be a JSON object"), "{err}");
    let bad = r#"{"acknowledged":"yes"}"#;
    let (code, out, err) = s.cli(&s.api_key, &["tasks", "approve", &task, "--result", bad]);
    assert_eq!(code, 1, "{out} {err}");
    assert!(err.contains("task_result.acknowledged"), "{err}");

    let good = r#"{"acknowledged":true,"decision":"proceed"}"#;
    let (code, out, err) = s.cli(&s.api_key, &["tasks", "approve", &task, "--result", good]);
    assert_eq!(code, 0, "{out} {err}");
    assert!(out.contains(&format!("approved {task}")), "{out}");
    let done = wait_status(&s, &id, "COMPLETED", None);
    let ack = &done["result"]["steps"]["ack"];
    assert_eq!(ack["outcome"], "approved", "{done}");
    assert_eq!(ack["task_result"]["acknowledged"], true, "{done}");
}
