//! Scenario bundles (`POST /v1/scenarios/validate|apply`) and resume as AXME's clients send it:
//! every problem of a bad bundle is named by its JSON path and a bad apply writes nothing; an
//! apply under the same idempotency key answers the first intent; a handler's result ends an
//! intent that was never WAITING; `task_result` meets the task's `form_schema`; controls and
//! policy move the policy generation that resume checks.

use crate::common;
use crate::workflow_support;

use common::*;
use serde_json::{json, Value};
use workflow_support::*;

fn count_intents(s: &Server) -> usize {
    let r = s.get("/v1/intents?limit=200");
    r.json["intents"].as_array().map_or(0, Vec::len)
}

#[test]
fn bad_bundles_name_every_problem_by_its_json_path_and_apply_writes_nothing() {
    let s = Server::start();
    let good = agent_then_human(&name("c"));
    let r = s.post("/v1/scenarios/validate", &good);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.json["valid"].as_bool(), r.json["errors"].clone()),
        (Some(true), json!([]))
    );
    // [mutation as (JSON pointer, value), the path the first error must name]
    let cases: Vec<(&str, Value, &str)> = vec![
        ("/scenario_id", json!("Bad Id"), "scenario_id"),
        ("/intent/type", json!("nope"), "intent.type"),
        (
            "/agents/0/delivery_mode",
            json!("carrier_pigeon"),
            "agents[0].delivery_mode",
        ),
        (
            "/agents/0/address",
            json!("mailto://x"),
            "agents[0].address",
        ),
        (
            "/workflow/steps/0/assigned_to",
            json!("nobody"),
            "workflow.steps[0].assigned_to",
        ),
        (
            "/workflow/steps/1/tool_id",
            json!("tool.magic.v9"),
            "workflow.steps[1].tool_id",
        ),
        (
            "/workflow/steps/1/step_id",
            json!("readiness_check"),
            "workflow.steps[1].step_id",
        ),
        (
            "/workflow/steps/0/on_failure",
            json!("nowhere"),
            "workflow.steps[0].on_failure",
        ),
        (
            "/workflow/steps/0/step_deadline_seconds",
            json!(0),
            "workflow.steps[0].step_deadline_seconds",
        ),
        (
            "/workflow/steps/1/human_task/title",
            json!(5),
            "workflow.steps[1].human_task.title",
        ),
        (
            "/workflow/steps/1/human_task/form_schema",
            json!({"type": "nonsense"}),
            "workflow.steps[1].human_task.form_schema",
        ),
        (
            "/workflow/entry_step",
            json!("missing"),
            "workflow.entry_step",
        ),
        (
            "/agents/0/address",
            json!("agent://internal/delay"),
            "agents[0].address",
        ),
        (
            "/workflow/steps/0/assigned_to",
            json!("agent://internal/notify"),
            "workflow.steps[0].assigned_to",
        ),
        ("/intent/payload", json!([1]), "intent.payload"),
    ];
    let mut failures = Vec::new();
    for (pointer, value, path) in &cases {
        let mut bundle = good.clone();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let slot = bundle
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{pointer}"));
        match slot {
            Value::Array(a) => a[key.parse::<usize>().unwrap()] = value.clone(),
            other => other[key] = value.clone(),
        }
        let v = s.post("/v1/scenarios/validate", &bundle);
        let first = v.json["error_details"][0]["path"].as_str().unwrap_or("");
        if v.status != 200 || v.json["valid"] != false || first != *path {
            failures.push(format!("validate {pointer}: want {path}, got {}", v.text));
        }
        let line = v.json["errors"][0].as_str().unwrap_or("");
        if !line.starts_with(&format!("{path}: ")) {
            failures.push(format!("validate {pointer}: error line {line:?}"));
        }
        let a = s.post("/v1/scenarios/apply", &bundle);
        if a.status != 422
            || a.code() != "schema_invalid" && a.code() != "invalid_agent_address"
            || a.field() != *path
        {
            failures.push(format!(
                "apply {pointer}: want 422 naming {path}, got {}",
                a.text
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
    // Several problems at once are all listed.
    let mut bundle = good.clone();
    bundle["intent"]["type"] = json!("x");
    bundle["workflow"]["steps"][0]["assigned_to"] = json!("ghost");
    let v = s.post("/v1/scenarios/validate", &bundle);
    let paths: Vec<&str> = v.json["error_details"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["path"].as_str())
        .collect();
    assert!(
        paths.contains(&"intent.type") && paths.contains(&"workflow.steps[0].assigned_to"),
        "{}",
        v.text
    );
    // A missing intent, a bundle that is not an object.
    let v = s.post("/v1/scenarios/validate", &json!({"scenario_id": "a.b"}));
    assert_eq!(v.json["error_details"][0]["path"], "intent", "{}", v.text);
    let v = s.post("/v1/scenarios/validate", &json!([1]));
    assert_eq!(v.json["valid"], false, "{}", v.text);
    // Unknown fields are warnings; AXME's bundles carry fields this server does not read.
    let mut bundle = good.clone();
    bundle["workflow"]["steps"][0]["shiny"] = json!(true);
    let v = s.post("/v1/scenarios/validate", &bundle);
    assert_eq!(v.json["valid"], true, "{}", v.text);
    assert_eq!(
        v.json["warning_details"][0]["path"],
        "workflow.steps[0].shiny"
    );
    assert_eq!(count_intents(&s), 0, "a refused apply wrote an intent");
    let agents = s.get("/v1/agents").json["agents"].clone();
    let outside: Vec<&Value> = agents
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            !a["address"]
                .as_str()
                .unwrap_or("")
                .starts_with("agent://internal/")
        })
        .collect();
    assert!(
        outside.is_empty(),
        "a refused apply registered agents: {outside:?}"
    );
}

#[test]
fn a_bundle_applied_again_with_the_same_idempotency_key_answers_the_first_intent() {
    let s = Server::start();
    let bundle = agent_then_human(&name("idem"));
    let key = uuid();
    let first = send(
        s.req("POST", "/v1/scenarios/apply")
            .set("idempotency-key", &key),
        Some(bundle.to_string()),
    );
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.json["idempotent"], false);
    let again = send(
        s.req("POST", "/v1/scenarios/apply")
            .set("idempotency-key", &key),
        Some(bundle.to_string()),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.json["intent_id"], first.json["intent_id"]);
    assert_eq!(again.json["idempotent"], true);
    assert_eq!(
        count_intents(&s),
        2,
        "one workflow intent and its first step intent"
    );
    let mut other = bundle.clone();
    other["intent"]["payload"]["version"] = json!("9.9.9");
    let clash = send(
        s.req("POST", "/v1/scenarios/apply")
            .set("idempotency-key", &key),
        Some(other.to_string()),
    );
    assert_error(&clash, 409, "idempotency_conflict");
    // The bundle's own idempotency_key works the same (AXME's SDK sends both).
    let mut keyed = agent_then_human(&name("body"));
    keyed["idempotency_key"] = json!(uuid());
    let a = s.post("/v1/scenarios/apply", &keyed);
    let b = s.post("/v1/scenarios/apply", &keyed);
    assert_eq!((a.status, b.status), (200, 200), "{} {}", a.text, b.text);
    assert_eq!(a.json["intent_id"], b.json["intent_id"]);
    assert_eq!(count_intents(&s), 4);
}

