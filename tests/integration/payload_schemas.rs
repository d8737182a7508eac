//! Payload schemas (`/v1/schemas`): AXP shapes and the canonical hash, intents of a schema'd
//! type refused (strict) or warned about (warn) with the JSON pointer of each violation, a
//! `backward` schema that would refuse stored payloads refused itself, drafts 7 and 2020-12,
//! admin-only writes.

use crate::axp_support;
use crate::common;

use axp_support::assert_axp;
use common::*;
use serde_json::{json, Value};

const TYPE: &str = "axme.calendar.schedule.v1";

fn upsert(s: &Server, semantic_type: &str, schema: Value, mode: &str) -> Resp {
    s.post(
        "/v1/schemas",
        &json!({"semantic_type": semantic_type, "schema_json": schema, "compatibility_mode": mode}),
    )
}

fn calendar_schema() -> Value {
    json!({
        "type": "object",
        "required": ["date"],
        "properties": {
            "date": {"type": "string", "format": "date"},
            "count": {"type": "integer", "minimum": 1}
        }
    })
}

fn create(s: &Server, intent_type: &str, payload: Value) -> Resp {
    let mut body = intent_body("agent://team/calendar");
    body["intent_type"] = json!(intent_type);
    body["payload"] = payload;
    s.post("/v1/intents", &body)
}

fn stored_count(s: &Server) -> usize {
    let r = s.get("/v1/intents?to_agent=agent://team/calendar&limit=200");
    assert_eq!(r.status, 200, "{}", r.text);
    r.json["intents"].as_array().unwrap().len()
}

