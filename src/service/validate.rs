//! Reading request JSON field by field, so that every rejection names the field and the rule it
//! broke (`human_task.allowed_outcomes[2]: must be at most 64 characters`). Only parsing lives
//! here; what a valid request then does is the business of the operation that reads it.

use serde_json::{Map, Value};

use crate::Error;

/// Bounds of an agent address, in bytes.
pub const ADDRESS_MIN: usize = 3;
pub const ADDRESS_MAX: usize = 383;

/// The fields of one JSON object, with `prefix` naming where it sits in the request.
pub struct Fields<'a> {
    obj: &'a Map<String, Value>,
    prefix: String,
}

impl<'a> Fields<'a> {
    /// The top-level object of a request body.
    pub fn body(v: &'a Value) -> Result<Fields<'a>, Error> {
        match v.as_object() {
            Some(obj) => Ok(Fields {
                obj,
                prefix: String::new(),
            }),
            None => Err(Error::Malformed {
                reason: "the body must be a JSON object".into(),
            }),
        }
    }

    /// A nested object at `path`.
    pub fn nested(obj: &'a Map<String, Value>, path: String) -> Fields<'a> {
        Fields {
            obj,
            prefix: format!("{path}."),
        }
    }

    /// The dotted path of a field; an empty key is spelled `""` so the path still names it.
    pub fn path(&self, name: &str) -> String {
        if name.is_empty() {
            format!("{}\"\"", self.prefix)
        } else {
            format!("{}{}", self.prefix, name)
        }
    }

    fn invalid(&self, name: &str, reason: impl Into<String>) -> Error {
        Error::invalid(self.path(name), reason)
    }

    /// Refuses any field not in `allowed` (schemas with `additionalProperties: false`).
    pub fn deny_unknown(&self, allowed: &[&str]) -> Result<(), Error> {
        match self.obj.keys().find(|k| !allowed.contains(&k.as_str())) {
            Some(k) => Err(self.invalid(k, "unknown field")),
            None => Ok(()),
        }
    }

    /// The value of a field, treating JSON `null` as absent.
    fn value(&self, name: &str) -> Option<&'a Value> {
        self.obj.get(name).filter(|v| !v.is_null())
    }

    pub fn has(&self, name: &str) -> bool {
        self.value(name).is_some()
    }

    pub fn str_opt(&self, name: &str, min: usize, max: usize) -> Result<Option<&'a str>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => {
                let n = s.chars().count();
                if n < min {
                    Err(self.invalid(name, format!("must be at least {min} characters")))
                } else if n > max {
                    Err(self.invalid(name, format!("must be at most {max} characters")))
                } else {
                    Ok(Some(s.as_str()))
                }
            }
            Some(_) => Err(self.invalid(name, "must be a string")),
        }
    }

    pub fn str_req(&self, name: &str, min: usize, max: usize) -> Result<&'a str, Error> {
        self.str_opt(name, min, max)?
            .ok_or_else(|| self.invalid(name, "is required"))
    }

    pub fn int_opt(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
        match self.value(name) {
            None => Ok(None),
            // JSON Schema counts 3.0 as an integer; so do we.
            Some(Value::Number(n)) => match n.as_i64().or_else(|| {
                n.as_f64()
                    .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                    .map(|f| f as i64)
            }) {
                Some(i) if i < min => Err(self.invalid(name, format!("must be at least {min}"))),
                Some(i) if i > max => Err(self.invalid(name, format!("must be at most {max}"))),
                Some(i) => Ok(Some(i)),
                None => Err(self.invalid(name, "must be an integer")),
            },
            Some(_) => Err(self.invalid(name, "must be an integer")),
        }
    }

    pub fn bool_opt(&self, name: &str) -> Result<Option<bool>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(self.invalid(name, "must be a boolean")),
        }
    }

    pub fn obj_opt(&self, name: &str) -> Result<Option<&'a Map<String, Value>>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::Object(m)) => Ok(Some(m)),
            Some(_) => Err(self.invalid(name, "must be an object")),
        }
    }

    pub fn obj_req(&self, name: &str) -> Result<&'a Map<String, Value>, Error> {
        self.obj_opt(name)?
            .ok_or_else(|| self.invalid(name, "is required"))
    }

    /// An optional array of strings, each `min..=max` characters, `min_items..=max_items` long.
    pub fn str_array_opt(
        &self,
        name: &str,
        (min_items, max_items): (usize, usize),
        (min, max): (usize, usize),
    ) -> Result<Option<Vec<&'a str>>, Error> {
        let items = match self.value(name) {
            None => return Ok(None),
            Some(Value::Array(a)) => a,
            Some(_) => return Err(self.invalid(name, "must be an array of strings")),
        };
        if items.len() < min_items || items.len() > max_items {
            return Err(self.invalid(name, format!("must have {min_items} to {max_items} items")));
        }
        items
            .iter()
            .enumerate()
            .map(|(i, v)| {
                let item = format!("{name}[{i}]");
                match v.as_str() {
                    Some(s) if s.chars().count() < min => {
                        Err(self.invalid(&item, format!("must be at least {min} characters")))
                    }
                    Some(s) if s.chars().count() > max => {
                        Err(self.invalid(&item, format!("must be at most {max} characters")))
                    }
                    Some(s) => Ok(s),
                    None => Err(self.invalid(&item, "must be a string")),
                }
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// An optional agent address, normalized (see [`address`]).
    pub fn address_opt(&self, name: &str) -> Result<Option<String>, Error> {
        match self.value(name) {
            None => Ok(None),
            Some(Value::String(s)) => address(&self.path(name), s).map(Some),
            Some(_) => Err(self.invalid(name, "must be a string")),
        }
    }

    pub fn address_req(&self, name: &str) -> Result<String, Error> {
        self.address_opt(name)?
            .ok_or_else(|| self.invalid(name, "is required"))
    }
}

/// Checks and normalizes an agent address: `agent://` followed by printable characters without
/// spaces, 3–383 bytes in all. A bare `team/worker` is read as `agent://team/worker`; any other
/// scheme is refused.
pub fn address(field: &str, s: &str) -> Result<String, Error> {
    let bad = |reason: &str| Error::Invalid {
        code: "invalid_agent_address",
        field: field.to_string(),
        reason: reason.to_string(),
    };
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    let full = match s.strip_prefix("agent://") {
        Some("") => return Err(bad("must name an agent after agent://")),
        Some(_) => s.to_string(),
        None if s.contains("://") => return Err(bad("must use the agent:// scheme")),
        None if s.is_empty() => return Err(bad("must not be empty")),
        None => format!("agent://{s}"),
    };
    if full.len() < ADDRESS_MIN || full.len() > ADDRESS_MAX {
        return Err(bad(&format!(
            "must be {ADDRESS_MIN} to {ADDRESS_MAX} characters"
        )));
    }
    Ok(full)
}

/// Checks a reply address, which may name anything that reads its completions, not only an
/// agent: `scheme://rest` of any scheme (AXME's initiators use `initiator://name`), or a bare
/// name, read as `agent://name`; printable, without spaces, 3–383 bytes.
pub fn reply_address(field: &str, s: &str) -> Result<String, Error> {
    let Some((scheme, rest)) = s.split_once("://") else {
        return address(field, s);
    };
    if scheme == "agent" {
        return address(field, s);
    }
    let bad = |reason: &str| Error::Invalid {
        code: "invalid_agent_address",
        field: field.to_string(),
        reason: reason.to_string(),
    };
    let scheme_ok = scheme.starts_with(|c: char| c.is_ascii_lowercase())
        && scheme
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '+' | '-' | '.'));
    if !scheme_ok {
        return Err(bad(
            "must be scheme://name with a lowercase scheme, or a bare agent name",
        ));
    }
    if rest.is_empty() {
        return Err(bad(&format!("must name something after {scheme}://")));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad("must not contain spaces or control characters"));
    }
    if s.len() < ADDRESS_MIN || s.len() > ADDRESS_MAX {
        return Err(bad(&format!(
            "must be {ADDRESS_MIN} to {ADDRESS_MAX} characters"
        )));
    }
    Ok(s.to_string())
}

