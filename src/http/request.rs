//! Reading the parts of a request a handler needs: the credential, the JSON body (with its size
//! limit), query parameters, path ids and the `Idempotency-Key`. Each failure is the precise
//! [`Error`] naming the header, parameter or field at fault.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH};
use serde_json::Value;
use tokio::time::{timeout_at, Instant};

use super::router::percent_decode_with;
use crate::service::auth::{Keys, Principal};
use crate::service::idempotency::{self, Scope};
use crate::service::validate;
use crate::Error;

/// The caller's principal from `x-api-key` or `Authorization: Bearer`.
pub fn authenticate(keys: &Keys, headers: &HeaderMap) -> Result<Arc<Principal>, Error> {
    let api_key = headers.get("x-api-key").and_then(|v| v.to_str().ok());
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    // `x-api-key` decides when present: the SDK may send an actor token as the Bearer beside
    // it, which is not a key of this server.
    let Some(presented) = api_key.or(bearer) else {
        return Err(Error::Unauthorized {
            reason: "missing API key: send it as x-api-key or Authorization: Bearer".into(),
        });
    };
    keys.authenticate(presented)
        .ok_or_else(|| Error::Unauthorized {
            reason: "invalid or revoked API key".into(),
        })
}

/// Bodies this much over the limit are still read (and thrown away) before the 413, so that a
/// client that writes its whole body before reading sees the 413 instead of a broken pipe.
const DRAIN_MAX: u64 = 4 * 1024 * 1024;

/// How long draining waits for the next chunk before answering anyway.
const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_secs(1);

/// When a request's body must have arrived: the head's arrival plus `--request-timeout-seconds`.
#[derive(Debug, Clone, Copy)]
pub struct Deadline {
    pub at: Instant,
    pub seconds: u64,
}

/// Reads and discards what is left of a body, up to [`DRAIN_MAX`] bytes, unless the client
/// asked `Expect: 100-continue` (it has not sent the body and waits for our answer) or stops
/// sending for [`DRAIN_IDLE`], or the request's deadline passes.
pub(crate) async fn drain(body: &mut Incoming, headers: &HeaderMap, deadline: Deadline) {
    let expects_continue = headers
        .get(hyper::header::EXPECT)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    if expects_continue {
        return;
    }
    let mut seen = 0u64;
    let next = || deadline.at.min(Instant::now() + DRAIN_IDLE);
    while let Ok(Some(Ok(frame))) = timeout_at(next(), body.frame()).await {
        if let Some(d) = frame.data_ref() {
            seen += d.len() as u64;
        }
        if seen > DRAIN_MAX {
            break;
        }
    }
}

/// Reads the whole body (at most `limit` bytes, all of it before `deadline`: else 408) and
/// parses it as JSON. An empty body is `Value::Null`.
pub async fn json_body(
    body: Incoming,
    headers: &HeaderMap,
    limit: usize,
    deadline: Deadline,
) -> Result<Value, Error> {
    let bytes = body_bytes(body, headers, limit, deadline).await?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
        reason: format!("invalid JSON: {e}"),
    })
}

/// Reads the whole body (at most `limit` bytes, all of it before `deadline`: else 408).
pub async fn body_bytes(
    mut body: Incoming,
    headers: &HeaderMap,
    limit: usize,
    deadline: Deadline,
) -> Result<Bytes, Error> {
    let too_large = || Error::TooLarge {
        field: "body".into(),
        limit,
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        if declared.is_some_and(|n| n <= DRAIN_MAX) {
            drain(&mut body, headers, deadline).await;
        }
        return Err(too_large());
    }
    let mut buf = bytes::BytesMut::new();
    loop {
        let Ok(next) = timeout_at(deadline.at, body.frame()).await else {
            return Err(Error::RequestTimeout {
                seconds: deadline.seconds,
            });
        };
        match next {
            None => break,
            Some(Ok(frame)) => {
                if let Some(d) = frame.data_ref() {
                    if buf.len() + d.len() > limit {
                        drain(&mut body, headers, deadline).await;
                        return Err(too_large());
                    }
                    buf.extend_from_slice(d);
                }
            }
            Some(Err(e)) => {
                return Err(Error::Malformed {
                    reason: format!("could not read the body: {e}"),
                })
            }
        }
    }
    Ok(buf.freeze())
}

