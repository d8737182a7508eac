//! The readers a scenario bundle is checked with: each takes a field of a JSON object, and on
//! a problem records it in the [`Report`] under the field's JSON path instead of stopping, so
//! one check lists every problem of a bundle. No rules of what a bundle means live here
//! (`service::scenarios`, `service::workflow_steps`).

use serde_json::{Map, Value};

use super::{requests, validate};

/// The addresses of the built-in agents (`model::builtin`), which no bundle provisions or
/// assigns an agent task to.
pub const BUILTIN_PREFIX: &str = "agent://internal/";

/// What a check found: problems as `(JSON path, message)`.
#[derive(Debug, Default, Clone)]
pub struct Report {
    pub errors: Vec<(String, String)>,
    pub warnings: Vec<(String, String)>,
}

impl Report {
    pub fn error(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.errors.push((path.into(), msg.into()));
    }
    pub fn warn(&mut self, path: impl Into<String>, msg: impl Into<String>) {
        self.warnings.push((path.into(), msg.into()));
    }
}

pub fn unknown(r: &mut Report, obj: &Map<String, Value>, known: &[&str], at: &str) {
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        r.warn(
            join(at, k),
            "is not a field this server knows; it is ignored",
        );
    }
}

pub fn join(at: &str, key: &str) -> String {
    if at.is_empty() {
        key.to_string()
    } else {
        format!("{at}.{key}")
    }
}

/// A string field: `None` when absent (or null), an error when of another type or length.
pub fn text<'a>(
    r: &mut Report,
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
    (min, max): (usize, usize),
    required: bool,
) -> Option<&'a str> {
    match obj.get(key) {
        None | Some(Value::Null) if required => {
            r.error(join(at, key), "is required");
            None
        }
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if (min..=max).contains(&s.chars().count()) => Some(s),
        Some(Value::String(_)) => {
            r.error(join(at, key), format!("must be {min} to {max} characters"));
            None
        }
        Some(_) => {
            r.error(join(at, key), "must be a string");
            None
        }
    }
}

/// A whole number of at least `min`.
pub fn int(r: &mut Report, obj: &Map<String, Value>, key: &str, at: &str, min: i64) -> Option<i64> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64().filter(|n| *n >= min && *n <= i32::MAX as i64) {
            Some(n) => Some(n),
            None => {
                r.error(
                    join(at, key),
                    format!("must be a whole number from {min} to {}", i32::MAX),
                );
                None
            }
        },
    }
}

pub fn object<'a>(
    r: &mut Report,
    obj: &'a Map<String, Value>,
    key: &str,
    at: &str,
) -> Option<&'a Map<String, Value>> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Object(o)) => Some(o),
        Some(_) => {
            r.error(join(at, key), "must be an object");
            None
        }
    }
}

pub fn boolean(r: &mut Report, obj: &Map<String, Value>, key: &str, at: &str) -> Option<bool> {
    match obj.get(key) {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => {
            r.error(join(at, key), "must be true or false");
            None
        }
    }
}

pub fn array<'a>(
    r: &mut Report,
    obj: &'a Map<String, Value>,
    key: &str,
    max: usize,
) -> &'a [Value] {
    match obj.get(key) {
        None | Some(Value::Null) => &[],
        Some(Value::Array(a)) if a.len() <= max => a,
        Some(Value::Array(_)) => {
            r.error(key, format!("must have at most {max} entries"));
            &[]
        }
        Some(_) => {
            r.error(key, "must be an array");
            &[]
        }
    }
}

/// An address as a bundle writes it: a short name (`checker`) or `agent://…`.
pub fn address(r: &mut Report, raw: &str, path: &str) -> Option<String> {
    match validate::address(path, raw) {
        Ok(a) => Some(a),
        Err(e) => {
            r.error(path, e.to_string().trim_start_matches(&format!("{path}: ")));
            None
        }
    }
}

/// Who a role names: `(role, address, is_human)`.
pub type Roles = Vec<(String, String, bool)>;

/// A role of the bundle, or an address written directly.
pub fn resolve_role(
    r: &mut Report,
    raw: &str,
    path: &str,
    roles: &Roles,
) -> Option<(String, bool)> {
    if let Some((_, addr, human)) = roles.iter().find(|(role, _, _)| role == raw) {
        return Some((addr.clone(), *human));
    }
    if raw.starts_with("agent://") {
        return address(r, raw, path).map(|a| (a, false));
    }
    r.error(path, format!("{raw} names no role of agents[] or humans[]"));
    None
}

/// A human task of a step, checked like an intent's (`requests::human_task`) after the fields
/// only a step has (`notify_email`) are set aside; `form_schema` must be a JSON Schema.
pub fn step_task(r: &mut Report, task: &Map<String, Value>, at: &str) -> Option<String> {
    let mut plain = task.clone();
    if let Some(v) = plain.remove("notify_email") {
        if !v
            .as_str()
            .is_some_and(|e| e.contains('@') && e.len() <= 255)
        {
            r.error(format!("{at}.notify_email"), "must be an email address");
        }
    }
    if let Some(schema) = task.get("form_schema").filter(|s| s.is_object()) {
        if let Err(e) = jsonschema::validator_for(schema) {
            r.error(
                format!("{at}.form_schema"),
                format!("is not a valid JSON Schema: {e}"),
            );
        }
    }
    match requests::human_task(&plain) {
        // The address stays on the task: the step's mails are sent to it (`email`).
        Ok(t) => match task.get("notify_email").filter(|v| v.is_string()) {
            Some(email) => {
                let mut v: Value = serde_json::from_str(&t).ok()?;
                v["notify_email"] = email.clone();
                Some(v.to_string())
            }
            None => Some(t),
        },
        Err(e) => {
            let msg = e.to_string();
            let (field, reason) = msg.split_once(": ").unwrap_or(("human_task", &msg));
            let rest = field.strip_prefix("human_task").unwrap_or(field);
            r.error(format!("{at}{rest}"), reason.to_string());
            None
        }
    }
}

/// `reply_to` of `obj` (at `at`): any address an intent's `reply_to` may be.
pub fn reply_to(r: &mut Report, obj: &Map<String, Value>, at: &str) -> Option<String> {
    let path = format!("{at}.reply_to");
    let raw = text(r, obj, "reply_to", at, (3, 383), false)?;
    match validate::reply_address(&path, raw) {
        Ok(a) => Some(a),
        Err(crate::Error::Invalid { reason, .. }) => {
            r.error(path, reason);
            None
        }
        Err(e) => {
            r.error(path, e.to_string());
            None
        }
    }
}