/// Checks a UUID in its canonical hyphenated form and returns it lowercased.
pub fn uuid(field: &str, s: &str) -> Result<String, Error> {
    if s.len() == 36 {
        if let Ok(u) = uuid::Uuid::try_parse(s) {
            return Ok(u.hyphenated().to_string());
        }
    }
    Err(Error::invalid(
        field,
        "must be a UUID (8-4-4-4-12 hex digits)",
    ))
}

/// `^[a-z0-9_]+(\.[a-z0-9_]+)+\.v[0-9]+$`, without a regex engine.
pub fn is_intent_type(s: &str) -> bool {
    let parts: Vec<&str> = s.split('.').collect();
    let word = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
    };
    let Some((version, names)) = parts.split_last() else {
        return false;
    };
    let version_ok = version
        .strip_prefix('v')
        .is_some_and(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()));
    version_ok && names.len() >= 2 && names.iter().all(word)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intent_type_pattern() {
        for ok in [
            "demo.task.v1",
            "a.b.v10",
            "billing_2.invoice.send.v3",
            "x.y.v0",
        ] {
            assert!(is_intent_type(ok), "{ok}");
        }
        for bad in [
            "",
            "task.v1",
            "demo.task",
            "Demo.task.v1",
            "demo..task.v1",
            "demo.task.v",
            "demo.task.vx",
            "demo.task.V1",
            "demo-task.x.v1",
            ".demo.task.v1",
            "demo.task.v1.",
        ] {
            assert!(!is_intent_type(bad), "{bad}");
        }
    }

    #[test]
    fn addresses_are_normalized_to_the_agent_scheme() {
        assert_eq!(address("f", "agent://a/b").unwrap(), "agent://a/b");
        assert_eq!(address("f", "team/worker").unwrap(), "agent://team/worker");
        for bad in ["agent://", "http://x/y", "a b", "", &"x".repeat(400)] {
            let e = address("to_agent", bad).expect_err(bad);
            assert_eq!(e.code(), "invalid_agent_address");
        }
    }

    #[test]
    fn reply_addresses_take_any_scheme() {
        let ok = |s: &str| reply_address("reply_to", s).unwrap();
        assert_eq!(
            ok("initiator://simple-request"),
            "initiator://simple-request"
        );
        assert_eq!(ok("checker"), "agent://checker");
        assert_eq!(ok("agent://a/b"), "agent://a/b");
        for bad in [
            "initiator://",
            "Initiator://x",
            "x y://z",
            "a://b c",
            "://x",
            "agent://",
        ] {
            let e = reply_address("reply_to", bad).expect_err(bad);
            assert_eq!(e.code(), "invalid_agent_address", "{bad}");
        }
    }

    #[test]
    fn uuids_must_be_hyphenated() {
        assert_eq!(
            uuid("c", "0F8FAD5B-D9CB-469F-A165-70867728950E").unwrap(),
            "0f8fad5b-d9cb-469f-a165-70867728950e"
        );
        assert!(uuid("c", "0f8fad5bd9cb469fa16570867728950e").is_err());
        assert!(uuid("c", "not-a-uuid").is_err());
    }
}