/// Decoded query parameters.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, Error> {
        let mut out = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || Error::BadRequest {
                field: if k.is_empty() {
                    "query".to_string()
                } else {
                    k.to_string()
                },
                reason: "malformed percent-encoding in the query string".into(),
            };
            let k = percent_decode_with(k, true).ok_or_else(bad)?;
            let v = percent_decode_with(v, true).ok_or_else(bad)?;
            out.push((k, v));
        }
        Ok(Query(out))
    }

    /// The first value of a parameter; an empty value counts as absent.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .filter(|v| !v.is_empty())
    }

    /// An integer parameter within `min..=max`.
    pub fn int(&self, name: &str, min: i64, max: i64) -> Result<Option<i64>, Error> {
        let Some(v) = self.get(name) else {
            return Ok(None);
        };
        // Digits with an optional minus, nothing else (`parse` would also take a leading `+`).
        let digits = v.strip_prefix('-').unwrap_or(v);
        let plain = !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit());
        match v.parse::<i64>() {
            Ok(n) if plain && (min..=max).contains(&n) => Ok(Some(n)),
            _ => Err(Error::invalid(
                name,
                format!("must be an integer from {min} to {max}"),
            )),
        }
    }
}

/// An intent id from the path, checked to be a UUID.
pub fn intent_id(raw: &str) -> Result<String, Error> {
    validate::uuid("intent_id", raw)
}

/// The idempotency scope of a write, if the request carries an `Idempotency-Key`.
pub fn idempotency_scope(
    headers: &HeaderMap,
    principal: &Principal,
    endpoint: String,
    body: &Value,
) -> Result<Option<Scope>, Error> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .ok()
        // `^[!-~]{1,255}$`, as the OpenAPI document says: a header value may also hold spaces
        // and tabs, which a key may not.
        .filter(|k| !k.is_empty() && k.len() <= 255 && k.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or_else(|| Error::BadRequest {
            field: "Idempotency-Key".into(),
            reason: "must be 1 to 255 visible ASCII characters".into(),
        })?;
    Ok(Some(Scope {
        key_id: principal.key_id.clone(),
        endpoint,
        key: key.to_string(),
        request_hash: idempotency::request_hash(body),
    }))
}

/// The owner scope of a request: `x-owner-agent` or `owner_agent`; both given and different
/// is 400.
pub fn owner_agent(headers: &HeaderMap, query: &Query) -> Result<Option<String>, Error> {
    let header = match headers.get("x-owner-agent") {
        None => None,
        Some(v) => Some(v.to_str().map_err(|_| Error::BadRequest {
            field: "x-owner-agent".into(),
            reason: "is not a readable (visible ASCII) header value".into(),
        })?),
    };
    let param = query.get("owner_agent");
    let pick = match (header, param) {
        (Some(h), Some(p)) => {
            let (h, p) = (
                validate::address("x-owner-agent", h)?,
                validate::address("owner_agent", p)?,
            );
            if h != p {
                return Err(Error::BadRequest {
                    field: "owner_agent".into(),
                    reason: "x-owner-agent and owner_agent name different owners".into(),
                });
            }
            return Ok(Some(h));
        }
        (Some(h), None) => ("x-owner-agent", h),
        (None, Some(p)) => ("owner_agent", p),
        (None, None) => return Ok(None),
    };
    validate::address(pick.0, pick.1).map(Some)
}

/// An API key id from the path, checked to be a UUID.
pub fn key_id(raw: &str) -> Result<String, Error> {
    validate::uuid("key_id", raw)
}
