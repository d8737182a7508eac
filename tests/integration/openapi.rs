//! The OpenAPI document (`assets/openapi.json`, served at `/openapi.json`) against the routing
//! table: it is OpenAPI 3.1, names every route of the table and nothing else, gives every
//! operation an id and its responses, declares exactly the path parameters of its template,
//! answers every error with the one `ErrorBody`, every `$ref` and every link's `operationId`
//! resolves. The server serves the same bytes without an API key, and asks for a key on exactly
//! the operations the document says need one.

use crate::common;

use std::collections::{BTreeSet, HashSet};

use common::*;
use serde_json::Value;

const DOCUMENT: &str = include_str!("../../assets/openapi.json");
const METHODS: &[&str] = &[
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(DOCUMENT).expect("assets/openapi.json is JSON")
}

/// A router pattern as an OpenAPI template shape: every `*` / `**` segment becomes `{}`.
fn router_shape(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|s| if s == "*" || s == "**" { "{}" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// An OpenAPI path template with its parameter names dropped: `{intent_id}` becomes `{}`.
fn doc_shape(template: &str) -> String {
    template
        .split('/')
        .map(|s| {
            if s.starts_with('{') && s.ends_with('}') {
                "{}"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Every `(METHOD, path template, operation)` of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let paths = doc["paths"].as_object().expect("paths is an object");
    let mut out = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().expect("a path item is an object");
        for (method, op) in item {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), op));
            }
        }
    }
    out
}

/// An operation's parameters with their `$ref`s followed.
fn parameters<'a>(doc: &'a Value, op: &'a Value) -> Vec<&'a Value> {
    op["parameters"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .map(|p| match p["$ref"].as_str() {
                    Some(r) => resolve(doc, r).unwrap_or_else(|| panic!("unresolved {r}")),
                    None => p,
                })
                .collect()
        })
        .unwrap_or_default()
}

fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[test]
fn the_document_is_openapi_3_1_with_both_ways_of_sending_the_key() {
    let doc = document();
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3.1."), "openapi {version}");
    assert!(doc["info"]["title"].is_string());
    assert_eq!(
        doc["info"]["version"],
        env!("CARGO_PKG_VERSION"),
        "info.version follows Cargo.toml"
    );
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(
        (
            &schemes["ApiKeyHeader"]["in"],
            &schemes["ApiKeyHeader"]["name"]
        ),
        (&Value::from("header"), &Value::from("x-api-key")),
        "{schemes}"
    );
    assert_eq!(
        (
            &schemes["BearerAuth"]["type"],
            &schemes["BearerAuth"]["scheme"]
        ),
        (&Value::from("http"), &Value::from("bearer")),
        "{schemes}"
    );
}

#[test]
fn every_route_of_the_table_is_in_the_document_and_nothing_else() {
    let doc = document();
    let table: BTreeSet<(String, String)> = axme::http::router::table()
        .map(|(m, p)| (m.to_string(), router_shape(p)))
        .collect();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(m, p, _)| (m, doc_shape(&p)))
        .collect();
    let missing: Vec<_> = table.difference(&documented).collect();
    let extra: Vec<_> = documented.difference(&table).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the document: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "documented operations no route serves: {extra:?}"
    );
}

#[test]
fn every_operation_has_an_id_responses_and_its_path_parameters() {
    let doc = document();
    let mut ids = HashSet::new();
    for (method, path, op) in operations(&doc) {
        let id = op["operationId"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_string()), "operationId {id} used twice");
        let responses = op["responses"]
            .as_object()
            .unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(
            responses.keys().any(|k| k.starts_with('2')),
            "{method} {path}: no success response"
        );
        let declared: BTreeSet<&str> = parameters(&doc, op)
            .into_iter()
            .filter(|p| p["in"] == "path")
            .map(|p| {
                assert_eq!(p["required"], true, "{method} {path}: {p}");
                p["name"].as_str().expect("parameter name")
            })
            .collect();
        let in_template: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, in_template, "{method} {path}: path parameters");
    }
    for (method, path, op) in operations(&doc) {
        for (status, resp) in op["responses"].as_object().expect("responses") {
            for (name, link) in resp["links"].as_object().into_iter().flatten() {
                let target = link["operationId"].as_str().unwrap_or("");
                assert!(
                    ids.contains(target),
                    "{method} {path} {status}: link {name} names no operation ({target:?})"
                );
            }
        }
    }
}

