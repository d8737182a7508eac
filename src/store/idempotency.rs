//! The `idempotency_keys` table: for each (credential, endpoint, `Idempotency-Key`) the hash of
//! the request that first used it and the exact response it got, so a retry gets that response
//! again and a different request under the same key is refused. Kept at least 24 hours.

use super::Tx;
use rusqlite::{params, OptionalExtension};

use crate::Error;

/// A remembered response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remembered {
    pub request_hash: Vec<u8>,
    pub status_code: u16,
    pub response: Vec<u8>,
}

pub fn lookup(
    conn: &Tx,
    key_id: &str,
    endpoint: &str,
    key: &str,
) -> Result<Option<Remembered>, Error> {
    let mut stmt = conn.prepare_cached(
        "SELECT request_hash, status_code, response FROM idempotency_keys \
         WHERE key_id = ?1 AND endpoint = ?2 AND idempotency_key = ?3",
    )?;
    Ok(stmt
        .query_row(params![key_id, endpoint, key], |r| {
            Ok(Remembered {
                request_hash: r.get(0)?,
                status_code: r.get(1)?,
                response: r.get(2)?,
            })
        })
        .optional()?)
}

/// Stores a response. `intent_id` is the intent the response is about, if any: the retention
/// deletes the record together with that intent.
pub fn insert(
    conn: &Tx,
    key_id: &str,
    endpoint: &str,
    key: &str,
    remembered: &Remembered,
    created_unix: i64,
    intent_id: Option<&str>,
) -> Result<(), Error> {
    conn.prepare_cached(
        "INSERT INTO idempotency_keys (key_id, endpoint, idempotency_key, request_hash, \
         status_code, response, created_unix, intent_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        key_id,
        endpoint,
        key,
        remembered.request_hash,
        remembered.status_code,
        remembered.response,
        created_unix,
        intent_id
    ])?;
    Ok(())
}

/// Deletes up to `batch` records created before `before_unix`; returns how many went.
pub fn prune(conn: &Tx, before_unix: i64, batch: usize) -> Result<usize, Error> {
    let n = conn
        .prepare_cached(
            "DELETE FROM idempotency_keys WHERE (key_id, endpoint, idempotency_key) IN \
             (SELECT key_id, endpoint, idempotency_key FROM idempotency_keys \
             WHERE created_unix < ?1 LIMIT ?2)",
        )?
        .execute(params![before_unix, batch as i64])?;
    Ok(n)
}
