//! The request helpers of `http::request` on arbitrary input. The input is split at the first
//! two newlines into a query string, an `x-owner-agent` value and an `Idempotency-Key` value
//! (a part missing is an absent header). None of them panics, and:
//! - the query parser decodes exactly the `k=v` pairs a strict decoder written out here does,
//!   and refuses the string if and only if that decoder refuses a part;
//! - `get` never answers an empty value, `int` only integers within its bounds;
//! - an owner scope is a normalized `agent://` address of the documented length, the same
//!   whichever of header and parameter named it;
//! - an idempotency scope keeps the key as sent (1 to 255 bytes), and its request hash does
//!   not depend on the order of the body's keys;
//! - path ids are answered only as canonical lowercase UUIDs.
#![no_main]

use axme::fuzzing;
use axme::http::request::{self, Query};
use axme::service::validate::{ADDRESS_MAX, ADDRESS_MIN};
use axme::Error;
use libfuzzer_sys::fuzz_target;
use serde_json::json;

mod oracle;
use oracle::strict_decode;

/// A rejection names what was wrong.
fn named(e: &Error) {
    match e {
        Error::Invalid { field, .. } | Error::BadRequest { field, .. } => {
            assert!(!field.is_empty(), "a rejection names no field: {e}")
        }
        other => panic!("a request helper answered {other:?}"),
    }
}

fn is_address(a: &str) -> bool {
    a.starts_with("agent://")
        && a.len() > "agent://".len()
        && (ADDRESS_MIN..=ADDRESS_MAX).contains(&a.len())
        && !a.chars().any(|c| c.is_whitespace() || c.is_control())
}

fn check_uuid(raw: &str, r: Result<String, Error>) {
    match r {
        Ok(id) => {
            assert_eq!(id.len(), 36, "{raw:?} -> {id:?}");
            assert_eq!(id, raw.to_ascii_lowercase(), "{raw:?} -> {id:?}");
            assert!(id.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            }));
        }
        Err(e) => named(&e),
    }
}

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |b| *b == b'\n');
    let raw_query = String::from_utf8_lossy(parts.next().unwrap_or_default()).into_owned();
    let owner_header = parts.next();
    let idempotency_key = parts.next();

    let pairs: Option<Vec<(String, String)>> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            Some((strict_decode(k, true)?, strict_decode(v, true)?))
        })
        .collect();
    let query = match (Query::parse(Some(&raw_query)), pairs) {
        (Ok(q), Some(pairs)) => {
            for (k, v) in &pairs {
                let first = pairs
                    .iter()
                    .find(|(k2, _)| k2 == k)
                    .map(|(_, v)| v.as_str());
                let want = first.filter(|v| !v.is_empty());
                assert_eq!(q.get(k), want, "{k:?} of {raw_query:?} (pair value {v:?})");
                if k.is_empty() {
                    continue; // the server asks only for named parameters
                }
                match q.int(k, -5, 1000) {
                    Ok(Some(n)) => {
                        assert!((-5..=1000).contains(&n));
                        assert_eq!(want.and_then(|v| v.parse::<i64>().ok()), Some(n));
                    }
                    Ok(None) => assert_eq!(want, None),
                    Err(e) => named(&e),
                }
            }
            q
        }
        (Err(e), None) => {
            named(&e);
            Query::parse(None).expect("an empty query")
        }
        (mine, strict) => panic!(
            "query {raw_query:?}: parsed {:?}, strict decoder {strict:?}",
            mine.is_ok()
        ),
    };

    if let Some(r) = fuzzing::owner_agent(owner_header, &query) {
        match r {
            Ok(Some(owner)) => {
                assert!(is_address(&owner), "owner scope {owner:?}");
                // Whichever way it was named, the same owner.
                if owner_header.is_some() && query.get("owner_agent").is_some() {
                    let alone = fuzzing::owner_agent(owner_header, &Query::parse(None).unwrap());
                    assert_eq!(alone.map(|r| r.ok()), Some(Some(Some(owner.clone()))));
                }
            }
            Ok(None) => assert!(owner_header.is_none() && query.get("owner_agent").is_none()),
            Err(e) => named(&e),
        }
    }

    // The same body with its keys in another order.
    let body = json!({"b": 1, "a": [raw_query.as_str(), {"y": null, "x": 2}]});
    let reordered = json!({"a": [raw_query.as_str(), {"x": 2, "y": null}], "b": 1});
    if let Some(r) = fuzzing::idempotency_scope(idempotency_key, &body) {
        match r {
            Ok(Some(scope)) => {
                let sent = idempotency_key.expect("a scope needs a key");
                assert!((1..=255).contains(&scope.key.len()), "key {:?}", scope.key);
                assert_eq!(scope.key.as_bytes(), sent, "the key is kept as sent");
                let again = fuzzing::idempotency_scope(idempotency_key, &reordered)
                    .and_then(|r| r.ok().flatten())
                    .expect("the same key again");
                assert_eq!(
                    scope.request_hash, again.request_hash,
                    "key order changed the hash"
                );
            }
            Ok(None) => assert!(idempotency_key.is_none()),
            Err(e) => named(&e),
        }
    }

    check_uuid(&raw_query, request::intent_id(&raw_query));
    check_uuid(&raw_query, request::key_id(&raw_query));
});
