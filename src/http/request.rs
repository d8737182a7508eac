//! Reading the parts of a request a handler needs: the credential, the JSON body (with its size
//! limit), query parameters, path ids and the `Idempotency-Key`. Each failure is the precise
//! [`Error`] naming the header, parameter or field at fault.

use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, AUTHORIZATION, CONTENT_LENGTH};
use serde_json::Value;

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
    if api_key.is_none() && bearer.is_none() {
        return Err(Error::Unauthorized {
            reason: "missing API key: send it as x-api-key or Authorization: Bearer".into(),
        });
    }
    [api_key, bearer]
        .into_iter()
        .flatten()
        .find_map(|k| keys.authenticate(k))
        .ok_or_else(|| Error::Unauthorized {
            reason: "invalid or revoked API key".into(),
        })
}

/// Reads the whole body (at most `limit` bytes) and parses it as JSON. An empty body is
/// `Value::Null`.
pub async fn json_body(body: Incoming, headers: &HeaderMap, limit: usize) -> Result<Value, Error> {
    let too_large = || Error::TooLarge {
        field: "body".into(),
        limit,
    };
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    let bytes: Bytes = match Limited::new(body, limit).collect().await {
        Ok(c) => c.to_bytes(),
        Err(e) if e.is::<http_body_util::LengthLimitError>() => return Err(too_large()),
        Err(e) => {
            return Err(Error::Malformed {
                reason: format!("could not read the body: {e}"),
            })
        }
    };
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Null);
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::Malformed {
        reason: format!("invalid JSON: {e}"),
    })
}

/// Decoded query parameters.
pub struct Query(Vec<(String, String)>);

impl Query {
    pub fn parse(raw: Option<&str>) -> Result<Query, Error> {
        let mut out = Vec::new();
        for pair in raw.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let bad = || Error::BadRequest {
                field: k.to_string(),
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
        match v.parse::<i64>() {
            Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
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
        .filter(|k| !k.is_empty() && k.len() <= 255)
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
    let header = headers.get("x-owner-agent").and_then(|v| v.to_str().ok());
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
