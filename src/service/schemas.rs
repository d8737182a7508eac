//! Payload schemas (`/v1/schemas`): a JSON Schema (drafts 2020-12, 2019-09, 7, 6, 4, told apart
//! by `$schema`, 2020-12 without one) for the payloads of one semantic type, which is the
//! `intent_type` of the intents it checks. The validator is the `jsonschema` crate, formats
//! asserted, no remote `$ref` (a self-hosted server fetches nothing for a schema).
//!
//! What a schema's `compatibility_mode` does:
//! - `strict` and `backward`: an intent whose payload breaks the schema is refused with 422
//!   naming the JSON pointer of every violation, and nothing of it is stored;
//! - `warn`: the intent is stored, with an `intent.schema_warning` event listing the violations;
//! - `backward` also guards the schema itself: a new version (or a first `backward` one) must
//!   still accept the payloads of the stored intents of its type, or the upsert is refused.
//!
//! Compiled validators are cached by schema hash, so a create pays one indexed read and a
//! validation, never a compile, once a schema has been used.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use serde_json::{json, Map, Value};

use super::access::Access;
use super::validate::Fields;
use crate::clock;
use crate::store::intents::IntentRow;
use crate::store::schemas::{self, SchemaRow};
use crate::store::{Store, Tx};
use crate::Error;

/// How many stored payloads a `backward` upsert checks (the newest ones).
pub const BACKWARD_CHECK_LIMIT: usize = 10_000;

/// At most this many violations are named in one answer or event.
const MAX_VIOLATIONS: usize = 20;

/// The event that records a `warn` schema's violations.
pub const WARNING_EVENT: &str = "intent.schema_warning";

/// A checked `POST /v1/schemas` body.
#[derive(Debug, Clone)]
pub struct Upsert {
    pub semantic_type: String,
    pub schema_json: Map<String, Value>,
    pub schema_ref: Option<String>,
    pub compatibility_mode: &'static str,
    pub scope: &'static str,
    pub active: bool,
}

/// Whether `s` is an AXP semantic type: three or more lower-case names and a version
/// (`^[a-z0-9_]+(?:\.[a-z0-9_]+){2,}\.v[0-9]+$`, e.g. `axme.calendar.schedule.v1`).
pub fn is_semantic_type(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let name = |p: &&str| {
        !p.is_empty()
            && p.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    let version = parts.last().and_then(|v| v.strip_prefix('v'));
    parts.len() >= 4
        && parts[..parts.len() - 1].iter().all(name)
        && version.is_some_and(|v| !v.is_empty() && v.chars().all(|c| c.is_ascii_digit()))
}

/// Reads a semantic type (from a body field or a path), naming `field` when it is not one.
pub fn semantic_type(field: &str, s: &str) -> Result<String, Error> {
    if s.len() <= 255 && is_semantic_type(s) {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(
            field,
            "must match ^[a-z0-9_]+(\\.[a-z0-9_]+){2,}\\.v[0-9]+$ (e.g. axme.calendar.schedule.v1)",
        ))
    }
}

pub fn upsert_request(body: &Value) -> Result<Upsert, Error> {
    let f = Fields::body(body)?;
    f.deny_unknown(&[
        "semantic_type",
        "schema_json",
        "schema_ref",
        "compatibility_mode",
        "scope",
        "active",
    ])?;
    let semantic_type = semantic_type("semantic_type", f.str_req("semantic_type", 1, 255)?)?;
    let schema_json = f.obj_req("schema_json")?.clone();
    compile(&Value::Object(schema_json.clone()))?;
    let compatibility_mode = match f.str_req("compatibility_mode", 1, 16)? {
        "strict" => "strict",
        "backward" => "backward",
        "warn" => "warn",
        _ => {
            return Err(Error::invalid(
                "compatibility_mode",
                "must be strict, backward or warn",
            ))
        }
    };
    let scope = match f.str_opt("scope", 1, 16)? {
        None | Some("tenant") => "tenant",
        Some("core") => "core",
        Some(_) => return Err(Error::invalid("scope", "must be tenant or core")),
    };
    Ok(Upsert {
        semantic_type,
        schema_json,
        schema_ref: f.str_opt("schema_ref", 1, 512)?.map(str::to_string),
        compatibility_mode,
        scope,
        active: f.bool_opt("active")?.unwrap_or(true),
    })
}

