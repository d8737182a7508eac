//! What the cargo-fuzz targets under `fuzz/` reach that the rest of the crate keeps private or
//! behind a hyper type: the inbox body readers, the header readers given raw bytes, and a fresh
//! in-memory database for the lifecycle operations. Thin wrappers only: no rule lives here, so a
//! target always exercises the code the server runs. Not part of the API (hidden from the docs);
//! nothing in the server calls it.

use hyper::header::{HeaderMap, HeaderValue};
use serde_json::Value;

use crate::http::request::{self, Query};
use crate::service::auth::Principal;
use crate::service::idempotency::Scope;
use crate::store::migrations;
use crate::Error;

pub use crate::http::inbox::{
    comment_body, decision_body, delegate_body, delete_messages_body, read_body, reply_body,
};
/// The connection behind the handle `service` operations run on, so a target can name both.
pub use crate::store::Tx;
pub use rusqlite::Connection;

/// A fresh in-memory database with the whole schema, as the writer thread's connection has it
/// (foreign keys on), for running `service` operations without a server.
pub fn memory_db() -> Result<Connection, Error> {
    let mut conn = Connection::open_in_memory()?;
    conn.pragma_update(None, "foreign_keys", true)?;
    migrations::migrate(&mut conn)?;
    Ok(conn)
}

/// A header map with `name: value`, or `None` when hyper would never hand such bytes over as a
/// header value.
fn one_header(name: &'static str, value: Option<&[u8]>) -> Option<HeaderMap> {
    let mut headers = HeaderMap::new();
    if let Some(v) = value {
        headers.insert(name, HeaderValue::from_bytes(v).ok()?);
    }
    Some(headers)
}

/// [`request::owner_agent`] with `x-owner-agent` given as raw bytes (absent when `None`).
pub fn owner_agent(header: Option<&[u8]>, query: &Query) -> Option<Result<Option<String>, Error>> {
    let headers = one_header("x-owner-agent", header)?;
    Some(request::owner_agent(&headers, query))
}

/// [`request::idempotency_scope`] of an admin key for `POST /v1/intents`, with
/// `Idempotency-Key` given as raw bytes (absent when `None`).
pub fn idempotency_scope(key: Option<&[u8]>, body: &Value) -> Option<Result<Option<Scope>, Error>> {
    let headers = one_header("idempotency-key", key)?;
    let principal = Principal {
        key_id: "fuzz-key".into(),
        name: "fuzz".into(),
        role: Some(crate::model::KeyRole::Admin),
        agents: Vec::new(),
    };
    Some(request::idempotency_scope(
        &headers,
        &principal,
        "POST /v1/intents".into(),
        body,
    ))
}