#[test]
fn apply_sets_the_binding_of_an_agent_that_exists_and_registers_a_missing_one() {
    let s = Server::start();
    let (old, new) = (name("old"), name("new"));
    let r = s.post(
        "/v1/agents",
        &json!({"address": format!("agent://{old}"), "delivery_mode": "poll"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let bundle = json!({
        "scenario_id": "test.bindings.v1",
        "agents": [{"role": "a", "address": old, "delivery_mode": "inbox"},
                   {"role": "b", "address": format!("agent://{new}"), "delivery_mode": "http",
                    "callback_url": "http://127.0.0.1:9/hook", "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "s", "tool_id": "tool.agent.task.v1", "assigned_to": "a"}]},
        "intent": {"type": "intent.demo.bind.v1"}
    });
    let a = apply(&s, &bundle);
    assert_eq!(
        a["agents"],
        json!([
            {"role": "a", "address": format!("agent://{old}"), "created": false},
            {"role": "b", "address": format!("agent://{new}"), "created": true}
        ])
    );
    assert_eq!(
        s.get(&format!("/v1/agents/{old}")).json["agent"]["delivery_mode"],
        "inbox"
    );
    let b = s.get(&format!("/v1/agents/{new}"));
    assert_eq!(b.json["agent"]["delivery_mode"], "http", "{}", b.text);
    assert_eq!(b.json["agent"]["webhook_url"], "http://127.0.0.1:9/hook");
}

#[test]
fn an_inbox_agent_claims_its_step_and_its_ack_completes_it() {
    let s = Server::start();
    let worker = name("claimer");
    let bundle = json!({
        "scenario_id": "test.inbox_step.v1",
        "agents": [{"role": "w", "address": worker, "delivery_mode": "inbox", "create_if_missing": true}],
        "workflow": {"steps": [{"step_id": "work", "tool_id": "tool.agent.task.v1", "assigned_to": "w"}]},
        "intent": {"type": "intent.demo.claim.v1", "payload": {"job": 7}}
    });
    let id = apply(&s, &bundle)["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = s.post(
        &format!("/v1/agents/{worker}/inbox/claim"),
        &json!({"max": 1}),
    );
    assert_eq!(c.status, 200, "{}", c.text);
    let claim = &c.json["claims"][0];
    assert_eq!(
        claim["intent"]["payload"]["parent_payload"]["job"], 7,
        "{}",
        c.text
    );
    let token = claim["lease_token"].as_str().unwrap();
    let r = s.post(
        &format!("/v1/claims/{token}/ack"),
        &json!({"status": "COMPLETED", "result": {"done": true}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let done = wait_status(&s, &id, "COMPLETED", None);
    assert_eq!(done["result"]["steps"]["work"]["done"], true, "{done}");
}

#[test]
fn resume_takes_a_handlers_result_on_an_intent_that_never_waited() {
    let s = Server::start();
    // SUBMITTED (AXME's examples resume fresh intents): the fields are the result.
    let id = s.create_intent("agent://w");
    let r = resume(
        &s,
        &id,
        json!({"action": "complete", "passed": true, "reason": "fine"}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "COMPLETED");
    assert_eq!(
        r.json["intent"]["result"],
        json!({"passed": true, "action": "complete", "reason": "fine"})
    );
    assert_eq!(
        (
            r.json["applied"].as_bool(),
            r.json["policy_generation"].as_i64()
        ),
        (Some(true), Some(1))
    );
    // DELIVERED, then fail.
    let id = s.create_intent("agent://w");
    assert_eq!(
        s.post(&format!("/v1/intents/{id}/ack"), &json!({})).status,
        200
    );
    let r = resume(&s, &id, json!({"action": "fail", "reason": "broken"}));
    assert_eq!(r.json["intent"]["status"], "FAILED", "{}", r.text);
    assert_eq!(r.json["intent"]["error"]["code"], "agent_failed");
    assert_eq!(r.json["intent"]["error"]["message"], "broken");
    // `result` alone is the result; in_progress only reports work.
    let id = s.create_intent("agent://w");
    let r = resume(
        &s,
        &id,
        json!({"action": "in_progress", "result": {"pct": 50}}),
    );
    assert_eq!(r.json["intent"]["status"], "IN_PROGRESS", "{}", r.text);
    let r = resume(&s, &id, json!({"result": {"pct": 100}}));
    assert_eq!(
        r.json["intent"]["result"],
        json!({"pct": 100}),
        "{}",
        r.text
    );
    // A plain continue of an intent that is not WAITING is still 409; a terminal one too.
    let fresh = s.create_intent("agent://w");
    assert_error(
        &resume(&s, &fresh, json!({"reason": "go"})),
        409,
        "invalid_transition",
    );
    assert_error(
        &resume(&s, &id, json!({"action": "complete"})),
        409,
        "intent_terminal",
    );
}

#[test]
fn controls_and_policy_move_the_generation_that_resume_checks() {
    let s = Server::start();
    let id = s.create_intent("agent://w");
    let c = s.post(
        &format!("/v1/intents/{id}/controls"),
        &json!({"controls_patch": {"max_retries": 3, "timeout_seconds": 60}}),
    );
    assert_eq!(c.status, 200, "{}", c.text);
    assert_eq!(c.json["policy_generation"], 2);
    assert_eq!(
        c.json["controls"],
        json!({"max_retries": 3, "timeout_seconds": 60})
    );
    let p = s.post(
        &format!("/v1/intents/{id}/policy"),
        &json!({"grants_patch": {"agent://x": ["read"]}, "expected_policy_generation": 2}),
    );
    assert_eq!(p.status, 200, "{}", p.text);
    assert_eq!(p.json["policy"], json!({"grants": {"agent://x": ["read"]}}));
    assert_eq!(p.json["policy_generation"], 3);
    let stale = s.post(
        &format!("/v1/intents/{id}/controls"),
        &json!({"controls_patch": {"max_retries": null}, "expected_policy_generation": 2}),
    );
    assert_error(&stale, 409, "policy_generation_mismatch");
    let r = resume(
        &s,
        &id,
        json!({"action": "complete", "expected_policy_generation": 1}),
    );
    assert_error(&r, 409, "policy_generation_mismatch");
    let r = resume(
        &s,
        &id,
        json!({"action": "complete", "expected_policy_generation": 3}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["policy_generation"], 3);
    let bad = s.post(
        &format!("/v1/intents/{id}/controls"),
        &json!({"controls_patch": {"max_retries": 1}}),
    );
    assert_error(&bad, 409, "intent_terminal");
    let fresh = s.create_intent("agent://w");
    let bad = s.post(&format!("/v1/intents/{fresh}/controls"), &json!({}));
    assert_error(&bad, 422, "schema_invalid");
    assert_eq!(bad.field(), "controls_patch");
}

#[test]
fn a_task_result_must_fit_the_tasks_form_schema_and_default_outcomes() {
    let s = Server::start();
    let mut body = intent_body("agent://human/sec");
    body["human_task"] = json!({"title": "Grant access?", "form_schema": {
        "type": "object", "required": ["approved", "grant_duration_days"],
        "properties": {"approved": {"type": "boolean"},
                       "grant_duration_days": {"type": "integer", "minimum": 1, "maximum": 90}}}});
    let r = s.post("/v1/intents", &body);
    let id = r.json["intent_id"].as_str().expect(&r.text).to_string();
    let cases = [
        (json!({"outcome": "maybe"}), "task_result.outcome"),
        (json!({"outcome": "approved"}), "task_result"),
        (
            json!({"outcome": "approved", "approved": true, "grant_duration_days": 365}),
            "task_result.grant_duration_days",
        ),
        (
            json!({"outcome": "approved", "data": {"approved": "yes", "grant_duration_days": 5}}),
            "task_result.approved",
        ),
    ];
    for (tr, field) in cases {
        let r = resume(&s, &id, json!({"task_result": tr}));
        assert_error(&r, 422, "schema_invalid");
        assert_eq!(r.field(), field, "{tr}: {}", r.text);
    }
    assert_eq!(intent(&s, &id)["status"], "WAITING");
    let ok = json!({"outcome": "approved", "approved": true, "grant_duration_days": 30});
    let r = resume(&s, &id, json!({"task_result": ok}));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "COMPLETED");
    assert_eq!(
        r.json["intent"]["result"]["task_result"]["grant_duration_days"],
        30
    );
}

#[test]
fn form_values_a_command_line_sends_as_strings_are_read_as_the_json_they_spell() {
    let s = Server::start();
    let mut body = intent_body("agent://human/oncall");
    body["human_task"] = json!({"title": "Ack?", "form_schema": {
        "type": "object", "required": ["acknowledged"],
        "properties": {"acknowledged": {"type": "boolean"}, "eta_minutes": {"type": "integer"}}}});
    let id = s.post("/v1/intents", &body).json["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let bad = json!({"task_result": {"outcome": "approved", "acknowledged": "yes"}});
    assert_error(&resume(&s, &id, bad), 422, "schema_invalid");
    let ok = json!({"task_result": {"outcome": "approved", "acknowledged": "true", "eta_minutes": "15"}});
    let r = resume(&s, &id, ok);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.json["intent"]["status"], "COMPLETED");
}
