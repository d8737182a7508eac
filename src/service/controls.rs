//! AXME's `/controls` and `/policy` of an intent: RFC 7386 merge patches of two JSON documents
//! kept beside the intent, each patch moving the intent's policy generation on (which `resume`
//! checks `expected_policy_generation` against). The server stores and answers them; it reads
//! none of their keys itself.

use serde_json::{json, Map, Value};

use super::intents;
use super::validate::Fields;
use crate::clock;
use crate::store::workflows::{self, ControlsRow};
use crate::store::Tx;
use crate::Error;

/// A checked `POST /v1/intents/{id}/controls` or `/policy` body.
#[derive(Debug, Clone)]
pub struct Patch {
    /// `controls` or `policy`.
    pub target: &'static str,
    /// `(part of the stored object, merge patch)`: `controls_patch` patches the controls,
    /// `grants_patch` and `envelope_patch` the policy's `grants` and `envelope`.
    pub parts: Vec<(&'static str, Map<String, Value>)>,
    pub expected_policy_generation: Option<i64>,
}

pub fn patch_request(body: &Value, target: &'static str) -> Result<Patch, Error> {
    let f = Fields::body(body)?;
    let keys: &[&str] = if target == "controls" {
        &["controls_patch"]
    } else {
        &["grants_patch", "envelope_patch"]
    };
    let mut parts = Vec::new();
    for k in keys {
        if let Some(p) = f.obj_opt(k)? {
            let part = if target == "controls" {
                ""
            } else {
                k.trim_end_matches("_patch")
            };
            let part: &'static str = match part {
                "grants" => "grants",
                "envelope" => "envelope",
                _ => "",
            };
            parts.push((part, p.clone()));
        }
    }
    if parts.is_empty() {
        return Err(Error::invalid(keys[0], "is required (an object to merge)"));
    }
    Ok(Patch {
        target,
        parts,
        expected_policy_generation: f.int_opt("expected_policy_generation", 0, i64::MAX)?,
    })
}

/// Applies a controls or policy patch (RFC 7386 merge: `null` removes a key) and moves the
/// policy generation on. A terminal intent takes no patch (409).
pub fn patch(conn: &Tx, intent_id: &str, p: Patch) -> Result<ControlsRow, Error> {
    let intent = intents::get(conn, intent_id)?;
    if intent.status.is_terminal() {
        return Err(Error::conflict(
            "intent_terminal",
            format!(
                "the intent is already {}; a terminal intent takes no {}",
                intent.status, p.target
            ),
        ));
    }
    let mut row = workflows::controls(conn, intent_id)?.unwrap_or(ControlsRow {
        intent_id: intent_id.to_string(),
        policy_generation: 1,
        controls: "{}".into(),
        policy: "{}".into(),
        updated_at: String::new(),
    });
    if let Some(expected) = p.expected_policy_generation {
        if expected != row.policy_generation {
            return Err(Error::conflict(
                "policy_generation_mismatch",
                format!("expected_policy_generation is {expected}, but the intent's policy generation is {}", row.policy_generation),
            ));
        }
    }
    let stored = if p.target == "controls" {
        &mut row.controls
    } else {
        &mut row.policy
    };
    let mut doc: Value = serde_json::from_str(stored)?;
    for (part, patch) in p.parts {
        let slot = if part.is_empty() {
            &mut doc
        } else {
            &mut doc[part]
        };
        merge(slot, Value::Object(patch));
    }
    *stored = doc.to_string();
    row.policy_generation += 1;
    row.updated_at = clock::now_rfc3339();
    workflows::upsert_controls(conn, &row)?;
    Ok(row)
}

fn merge(target: &mut Value, patch: Value) {
    match patch {
        Value::Object(p) => {
            if !target.is_object() {
                *target = json!({});
            }
            if let Value::Object(t) = target {
                for (k, v) in p {
                    if v.is_null() {
                        t.remove(&k);
                    } else {
                        merge(t.entry(k).or_insert(Value::Null), v);
                    }
                }
            }
        }
        other => *target = other,
    }
}