/// Whether an operation is open (`security: []`); the others need the document's key.
fn is_open(op: &Value) -> bool {
    op["security"].as_array().is_some_and(|s| s.is_empty())
}

#[test]
fn every_error_answer_is_the_one_error_body_and_every_key_route_says_401() {
    let doc = document();
    for (method, path, op) in operations(&doc) {
        let responses = op["responses"].as_object().expect("responses");
        for (status, resp) in responses {
            if status.as_str() < "400" {
                continue;
            }
            let resp = match resp["$ref"].as_str() {
                Some(r) => resolve(&doc, r).unwrap_or_else(|| panic!("unresolved {r}")),
                None => resp,
            };
            let schema = &resp["content"]["application/json"]["schema"];
            if path == "/mcp" && status == "400" {
                // The MCP server answers a message it cannot take with a JSON-RPC error; a bad
                // query string is still the AXME error body.
                let one_of: Vec<&Value> =
                    schema["oneOf"].as_array().into_iter().flatten().collect();
                assert!(
                    one_of
                        .iter()
                        .any(|s| s["$ref"] == "#/components/schemas/ErrorBody")
                        && one_of
                            .iter()
                            .any(|s| s["$ref"] == "#/components/schemas/JsonRpcError"),
                    "{method} {path} {status}: {schema}"
                );
                continue;
            }
            if path == "/ui/decide/{token}"
                && resp["content"]["text/html; charset=utf-8"].is_object()
            {
                // The decision page answers a person in a browser: its refusals are pages.
                continue;
            }
            assert_eq!(
                schema["$ref"], "#/components/schemas/ErrorBody",
                "{method} {path} {status}"
            );
        }
        assert_eq!(
            responses.contains_key("401"),
            !is_open(op),
            "{method} {path}: 401 exactly where a key is needed"
        );
    }
}

#[test]
fn every_ref_resolves_inside_the_document() {
    fn walk<'a>(v: &'a Value, refs: &mut Vec<&'a str>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    refs.push(r);
                }
                m.values().for_each(|x| walk(x, refs));
            }
            Value::Array(a) => a.iter().for_each(|x| walk(x, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(
            r.starts_with("#/") && resolve(&doc, r).is_some(),
            "$ref {r} does not resolve"
        );
    }
}

#[test]
fn the_server_serves_the_document_without_a_key() {
    let s = Server::start();
    let r = send(s.req_anon("GET", "/openapi.json"), None);
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.text, DOCUMENT);
    let r = s.get("/openapi.json");
    assert_eq!((r.status, r.text.as_str()), (200, DOCUMENT));
    // Like /health, it is answered before any key is looked at, so a wrong one is no 401.
    let r = send(
        s.req_anon("GET", "/openapi.json")
            .set("x-api-key", "not-a-key-of-this-server"),
        None,
    );
    assert_eq!((r.status, r.text.as_str()), (200, DOCUMENT));
}

#[test]
fn the_server_asks_for_a_key_exactly_where_the_document_says() {
    let s = Server::start();
    let doc = document();
    for (method, path, op) in operations(&doc) {
        // Any value will do: the key is checked before the path's parameters are read.
        let concrete = path
            .split('/')
            .map(|seg| {
                if seg == "{file}" {
                    "app.js"
                } else if seg.starts_with('{') {
                    "0f8fad5b-d9cb-469f-a165-70867728950e"
                } else {
                    seg
                }
            })
            .collect::<Vec<_>>()
            .join("/");
        let r = send(s.req_anon(&method, &concrete), None);
        if is_open(op) {
            assert_ne!(r.status, 401, "{method} {path} is open: {}", r.text);
        } else {
            assert_error(&r, 401, "auth_failed");
        }
    }
}
