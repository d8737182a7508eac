//! The MCP server (`POST /mcp`): JSON-RPC framing and errors, protocol version negotiation,
//! notifications answered 202, batches, the tool list with input schemas, tool calls acting
//! with exactly the access of the key (as the REST routes they map to), bad arguments and
//! failed calls as `isError` results, idempotent sends.

use crate::common;
use crate::workflow_support::{agent_then_human, name};

use common::*;
use serde_json::{json, Value};

fn rpc_with(s: &Server, key: &str, body: &Value) -> Resp {
    send(
        s.req_anon("POST", "/mcp")
            .set("authorization", &format!("Bearer {key}")),
        Some(body.to_string()),
    )
}

fn rpc(s: &Server, method: &str, params: Value) -> Value {
    let r = rpc_with(
        s,
        ADMIN_KEY,
        &json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (&r.json["jsonrpc"], &r.json["id"]),
        (&json!("2.0"), &json!(7)),
        "{}",
        r.text
    );
    r.json
}

fn call_as(s: &Server, key: &str, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": "c", "method": "tools/call", "params": {"name": tool, "arguments": args}});
    let r = rpc_with(s, key, &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let result = r.json["result"].clone();
    assert!(result.is_object(), "{}", r.text);
    assert_eq!(result["tool"], json!(tool));
    assert!(
        result["status"].is_string() && result["content"][0]["type"] == "text",
        "{result}"
    );
    result
}

fn call(s: &Server, tool: &str, args: Value) -> Value {
    let result = call_as(s, ADMIN_KEY, tool, args);
    assert_eq!(result["isError"], false, "{result}");
    result["structuredContent"].clone()
}

fn agent_key(s: &Server, name: &str, agents: &[&str]) -> String {
    let r = s.post(
        "/v1/keys",
        &json!({"name": name, "role": "agent", "agents": agents}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["api_key"].as_str().unwrap().to_string()
}

#[test]
fn initialize_settles_on_a_supported_protocol_version() {
    let s = Server::start();
    for v in ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"] {
        let r = rpc(
            &s,
            "initialize",
            json!({"protocolVersion": v, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
        );
        assert_eq!(r["result"]["protocolVersion"], v, "{r}");
    }
    let r = rpc(&s, "initialize", json!({"protocolVersion": "1999-01-01"}));
    assert_eq!(r["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(r["result"]["serverInfo"]["name"], "axme");
    assert!(r["result"]["capabilities"]["tools"].is_object());
    assert_eq!(rpc(&s, "ping", json!({}))["result"], json!({}));
    assert_eq!(
        rpc(&s, "resources/list", json!({}))["result"]["resources"],
        json!([])
    );
    assert_eq!(
        rpc(&s, "prompts/list", json!({}))["result"]["prompts"],
        json!([])
    );
}

#[test]
fn framing_errors_are_json_rpc_errors_and_notifications_get_202() {
    let s = Server::start();
    let r = rpc_with(
        &s,
        ADMIN_KEY,
        &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    );
    assert_eq!((r.status, r.text.as_str()), (202, ""));
    let r = rpc(&s, "no/such", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let r = rpc(&s, "tools/call", json!({"name": "axme.nothing"}));
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = rpc(
        &s,
        "tools/call",
        json!({"name": "axme.status", "arguments": [1]}),
    );
    assert_eq!(r["error"]["code"], -32602, "{r}");
    let r = send(s.req("POST", "/mcp"), Some("{not json".into()));
    assert_eq!(
        (r.status, &r.json["error"]["code"]),
        (400, &json!(-32700)),
        "{}",
        r.text
    );
    let r = rpc_with(&s, ADMIN_KEY, &json!({"id": 1, "method": "ping"}));
    assert_eq!(r.json["error"]["code"], -32600, "{}", r.text);
    let r = send(
        s.req("POST", "/mcp")
            .set("mcp-protocol-version", "2000-01-01"),
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string()),
    );
    assert_eq!(r.status, 400, "{}", r.text);

    let batch = json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}
    ]);
    let r = rpc_with(&s, ADMIN_KEY, &batch);
    let answers = r.json.as_array().unwrap_or_else(|| panic!("{}", r.text));
    assert_eq!(
        answers.iter().map(|a| a["id"].clone()).collect::<Vec<_>>(),
        vec![json!(1), json!(2)]
    );

    // The same keys as the REST API, in either header.
    let r = send(
        s.req_anon("POST", "/mcp"),
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string()),
    );
    assert_error(&r, 401, "auth_failed");
    let r = send(
        s.req_anon("POST", "/mcp").set("x-api-key", ADMIN_KEY),
        Some(json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string()),
    );
    assert_eq!(r.status, 200, "{}", r.text);
}

#[test]
fn every_tool_is_listed_with_an_input_schema() {
    let s = Server::start();
    let tools = rpc(&s, "tools/list", json!({}))["result"]["tools"].clone();
    let names: Vec<&str> = tools
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for want in [
        "axme.intents_send",
        "axme.intents_get",
        "axme.intents_list",
        "axme.intents_log",
        "axme.intents_cancel",
        "axme.intents_resume",
        "axme.intents_watch",
        "axme.tasks_list",
        "axme.tasks_approve",
        "axme.tasks_reject",
        "axme.agents_list",
        "axme.check_nick",
        "axme.scenarios_validate",
        "axme.scenarios_apply",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for t in tools.as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(
            t["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{t}"
        );
    }
    // The result the conformance suite reads.
    let r = call_as(
        &s,
        ADMIN_KEY,
        "axme.check_nick",
        json!({"nick": "@conformance_mcp"}),
    );
    assert_eq!(
        (&r["status"], &r["structuredContent"]["available"]),
        (&json!("completed"), &json!(true))
    );
}

#[test]
fn intents_are_sent_read_followed_and_canceled_through_tools() {
    let s = Server::start();
    let sent = call(
        &s,
        "axme.intents_send",
        json!({"to_agent": "team/worker", "intent_type": "demo.task.v1", "payload": {"n": 1}, "owner_agent": "agent://team/ignored"}),
    );
    let id = sent["intent_id"].as_str().unwrap().to_string();
    let got = call(&s, "axme.intents_get", json!({"intent_id": id}));
    assert_eq!(
        (&got["intent"]["payload"], &got["intent"]["status"]),
        (&json!({"n": 1}), &json!("SUBMITTED"))
    );
    // The REST API sees the same intent.
    assert_eq!(
        s.get(&format!("/v1/intents/{id}")).json["intent"]["intent_id"],
        json!(id)
    );
    let log = call(&s, "axme.intents_log", json!({"intent_id": id}));
    assert_eq!(log["events"].as_array().unwrap().len(), 2, "{log}");
    let listed = call(&s, "axme.intents_list", json!({"to_agent": "team/worker"}));
    assert_eq!(listed["intents"][0]["intent_id"], json!(id));
    let quiet = call(
        &s,
        "axme.intents_watch",
        json!({"intent_id": id, "since": 2, "wait_seconds": 1}),
    );
    assert_eq!(
        (
            quiet["events"].as_array().unwrap().len(),
            &quiet["next_since"]
        ),
        (0, &json!(2))
    );

    let canceled = call(
        &s,
        "axme.intents_cancel",
        json!({"intent_id": id, "reason": "not needed"}),
    );
    assert_eq!(canceled["intent"]["status"], "CANCELED", "{canceled}");
    let after = call(
        &s,
        "axme.intents_watch",
        json!({"intent_id": id, "since": 2, "wait_seconds": 5}),
    );
    assert_eq!(
        after["events"][0]["event_type"], "intent.canceled",
        "{after}"
    );

    // A failed call is a result the model can read, with the REST error inside.
    let again = call_as(
        &s,
        ADMIN_KEY,
        "axme.intents_cancel",
        json!({"intent_id": id}),
    );
    assert_eq!(again["isError"], true, "{again}");
    let text = again["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("(409)"), "the REST status is named: {text}");
    let bad = call_as(&s, ADMIN_KEY, "axme.intents_send", json!({"payload": {}}));
    assert_eq!(bad["isError"], true);
    assert!(
        bad["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("to_agent"),
        "{bad}"
    );
    let bad = call_as(
        &s,
        ADMIN_KEY,
        "axme.intents_send",
        json!({"to_agent": "http://x"}),
    );
    assert_eq!(
        bad["structuredContent"]["error"]["details"]["field"], "to_agent",
        "{bad}"
    );
    let bad = call_as(
        &s,
        ADMIN_KEY,
        "axme.intents_get",
        json!({"intent_id": "nope"}),
    );
    assert_eq!(bad["isError"], true);
}

#[test]
fn a_send_with_an_idempotency_key_happens_once() {
    let s = Server::start();
    let args = json!({"to_agent": "team/w", "payload": {"n": 1}, "correlation_id": uuid(), "idempotency_key": "k-1"});
    let a = call(&s, "axme.intents_send", args.clone());
    let b = call(&s, "axme.intents_send", args.clone());
    assert_eq!(a["intent_id"], b["intent_id"]);
    let mut other = args;
    other["payload"] = json!({"n": 2});
    let c = call_as(&s, ADMIN_KEY, "axme.intents_send", other);
    assert_eq!(
        c["structuredContent"]["error"]["code"], "idempotency_conflict",
        "{c}"
    );
}

#[test]
fn a_tool_call_reaches_what_its_key_reaches_over_rest() {
    let s = Server::start();
    let alice = agent_key(&s, "alice", &["team/alice"]);
    let bob = agent_key(&s, "bob", &["team/bob"]);
    let mut body = intent_body("agent://team/alice");
    body["human_task"] = json!({"title": "Sign off", "task_type": "approval"});
    let r = s.post("/v1/intents", &body);
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap().to_string();

    // Bob's key: the intent does not exist for it, and its task is not his to decide.
    let r = call_as(&s, &bob, "axme.intents_get", json!({"intent_id": id}));
    assert_eq!(
        r["structuredContent"]["error"]["code"], "intent_not_found",
        "{r}"
    );
    let r = call_as(&s, &bob, "axme.tasks_approve", json!({"intent_id": id}));
    assert_eq!(r["isError"], true, "{r}");
    let r = call_as(
        &s,
        &bob,
        "axme.tasks_list",
        json!({"owner_agent": "team/alice"}),
    );
    assert_eq!(r["structuredContent"]["error"]["code"], "forbidden", "{r}");
    let r = call_as(
        &s,
        &bob,
        "axme.intents_send",
        json!({"to_agent": "team/x", "from_agent": "team/alice"}),
    );
    // As over REST, a from_agent the key may not send as is ignored: it sends as itself.
    let sent = r["structuredContent"]["intent_id"]
        .as_str()
        .unwrap()
        .to_string();
    let got = call_as(&s, &bob, "axme.intents_get", json!({"intent_id": sent}));
    assert_eq!(
        got["structuredContent"]["intent"]["from_agent"], "agent://team/bob",
        "{got}"
    );
    assert_eq!(
        call_as(&s, &bob, "axme.agents_list", json!({}))["isError"],
        false
    );

    // Alice's key sees and approves her task.
    let tasks = call_as(&s, &alice, "axme.tasks_list", json!({}));
    assert_eq!(
        tasks["structuredContent"]["tasks"][0]["intent_id"],
        json!(id),
        "{tasks}"
    );
    let who = call_as(&s, &alice, "axme.whoami", json!({}));
    assert_eq!(
        who["structuredContent"]["agents"],
        json!(["agent://team/alice"])
    );
    let done = call_as(
        &s,
        &alice,
        "axme.tasks_approve",
        json!({"intent_id": id, "comment": "fine"}),
    );
    assert_eq!(done["isError"], false, "{done}");
    assert_eq!(
        done["structuredContent"]["intent_status"], "COMPLETED",
        "{done}"
    );
    assert_eq!(
        s.get(&format!("/v1/intents/{id}")).json["intent"]["status"],
        "COMPLETED"
    );
}

#[test]
fn invites_and_uploads_through_tools_follow_the_rest_rules() {
    let s = Server::start();
    let lead = agent_key(&s, "lead", &["team/lead"]);
    let r = call_as(
        &s,
        &lead,
        "axme.generate_invite_link",
        json!({"recipient_hint": "Bob"}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let token = r["structuredContent"]["token"].as_str().unwrap();
    assert_eq!(r["structuredContent"]["owner_agent"], "agent://team/lead");
    assert_eq!(
        s.get(&format!("/v1/invites/{token}")).json["recipient_hint"],
        "Bob"
    );
    let r = call_as(
        &s,
        &lead,
        "axme.generate_invite_link",
        json!({"owner_agent": "team/boss"}),
    );
    assert_eq!(r["structuredContent"]["error"]["code"], "forbidden", "{r}");

    let body = json!({"owner_agent": "team/lead", "filename": "a.txt", "mime_type": "text/plain", "size_bytes": 3});
    let up = send(
        s.req_anon("POST", "/v1/media/create-upload")
            .set("x-api-key", &lead),
        Some(body.to_string()),
    );
    let id = up.json["upload_id"].as_str().unwrap().to_string();
    let r = call_as(&s, &lead, "axme.media_get_upload", json!({"upload_id": id}));
    assert_eq!(r["structuredContent"]["upload"]["status"], "pending", "{r}");
    let other = agent_key(&s, "other", &["team/other"]);
    let r = call_as(
        &s,
        &other,
        "axme.media_get_upload",
        json!({"upload_id": id}),
    );
    assert_eq!(
        r["structuredContent"]["error"]["code"], "upload_not_found",
        "{r}"
    );
}

#[test]
fn the_per_request_protocol_is_discovered_and_marked_on_every_result() {
    let s = Server::start();
    let modern = |body: Value| {
        send(
            s.req("POST", "/mcp")
                .set("mcp-protocol-version", "2026-07-28"),
            Some(body.to_string()),
        )
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28"});
    let r = modern(
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    let versions = r.json["result"]["supportedVersions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(versions.contains(&json!("2024-11-05")) && versions.contains(&json!("2026-07-28")));
    assert_eq!(r.json["result"]["resultType"], "complete");
    let r = modern(
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}}),
    );
    let result = &r.json["result"];
    assert_eq!(
        (
            &result["resultType"],
            &result["ttlMs"],
            &result["cacheScope"]
        ),
        (&json!("complete"), &json!(0), &json!("private"))
    );
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "axme"
    );
    // A handshake-era ping stays the empty result older SDKs expect.
    assert_eq!(rpc(&s, "ping", json!({}))["result"], json!({}));
    // A version nobody speaks, in the header or the envelope, is -32022 with the supported ones.
    let r = send(
        s.req("POST", "/mcp")
            .set("mcp-protocol-version", "2099-01-01"),
        Some(json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string()),
    );
    assert_eq!(
        (r.status, &r.json["error"]["code"]),
        (400, &json!(-32022)),
        "{}",
        r.text
    );
    let r = rpc(
        &s,
        "ping",
        json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}}),
    );
    assert_eq!(
        r["error"]["data"]["supported"].as_array().unwrap().len(),
        5,
        "{r}"
    );
}

#[test]
fn a_scenario_bundle_is_validated_and_applied_through_tools_as_over_rest() {
    let s = Server::start();
    let bundle = agent_then_human(&name("mcp-checker"));
    let mut broken = bundle.clone();
    broken["workflow"]["steps"][0]["assigned_to"] = json!("ghost");
    let report = call(&s, "axme.scenarios_validate", json!({"bundle": broken}));
    assert_eq!(report["valid"], false, "{report}");
    assert_eq!(
        report["error_details"][0]["path"],
        "workflow.steps[0].assigned_to"
    );
    let bad = call_as(
        &s,
        ADMIN_KEY,
        "axme.scenarios_apply",
        json!({"bundle": broken}),
    );
    assert_eq!(bad["isError"], true, "{bad}");
    assert_eq!(bad["structuredContent"]["error"]["code"], "schema_invalid");

    let args = json!({"bundle": bundle, "idempotency_key": "apply-once"});
    let first = call(&s, "axme.scenarios_apply", args.clone());
    let checker = bundle["agents"][0]["address"].as_str().unwrap();
    let pending_with = format!("agent://{checker}");
    assert_eq!(first["status"], "WAITING", "{first}");
    assert_eq!(first["pending_with"], pending_with.as_str());
    assert_eq!(first["idempotent"], false);
    let again = call(&s, "axme.scenarios_apply", args);
    assert_eq!(again["intent_id"], first["intent_id"]);
    assert_eq!(again["idempotent"], true);
    let id = first["intent_id"].as_str().unwrap();
    let r = s.get(&format!("/v1/intents/{id}/workflow"));
    assert_eq!(
        r.json["workflow"]["current_step"], "readiness_check",
        "{}",
        r.text
    );

    // An agent key may not apply a scenario over REST, nor through the tool.
    let key = agent_key(&s, "mcp-scenarios", &["agent://mcp/someone"]);
    let refused = call_as(&s, &key, "axme.scenarios_apply", json!({"bundle": bundle}));
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(refused["structuredContent"]["error"]["code"], "forbidden");
}