/// Compiles a schema, or names `schema_json` and what is wrong with it.
fn compile(schema: &Value) -> Result<jsonschema::Validator, Error> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| {
            Error::invalid(
                "schema_json",
                format!(
                    "is not a usable JSON Schema: {e} (at {})",
                    pointer(e.instance_path().as_str())
                ),
            )
        })
}

/// 64 hex digits: SHA-256 of the schema's canonical JSON (keys sorted, no whitespace).
pub fn schema_hash(schema: &Value) -> String {
    super::idempotency::request_hash(schema)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn validators() -> &'static Mutex<HashMap<String, Arc<jsonschema::Validator>>> {
    static CACHE: OnceLock<Mutex<HashMap<String, Arc<jsonschema::Validator>>>> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

/// The compiled validator of a stored schema, from the cache when it has been used before.
fn validator_of(row: &SchemaRow) -> Result<Arc<jsonschema::Validator>, Error> {
    let cache = validators();
    if let Some(v) = cache
        .lock()
        .ok()
        .and_then(|m| m.get(&row.schema_hash).cloned())
    {
        return Ok(v);
    }
    let schema: Value = serde_json::from_str(&row.schema_json)?;
    let v = Arc::new(compile(&schema)?);
    if let Ok(mut m) = cache.lock() {
        if m.len() > 1024 {
            m.clear();
        }
        m.insert(row.schema_hash.clone(), v.clone());
    }
    Ok(v)
}

/// A JSON pointer as shown to people: the root is `/`.
fn pointer(p: &str) -> &str {
    if p.is_empty() {
        "/"
    } else {
        p
    }
}

/// Every violation of `instance` (at most [`MAX_VIOLATIONS`]), as `(pointer, message)`.
fn violations(v: &jsonschema::Validator, instance: &Value) -> Vec<(String, String)> {
    v.iter_errors(instance)
        .take(MAX_VIOLATIONS)
        .map(|e| {
            (
                pointer(e.instance_path().as_str()).to_string(),
                e.to_string(),
            )
        })
        .collect()
}

fn describe(found: &[(String, String)]) -> String {
    found
        .iter()
        .map(|(p, m)| format!("{p}: {m}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Stores a schema (admin keys only). A `backward` schema must accept the stored payloads of
/// its type; the first one it refuses is named in the 409.
pub fn upsert(conn: &Tx, access: &Access, req: Upsert) -> Result<SchemaRow, Error> {
    if !access.is_admin() {
        return Err(Error::Forbidden {
            reason: "managing payload schemas needs an admin key".into(),
        });
    }
    let schema = Value::Object(req.schema_json);
    let validator = compile(&schema)?;
    let previous = schemas::get(conn, &req.semantic_type)?;
    let guarded = req.compatibility_mode == "backward"
        || previous
            .as_ref()
            .is_some_and(|p| p.compatibility_mode == "backward");
    if guarded {
        for (intent_id, payload) in
            schemas::payloads_of_type(conn, &req.semantic_type, BACKWARD_CHECK_LIMIT)?
        {
            let payload: Value = serde_json::from_str(&payload)?;
            let found = violations(&validator, &payload);
            if !found.is_empty() {
                return Err(Error::conflict(
                    "schema_incompatible",
                    format!(
                        "this schema refuses the payload of stored intent {intent_id} ({}); a \
                         backward-compatible schema must accept the payloads already stored",
                        describe(&found)
                    ),
                ));
            }
        }
    }
    let now = clock::now_rfc3339();
    let row = SchemaRow {
        schema_ref: req
            .schema_ref
            .unwrap_or_else(|| format!("axme://schemas/{}", req.semantic_type)),
        semantic_type: req.semantic_type,
        schema_hash: schema_hash(&schema),
        schema_json: schema.to_string(),
        compatibility_mode: req.compatibility_mode.to_string(),
        scope: req.scope.to_string(),
        owner_agent: None,
        active: req.active,
        created_at: previous.map_or_else(|| now.clone(), |p| p.created_at),
        updated_at: now,
    };
    schemas::upsert(conn, &row)?;
    Ok(row)
}

/// The schema of a semantic type, or 404.
pub async fn get(store: &Store, semantic_type: &str) -> Result<SchemaRow, Error> {
    let semantic_type = semantic_type.to_string();
    store.read(move |c| get_in(c, &semantic_type)).await
}

fn get_in(conn: &Tx, semantic_type: &str) -> Result<SchemaRow, Error> {
    schemas::get(conn, semantic_type)?.ok_or_else(|| Error::NotFound {
        what: "schema",
        id: semantic_type.to_string(),
    })
}

/// Checks a new intent's payload against the active schema of its type, inside its create:
/// refuses it (strict, backward), or returns what the `intent.schema_warning` event of a `warn`
/// schema records (its caller appends the event).
pub fn check_created(conn: &Tx, intent: &IntentRow) -> Result<Option<Value>, Error> {
    let Some(row) = schemas::get(conn, &intent.intent_type)?.filter(|r| r.active) else {
        return Ok(None);
    };
    let payload: Value = serde_json::from_str(&intent.payload)?;
    let found = violations(&*validator_of(&row)?, &payload);
    if found.is_empty() {
        return Ok(None);
    }
    if row.compatibility_mode != "warn" {
        return Err(Error::Invalid {
            code: "payload_schema_violation",
            field: "payload".into(),
            reason: format!(
                "does not match the schema of {} ({}): {}",
                row.semantic_type,
                row.compatibility_mode,
                describe(&found)
            ),
        });
    }
    Ok(Some(json!({
        "semantic_type": row.semantic_type,
        "schema_hash": row.schema_hash,
        "violations": found
            .iter()
            .map(|(p, m)| json!({"pointer": p, "message": m}))
            .collect::<Vec<_>>(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn semantic_types_follow_the_axp_pattern() {
        for ok in ["axme.calendar.schedule.v1", "a.b.c.v12", "a_1.b.c.d.v0"] {
            assert!(is_semantic_type(ok), "{ok}");
        }
        for bad in [
            "a.b.v1",
            "A.b.c.v1",
            "a.b.c.v",
            "a.b.c.1",
            "a..c.v1",
            "a.b.c.v1x",
        ] {
            assert!(!is_semantic_type(bad), "{bad}");
        }
    }

    #[test]
    fn the_hash_does_not_depend_on_key_order_or_spacing() {
        let a: Value = serde_json::from_str(r#"{"type":"object","required":["a"]}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "required": ["a"], "type": "object" }"#).unwrap();
        assert_eq!(schema_hash(&a), schema_hash(&b));
        assert_eq!(schema_hash(&a).len(), 64);
        assert_ne!(schema_hash(&a), schema_hash(&json!({"type": "object"})));
    }

    #[test]
    fn broken_schemas_and_fields_are_named() {
        let field = |body: Value| match upsert_request(&body).unwrap_err() {
            Error::Invalid { field, .. } => field,
            other => panic!("{other:?}"),
        };
        let st = "axme.calendar.schedule.v1";
        assert_eq!(
            field(json!({"schema_json": {}, "compatibility_mode": "strict"})),
            "semantic_type"
        );
        assert_eq!(
            field(
                json!({"semantic_type": st, "schema_json": {"type": 5}, "compatibility_mode": "strict"})
            ),
            "schema_json"
        );
        assert_eq!(
            field(json!({"semantic_type": st, "schema_json": {}, "compatibility_mode": "lax"})),
            "compatibility_mode"
        );
        assert_eq!(
            field(json!({"semantic_type": st, "compatibility_mode": "warn"})),
            "schema_json"
        );
    }
}