#[test]
fn schemas_are_stored_in_the_axp_shapes_with_a_canonical_hash() {
    let s = Server::start();
    let r = upsert(&s, TYPE, calendar_schema(), "strict");
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.schemas.upsert.response.v1", &r.json);
    let hash = r.json["schema"]["schema_hash"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(hash.len(), 64);

    // The same schema with its keys in another order has the same hash.
    let reordered: Value = serde_json::from_str(
        r#"{"properties":{"count":{"minimum":1,"type":"integer"},"date":{"format":"date","type":"string"}},"required":["date"],"type":"object"}"#,
    )
    .unwrap();
    let r = upsert(&s, TYPE, reordered, "strict");
    assert_eq!(r.json["schema"]["schema_hash"], json!(hash), "{}", r.text);

    let r = s.get(&format!("/v1/schemas/{TYPE}"));
    assert_eq!(r.status, 200, "{}", r.text);
    assert_axp("api.schemas.get.response.v1", &r.json);
    assert_eq!(r.json["schema"]["schema_json"]["required"], json!(["date"]));
    assert_eq!(r.json["schema"]["compatibility_mode"], "strict");
}

#[test]
fn a_strict_schema_refuses_a_payload_naming_each_pointer_and_stores_nothing() {
    let s = Server::start();
    assert_eq!(upsert(&s, TYPE, calendar_schema(), "strict").status, 200);
    let r = create(&s, TYPE, json!({"date": "2026-12-08", "count": 2}));
    assert_eq!(r.status, 200, "{}", r.text);

    let r = create(&s, TYPE, json!({"count": 0, "date": "tomorrow"}));
    assert_error(&r, 422, "payload_schema_violation");
    assert_eq!(r.field(), "payload");
    let reason = r.json["error"]["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("/count:") && reason.contains("/date:"),
        "{reason}"
    );
    let r = create(&s, TYPE, json!({"count": 3}));
    let reason = r.json["error"]["details"]["reason"].as_str().unwrap();
    assert!(
        reason.contains("/: ") && reason.contains("\"date\""),
        "{reason}"
    );
    assert_eq!(stored_count(&s), 1, "a refused intent is not stored");

    // Other types are not checked; an inactive schema checks nothing.
    assert_eq!(create(&s, "demo.task.v1", json!({"count": 0})).status, 200);
    let r = s.post(
        "/v1/schemas",
        &json!({"semantic_type": TYPE, "schema_json": calendar_schema(), "compatibility_mode": "strict", "active": false}),
    );
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(create(&s, TYPE, json!({"count": 0})).status, 200);
}

#[test]
fn a_warn_schema_accepts_the_payload_with_a_warning_event() {
    let s = Server::start();
    assert_eq!(upsert(&s, TYPE, calendar_schema(), "warn").status, 200);
    let r = create(&s, TYPE, json!({"date": "2026-12-08", "count": "many"}));
    assert_eq!(r.status, 200, "{}", r.text);
    let id = r.json["intent_id"].as_str().unwrap();
    let events = s.get(&format!("/v1/intents/{id}/events"));
    let warning = events.json["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["event_type"] == "intent.schema_warning")
        .unwrap_or_else(|| panic!("no warning event: {}", events.text))
        .clone();
    assert_eq!(warning["seq"], 3, "{warning}");
    let text = warning.to_string();
    assert!(text.contains("/count"), "{text}");
}

#[test]
fn a_backward_schema_that_refuses_stored_payloads_is_refused() {
    let s = Server::start();
    let v1 = json!({"type": "object", "properties": {"date": {"type": "string"}}});
    assert_eq!(upsert(&s, TYPE, v1, "backward").status, 200);
    let id = create(&s, TYPE, json!({"date": "2026-12-08"})).json["intent_id"].clone();

    let breaking =
        json!({"type": "object", "required": ["room"], "properties": {"date": {"type": "string"}}});
    let r = upsert(&s, TYPE, breaking, "backward");
    assert_error(&r, 409, "schema_incompatible");
    assert!(r.text.contains(id.as_str().unwrap()), "{}", r.text);
    let kept = s.get(&format!("/v1/schemas/{TYPE}"));
    assert_eq!(kept.json["schema"]["schema_json"].get("required"), None);

    let widening = json!({"type": "object", "properties": {"date": {"type": "string"}, "room": {"type": "string"}}});
    assert_eq!(upsert(&s, TYPE, widening, "backward").status, 200);
}

#[test]
fn draft_7_schemas_and_their_refs_validate() {
    let s = Server::start();
    let schema = json!({
        "$schema": "http://json-schema.org/draft-07/schema#",
        "definitions": {"when": {"type": "string", "minLength": 10}},
        "type": "object",
        "properties": {"date": {"$ref": "#/definitions/when"}},
        "additionalProperties": false
    });
    assert_eq!(upsert(&s, TYPE, schema, "strict").status, 200);
    assert_eq!(create(&s, TYPE, json!({"date": "2026-12-08"})).status, 200);
    let r = create(&s, TYPE, json!({"date": "soon", "extra": 1}));
    assert_error(&r, 422, "payload_schema_violation");
    assert!(r.text.contains("/date"), "{}", r.text);
}

#[test]
fn schema_requests_name_their_field_and_need_an_admin_key() {
    let s = Server::start();
    for (body, field) in [
        (
            json!({"semantic_type": "demo.task.v1", "schema_json": {}, "compatibility_mode": "strict"}),
            "semantic_type",
        ),
        (
            json!({"semantic_type": TYPE, "schema_json": {"type": "nothing"}, "compatibility_mode": "strict"}),
            "schema_json",
        ),
        (
            json!({"semantic_type": TYPE, "schema_json": [], "compatibility_mode": "strict"}),
            "schema_json",
        ),
        (
            json!({"semantic_type": TYPE, "schema_json": {}, "compatibility_mode": "loose"}),
            "compatibility_mode",
        ),
        (
            json!({"semantic_type": TYPE, "schema_json": {}, "compatibility_mode": "warn", "scope": "x"}),
            "scope",
        ),
        (
            json!({"semantic_type": TYPE, "schema_json": {}, "compatibility_mode": "warn", "v": 1}),
            "v",
        ),
    ] {
        let r = s.post("/v1/schemas", &body);
        assert_eq!((r.status, r.field()), (422, field), "{body}: {}", r.text);
    }
    assert_error(&s.get("/v1/schemas/a.b.c.v1"), 404, "schema_not_found");
    assert_eq!(s.get("/v1/schemas/nope").status, 422);

    let r = s.post(
        "/v1/keys",
        &json!({"name": "w", "role": "agent", "agents": ["team/w"]}),
    );
    let key = r.json["api_key"].as_str().unwrap().to_string();
    let body = json!({"semantic_type": TYPE, "schema_json": {}, "compatibility_mode": "warn"});
    let r = send(
        s.req_anon("POST", "/v1/schemas").set("x-api-key", &key),
        Some(body.to_string()),
    );
    assert_error(&r, 403, "forbidden");
    assert_eq!(upsert(&s, TYPE, json!({}), "warn").status, 200);
    let r = send(
        s.req_anon("GET", &format!("/v1/schemas/{TYPE}"))
            .set("x-api-key", &key),
        None,
    );
    assert_eq!(r.status, 200, "an agent key reads schemas: {}", r.text);
}
