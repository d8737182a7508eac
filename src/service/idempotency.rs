//! `Idempotency-Key` on writes: the first request under a key runs and its response is stored
//! in the same transaction as its effects; a retry with the same body gets that response back
//! without running again; a different body under the same key is 409. Keys are scoped to the
//! caller's credential and the endpoint, and kept at least 24 hours.

use crate::store::Tx;
use ring::digest;
use serde_json::Value;

use crate::store::idempotency::{self, Remembered};
use crate::store::Store;
use crate::{clock, Error};

/// How long an idempotency record is kept at least.
pub const RETENTION_SECONDS: i64 = 24 * 3600;

/// A response rendered to bytes, ready to send (and to store for replays).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub status: u16,
    pub body: Vec<u8>,
    /// True when this is a stored response replayed for a retried request.
    pub replayed: bool,
}

/// Where an `Idempotency-Key` applies.
#[derive(Debug, Clone)]
pub struct Scope {
    pub key_id: String,
    /// Method and concrete path, e.g. `POST /v1/intents/…/resolve`.
    pub endpoint: String,
    pub key: String,
    /// SHA-256 of the canonical JSON of the request body.
    pub request_hash: Vec<u8>,
}

/// Hashes a request body in canonical form (object keys sorted, no whitespace) so that the same
/// JSON sent with different spacing or key order counts as the same request.
pub fn request_hash(body: &Value) -> Vec<u8> {
    let mut canonical = String::new();
    write_canonical(body, &mut canonical);
    digest::digest(&digest::SHA256, canonical.as_bytes())
        .as_ref()
        .to_vec()
}

/// Objects are kept in the order they were sent (so payloads round-trip); the hash must not
/// depend on that order, so keys are sorted here, at every depth.
fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// Runs `op` in the writer and renders its result; with a scope, only once per key.
pub async fn write_once<T, Op, Render>(
    store: &Store,
    scope: Option<Scope>,
    op: Op,
    render: Render,
) -> Result<Rendered, Error>
where
    T: Send + 'static,
    Op: FnOnce(&Tx) -> Result<T, Error> + Send + 'static,
    Render: FnOnce(&T) -> Result<Rendered, Error> + Send + 'static,
{
    write_once_disclosing(store, scope, op, move |v| Ok((render(v)?, None))).await
}

/// [`write_once`] for a write whose response shows a secret once (a generated webhook secret):
/// `render` returns the response to send and, if it differs, the one to keep for replays,
/// which leaves the secret out. A retry is told the write happened, never the secret again.
pub async fn write_once_disclosing<T, Op, Render>(
    store: &Store,
    scope: Option<Scope>,
    op: Op,
    render: Render,
) -> Result<Rendered, Error>
where
    T: Send + 'static,
    Op: FnOnce(&Tx) -> Result<T, Error> + Send + 'static,
    Render: FnOnce(&T) -> Result<(Rendered, Option<Rendered>), Error> + Send + 'static,
{
    let Some(scope) = scope else {
        let value = store.write(op).await?;
        return render(&value).map(|(sent, _)| sent);
    };
    store
        .write(move |conn| {
            if let Some(prev) =
                idempotency::lookup(conn, &scope.key_id, &scope.endpoint, &scope.key)?
            {
                if prev.request_hash != scope.request_hash {
                    return Err(Error::conflict(
                        "idempotency_conflict",
                        "this Idempotency-Key was already used with a different request body",
                    ));
                }
                return Ok(Rendered {
                    status: prev.status_code,
                    body: prev.response,
                    replayed: true,
                });
            }
            let value = op(conn)?;
            let (rendered, kept) = render(&value)?;
            let kept = kept.unwrap_or_else(|| rendered.clone());
            idempotency::insert(
                conn,
                &scope.key_id,
                &scope.endpoint,
                &scope.key,
                &Remembered {
                    request_hash: scope.request_hash,
                    status_code: kept.status,
                    response: kept.body,
                },
                clock::unix_seconds(),
                intent_of(&rendered.body),
            )?;
            Ok(rendered)
        })
        .await
}

/// The intent a stored response is about: the first `intent_id` in its (compact) JSON. A
/// response about an intent names it before any other (`{"ok":true,"intent_id":…}`,
/// `{"ok":true,"intent":{"intent_id":…}}`, a delivery's `intent_id`), so the record can be
/// removed together with that intent when the retention removes it.
fn intent_of(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"intent_id\":\"";
    let start = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let id = body.get(start..start + 36)?;
    let uuid_like = body.get(start + 36) == Some(&b'"')
        && id.iter().all(|b| b.is_ascii_hexdigit() || *b == b'-');
    uuid_like.then(|| std::str::from_utf8(id).ok()).flatten()
}

/// Deletes idempotency records older than the retention, a batch at a time.
pub async fn prune(store: &Store) -> Result<usize, Error> {
    let before = clock::unix_seconds() - RETENTION_SECONDS;
    store
        .write(move |conn| idempotency::prune(conn, before, 1000))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_ignores_key_order_and_spacing_but_not_values() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{ "a": {"x": "s", "y": [1, 2]}, "b": 1 }"#).unwrap();
        let c: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[2,1],"x":"s"}}"#).unwrap();
        assert_eq!(request_hash(&a), request_hash(&b));
        assert_ne!(request_hash(&a), request_hash(&c));
    }

    #[test]
    fn a_response_is_about_the_first_intent_it_names() {
        let id = "01a21455-8df2-706b-8c78-d11d4cfab909";
        let created = format!(r#"{{"ok":true,"intent_id":"{id}","status":"SUBMITTED"}}"#);
        assert_eq!(intent_of(created.as_bytes()), Some(id));
        let changed = format!(
            r#"{{"ok":true,"intent":{{"intent_id":"{id}","reply_to":null}},"event":{{"intent_id":"x"}}}}"#
        );
        assert_eq!(intent_of(changed.as_bytes()), Some(id));
        assert_eq!(
            intent_of(br#"{"ok":true,"agent":{"address":"agent://a"}}"#),
            None
        );
        assert_eq!(intent_of(br#"{"intent_id":"not-a-uuid"}"#), None);
        assert_eq!(intent_of(br#"{"intent_id":"01a21455"#), None);
    }
}
